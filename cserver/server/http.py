"""HTTP/1.x request heads: finding, checking early, and parsing them."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from cserver.server.conn import ClientConnection, ClientGone, ClientTimeout
from cserver.server.limits import (
    MAX_CHUNK_LINE,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    MAX_LINE_BYTES,
    MAX_METHOD_BYTES,
    PREBUFFER_BYTES,
)

__all__ = [
    "CONTINUE",
    "GO",
    "WAIT",
    "ClientConnection",
    "ClientGone",
    "ClientTimeout",
    "HttpError",
    "RequestHead",
    "bad_request",
    "body_too_large",
    "check_partial",
    "head_end",
    "parse_head",
    "read_head",
    "request_ready",
]

_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than HTAB, CR and LF are never valid in a head.
_CTL_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TARGET_BAD_RE = re.compile(rb"[\x00-\x20\x7f]")
# Headers that tell the selector a body follows, or that the client waits before sending it.
_BODY_HINT_RE = re.compile(
    rb"\n(content-length|transfer-encoding|expect)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE
)


class HttpError(Exception):
    """A request the server answers with an error status, then closes."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason


def bad_request(detail: str) -> HttpError:
    """A 400 with a detail for the log."""
    return HttpError(400, "Bad Request", detail)


TLS_DETAIL = "TLS handshake on a plain HTTP port"


@dataclass(slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    raw_line: str
    headers: list[tuple[str, str]]


def strip_leading_newlines(conn: ClientConnection) -> None:
    """Drop the empty lines a client may send between requests (RFC 9112 section 2.2)."""
    buf = conn.buf
    n = 0
    while n < len(buf) and buf[n] in (10, 13):
        n += 1
    if n:
        del buf[:n]
        conn.scanned = 0


def head_end(buf: bytearray, start: int = 0) -> tuple[int, int] | None:
    """(length of the head without its last line break, offset of the body), or None.

    The head ends at the first empty line; lines end in CRLF or, leniently, in a bare LF.
    """
    crlf = buf.find(b"\n\r\n", start)
    # A bare-LF empty line may come first; it can overlap the CRLF match by one byte.
    lf = buf.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buf))
    if lf >= 0:
        end, body = lf, lf + 2
    elif crlf >= 0:
        end, body = crlf, crlf + 3
    else:
        return None
    if end and buf[end - 1] == 13:
        end -= 1
    return end, body


def parse_request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """(method, target, version) of a request line, or HttpError saying what is wrong."""
    if line[:1] == b"\x16":
        raise bad_request(TLS_DETAIL)
    shown = line[:80].decode("latin-1")
    parts = line.split(b" ")
    if len(parts) != 3:
        if len(parts) == 2 and _TOKEN_RE.fullmatch(parts[0]):
            raise bad_request(f"HTTP/0.9 request (no version) {shown!r}")
        raise bad_request(f"malformed request line {shown!r}")
    method, target, version = parts
    if len(method) > MAX_METHOD_BYTES or not _TOKEN_RE.fullmatch(method):
        raise bad_request(f"invalid method {shown[:40]!r}")
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        if re.fullmatch(rb"HTTP/[0-9](\.[0-9])?", version):
            raise HttpError(505, "HTTP Version Not Supported", version.decode("ascii"))
        raise bad_request(f"malformed request line {shown!r}")
    if len(target) > MAX_LINE_BYTES:
        raise HttpError(414, "URI Too Long")
    if not target or _TARGET_BAD_RE.search(target):
        raise bad_request("invalid request target")
    if target[0] != 47:  # "/"
        lowered = target[:8].lower()
        absolute = lowered.startswith((b"http://", b"https://"))
        if not absolute and not (target == b"*" and method == b"OPTIONS"):
            raise bad_request(f"invalid request target {target[:40].decode('latin-1')!r}")
    return method, target, version


def check_partial(conn: ClientConnection) -> None:
    """Fail early on an incomplete head that can already be seen to be wrong.

    So garbage, a TLS handshake or an HTTP/0.9 request is answered at once instead of after
    the header timeout.
    """
    buf = conn.buf
    if len(buf) > MAX_HEAD_BYTES:
        raise HttpError(431, "Request Header Fields Too Large")
    if not buf or conn.line_ok:
        return
    if buf[0] == 0x16:
        raise bad_request(TLS_DETAIL)
    newline = buf.find(b"\n")
    if newline < 0:
        if len(buf) > MAX_LINE_BYTES:
            raise HttpError(414, "URI Too Long")
        space = buf.find(b" ")
        method = buf[:space] if space >= 0 else buf[: MAX_METHOD_BYTES + 1]
        if method and (len(method) > MAX_METHOD_BYTES or not _TOKEN_RE.fullmatch(method)):
            raise bad_request("invalid method")
        return
    end = newline - 1 if newline and buf[newline - 1] == 13 else newline
    parse_request_line(bytes(buf[:end]))
    conn.line_ok = True


# What the selector should do with a connection, from request_ready().
WAIT = 0  # more of the request is on its way
GO = 1  # a worker can serve it now without waiting (or answer its error)
CONTINUE = 2  # send "100 Continue", then wait for the body


