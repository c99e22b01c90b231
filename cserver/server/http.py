"""HTTP/1.x request heads: found, checked and parsed once per request.

The rules only, on bytes: a connection's RequestReader (reader.py) calls check_partial()
on a head still arriving, so one that is already wrong fails early, and parse_head() once
it is complete, framing included, into the RequestHead that the worker consumes. No rule
is written twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cserver.server.grammar import TOKEN
from cserver.server.limits import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    MAX_LINE_BYTES,
    MAX_METHOD_BYTES,
)

__all__ = [
    "HttpError",
    "RequestHead",
    "bad_request",
    "body_too_large",
    "check_partial",
    "chunk_size",
    "head_end",
    "parse_head",
]

_TOKEN_RE = re.compile(TOKEN.encode())
# Control characters other than HTAB, CR and LF are never valid in a head. (Deleting them
# with bytes.translate and comparing lengths is several times faster than a regex search.)
_CTL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_TARGET_BAD_RE = re.compile(rb"[\x00-\x20\x7f]")
_LENGTH_RE = re.compile(rb"[0-9]{1,18}")
# Header names joined by LF: tokens only.
_NAMES_RE = re.compile(f"{TOKEN}(?:\n{TOKEN})*")
# A chunk-size line: hex digits, then nothing or ";" and extensions, which are ignored. No
# whitespace around the size, no control characters (RFC 9112 section 7.1; the BWS it
# allows before ";" is refused too, as h11 does: no client sends it).
_CHUNK_LINE_RE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[^\x00-\x08\x0a-\x1f\x7f]*)?")


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
    """A parsed request head and the body framing it declares."""

    method: str
    target: str
    version: str
    raw_line: str
    headers: list[tuple[str, str]]
    length: int = 0  # Content-Length, 0 when absent
    chunked: bool = False
    expect_continue: bool = False
    keep_alive: bool = True  # what the client asked for


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


def check_partial(buf: bytearray, line_ok: bool) -> bool:
    """Fail early on an incomplete head that can already be seen to be wrong; True once
    its request line is complete and valid (``line_ok``: it was found so before).

    So garbage, a TLS handshake or an HTTP/0.9 request is answered at once instead of after
    the header timeout.
    """
    if len(buf) > MAX_HEAD_BYTES:
        raise HttpError(431, "Request Header Fields Too Large")
    if not buf or line_ok:
        return line_ok
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
        return False
    end = newline - 1 if newline and buf[newline - 1] == 13 else newline
    parse_request_line(bytes(buf[:end]))
    return True


def chunk_size(line: bytes) -> int | None:
    """The size a chunked body's size line announces (extensions ignored), None if invalid."""
    match = _CHUNK_LINE_RE.fullmatch(line)
    return int(match.group(1), 16) if match else None


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
    if len(head.translate(None, _CTL_BYTES)) != len(head):
        raise bad_request("control character in the request head")
    fields = lines[1:]
    if fields and max(map(len, fields)) > MAX_LINE_BYTES:
        raise HttpError(431, "Request Header Fields Too Large", "header line too long")
    headers = []
    for line in b"\n".join(fields).decode("latin-1").split("\n") if fields else ():
        name, colon, value = line.partition(":")
        if not colon:
            raise bad_request("malformed header line")
        headers.append((name, value.strip(" \t")))
    # All names checked in one regex call rather than one call per line. Covers obsolete
    # line folding too (a line starting with whitespace).
    if headers and not _NAMES_RE.fullmatch("\n".join([name for name, _ in headers])):
        raise bad_request("malformed header line")
    parsed = RequestHead(
        method.decode("ascii"),
        target.decode("latin-1"),
        version.decode("ascii"),
        request_line.decode("latin-1"),
        headers,
    )
    _read_framing(parsed)
    return parsed


def _read_framing(head: RequestHead) -> None:
    """Body framing, Expect, Connection and Host of a parsed head (RFC 9112 sections 3.2,
    6 and 9.3); HttpError for what the server must refuse."""
    length: str | None = None
    encoding: str | None = None
    expect: str | None = None
    connection = ""
    hosts = 0
    for name, value in head.headers:
        lowered = name.lower()
        if lowered == "content-length":
            if length is not None and length != value:
                raise bad_request("conflicting Content-Length headers")
            length = value
        elif lowered == "transfer-encoding":
            encoding = value.lower() if encoding is None else "conflicting"
        elif lowered == "host":
            hosts += 1
        elif lowered == "connection":
            connection = f"{connection},{value.lower()}" if connection else value.lower()
        elif lowered == "expect":
            expect = value.lower()
    http11 = head.version == "HTTP/1.1"
    if encoding is not None:
        if not http11:
            # Faulty framing (RFC 9112 section 6.1): a proxy may have read it differently.
            raise bad_request("Transfer-Encoding in an HTTP/1.0 request")
        if length is not None:
            raise bad_request("both Content-Length and Transfer-Encoding")
        if encoding != "chunked":
            raise HttpError(501, "Not Implemented", "unsupported Transfer-Encoding")
        head.chunked = True
    elif length is not None:
        if not _LENGTH_RE.fullmatch(length.encode("latin-1")):
            raise bad_request(f"invalid Content-Length {length[:40]!r}")
        head.length = int(length)
    if expect is not None:
        if expect != "100-continue":
            raise HttpError(417, "Expectation Failed", f"unsupported Expect: {expect[:40]!r}")
        head.expect_continue = http11
    if hosts > 1:
        raise bad_request("more than one Host header")
    if http11 and not hosts:
        raise bad_request("HTTP/1.1 request without a Host header")
    tokens = {token.strip(" \t") for token in connection.split(",")}
    head.keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens


def _too_large(limit: int) -> str:
    return f"request body over the limit of {limit} bytes (CSERVER_MAX_BODY_BYTES)"


def body_too_large(limit: int) -> HttpError:
    """The 413 for a declared length over the limit."""
    return HttpError(413, "Content Too Large", _too_large(limit))