def request_ready(conn: ClientConnection, max_body: int) -> int:
    """Whether the buffered request can go to a worker: WAIT, GO or CONTINUE.

    GO once the whole head is buffered, plus its body when that is small, or as soon as an
    error can be reported. Searches only bytes not searched before, so a client trickling
    its request costs linear time.
    """
    buf = conn.buf
    if buf and buf[0] in (10, 13):
        strip_leading_newlines(conn)
    if not buf:
        return WAIT
    found = head_end(buf, max(0, conn.scanned - 2))
    if found is None:
        conn.scanned = len(buf)
        try:
            check_partial(conn)
        except HttpError:
            return GO
        return WAIT
    end, body = found
    if _BODY_HINT_RE.search(buf, 0, end) is None:
        return GO
    return _body_state(conn, end, body, max_body)


def _body_state(conn: ClientConnection, end: int, body: int, max_body: int) -> int:
    buf = conn.buf
    expect = chunked = False
    length = None
    for name, raw in _BODY_HINT_RE.findall(buf, 0, end):
        name = name.lower()
        value = raw.strip().lower()
        if name == b"expect":
            if value != b"100-continue":
                return GO  # the worker answers 417
            expect = True
        elif name == b"transfer-encoding":
            if value != b"chunked":
                return GO  # the worker answers 501
            chunked = True
        elif not value.isdigit() or len(value) > 18:
            return GO  # the worker answers 400
        elif length is not None and int(value) != length:
            return GO  # conflicting lengths: 400 too
        else:
            length = int(value)
    if chunked and length is not None:
        return GO  # both framings: the worker answers 400
    if chunked:
        done = _chunked_buffered(buf, body)
    elif length is None:
        return GO
    elif length > PREBUFFER_BYTES or length > max_body:
        return GO  # streamed by the worker, or refused with 413 before the body is sent
    else:
        done = len(buf) - body >= length
    if done:
        return GO
    if expect and not conn.continued and _is_http11(buf):
        return CONTINUE
    return WAIT


def _is_http11(buf: bytearray) -> bool:
    newline = buf.find(b"\n")
    return buf[:newline].rstrip(b"\r").endswith(b" HTTP/1.1")


def chunk_size(line: bytes) -> int | None:
    """The size a chunked body's size line announces (extensions ignored), None if invalid."""
    size_text = line.split(b";", 1)[0].strip(b" \t")
    if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_text):
        return None
    return int(size_text, 16)


def _chunked_buffered(buf: bytearray, pos: int) -> bool:
    """True if a chunked body starting at ``pos`` is whole, too big to wait for, or bad.

    Walks the framing without consuming it; the worker decodes (and rejects) it for real.
    """
    start = pos
    while pos - start <= PREBUFFER_BYTES:
        end = buf.find(b"\r\n", pos, pos + MAX_CHUNK_LINE)
        if end < 0:
            return len(buf) - pos > MAX_CHUNK_LINE  # a size line too long is an error to report
        size = chunk_size(bytes(buf[pos:end]))
        if size is None:
            return True
        if size == 0:
            return head_end(buf, end) is not None  # trailers end with an empty line
        pos = end + 2 + size + 2
        if pos > len(buf):
            return pos - start > PREBUFFER_BYTES
        if buf[pos - 2 : pos] != b"\r\n":
            return True
    return True


def read_head(
    conn: ClientConnection, header_timeout: float, io_timeout: float
) -> RequestHead | None:
    """Read and parse one request head; None if the client closed before sending one."""
    deadline = 0.0
    buf = conn.buf
    while True:
        if buf and buf[0] in (10, 13):
            strip_leading_newlines(conn)
        found = head_end(buf, max(0, conn.scanned - 2)) if buf else None
        if found is not None:
            break
        conn.scanned = len(buf)
        check_partial(conn)
        if not deadline:
            deadline = conn.deadline or time.monotonic() + header_timeout
        if not conn.fill(deadline, io_timeout):
            if buf:
                raise ClientGone("closed mid-request")
            return None
    end, body = found
    head = bytes(buf[:end])
    del buf[:body]
    conn.reset_request()
    if end > MAX_HEAD_BYTES:
        raise HttpError(431, "Request Header Fields Too Large")
    return parse_head(head)


def parse_head(head: bytes) -> RequestHead:
    """Parse a request line and header block (without the final empty line)."""
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf:
        raise bad_request("stray CR in the request head")
    if head.count(b"\n") == crlf:
        lines = head.split(b"\r\n")
    else:  # some lines end in a bare LF
        lines = head.replace(b"\r", b"").split(b"\n")
    request_line = lines[0]
    method, target, version = parse_request_line(request_line)
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, "Request Header Fields Too Large", "too many header lines")
    if _CTL_RE.search(head):
        raise bad_request("control character in the request head")
    headers = []
    for line in lines[1:]:
        if len(line) > MAX_LINE_BYTES:
            raise HttpError(431, "Request Header Fields Too Large", "header line too long")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN_RE.fullmatch(name):
            # Covers obsolete line folding too (a line starting with whitespace).
            raise bad_request("malformed header line")
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return RequestHead(
        method.decode("ascii"),
        target.decode("latin-1"),
        version.decode("ascii"),
        request_line.decode("latin-1"),
        headers,
    )


def _too_large(limit: int) -> str:
    return f"request body over the limit of {limit} bytes (CSERVER_MAX_BODY_BYTES)"


def body_too_large(limit: int) -> HttpError:
    """The 413 for a declared length over the limit."""
    return HttpError(413, "Content Too Large", _too_large(limit))
