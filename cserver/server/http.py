"""HTTP/1.x request heads: found, checked and parsed once per request.

The rules only, on bytes: a connection's RequestReader (reader.py) calls check_partial()
on a head still arriving, so one that is already wrong fails early, and parse_head() once
it is complete, framing included, into the RequestHead that the worker consumes. No rule
is written twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cserver.server.errors import TLS_DETAIL, HttpError, bad_request
from cserver.server.fields import check_singletons
from cserver.server.grammar import TOKEN
from cserver.server.limits import DEFAULT_HEAD_LIMITS, MAX_METHOD_BYTES, HeadLimits
from cserver.server.target import check_target

__all__ = [
    "TLS_DETAIL",
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
_LENGTH_RE = re.compile(rb"[0-9]{1,18}")
# Header names joined by LF: tokens only.
_NAMES_RE = re.compile(f"{TOKEN}(?:\n{TOKEN})*")
# A chunk-size line (RFC 9112 section 7.1.1): hex digits, then extensions, each
#   BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ]
# which are checked and ignored. No whitespace before the size, nothing after the last
# extension.
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_EXT_TOKEN = TOKEN.encode()
_CHUNK_EXT = rb"[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?" % (_EXT_TOKEN, _EXT_TOKEN, _QUOTED)
_CHUNK_LINE_RE = re.compile(rb"([0-9A-Fa-f]{1,16})((?:%s)*)" % _CHUNK_EXT)
# Transfer codings are case-insensitive tokens; one element of the list, parameters apart.
_CODING_RE = re.compile(TOKEN)


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


def parse_request_line(
    line: bytes, limits: HeadLimits = DEFAULT_HEAD_LIMITS
) -> tuple[bytes, bytes, bytes]:
    """(method, target, version) of a request line, or HttpError saying what is wrong.

    request-line = method SP request-target SP HTTP-version (RFC 9112 section 3): single
    spaces, nothing around them.
    """
    if line[:1] == b"\x16":
        raise bad_request(TLS_DETAIL)
    if len(line) + 2 > limits.request_line_bytes:  # its CRLF included, as gunicorn counts
        raise _line_too_long(limits)
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
    check_target(method, target)
    return method, target, version


def _line_too_long(limits: HeadLimits) -> HttpError:
    return HttpError(
        414,
        "URI Too Long",
        f"request line over the limit of {limits.request_line_bytes} bytes "
        "(CSERVER_MAX_REQUEST_LINE_BYTES)",
    )


def _field_too_long(limits: HeadLimits) -> HttpError:
    return HttpError(
        431,
        "Request Header Fields Too Large",
        f"header field over the limit of {limits.header_bytes} bytes (CSERVER_MAX_HEADER_BYTES)",
    )


def too_many_fields(limits: HeadLimits, what: str = "header fields") -> HttpError:
    """The 431 for more fields (or trailer fields) than the limit."""
    return HttpError(
        431,
        "Request Header Fields Too Large",
        f"more than {limits.headers} {what} (CSERVER_MAX_HEADERS)",
    )


def head_too_large(limits: HeadLimits) -> HttpError:
    """The 431 for a head over the whole-head bound, whatever its lines."""
    return HttpError(
        431, "Request Header Fields Too Large", f"request head over {limits.head_bytes} bytes"
    )


def check_partial(buf: bytearray, line_ok: bool, limits: HeadLimits = DEFAULT_HEAD_LIMITS) -> bool:
    """Fail early on an incomplete head that can already be seen to be wrong; True once
    its request line is complete and valid (``line_ok``: it was found so before).

    So garbage, a TLS handshake, an HTTP/0.9 request or a line over its limit is answered
    at once instead of after the header timeout.
    """
    if len(buf) > limits.head_bytes:
        raise head_too_large(limits)
    if not buf:
        return line_ok
    if not line_ok:
        if buf[0] == 0x16:
            raise bad_request(TLS_DETAIL)
        newline = buf.find(b"\n")
        if newline < 0:
            if len(buf) >= limits.request_line_bytes:  # with its CRLF it will be over
                raise _line_too_long(limits)
            space = buf.find(b" ")
            method = buf[:space] if space >= 0 else buf[: MAX_METHOD_BYTES + 1]
            if method and (len(method) > MAX_METHOD_BYTES or not _TOKEN_RE.fullmatch(method)):
                raise bad_request("invalid method")
            return False
        end = newline - 1 if newline and buf[newline - 1] == 13 else newline
        parse_request_line(bytes(buf[:end]), limits)
    # The field line still arriving: refused as soon as it is over the limit.
    if len(buf) - buf.rfind(b"\n") - 1 >= limits.header_bytes:
        raise _field_too_long(limits)
    return True


def chunk_size(line: bytes) -> int | None:
    """The size a chunked body's size line announces (extensions ignored), None if invalid."""
    match = _CHUNK_LINE_RE.fullmatch(line)
    return int(match.group(1), 16) if match else None


def split_lines(head: bytes) -> list[bytes]:
    """The lines of a head or trailer section, each ending in CRLF or a bare LF.

    RFC 9112 section 2.2: a recipient may take a bare LF for a line end; a bare CR must be
    refused (or replaced), as it ends a line for some parsers and not for others.
    """
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf:
        raise bad_request("stray CR in the request head")
    if head.count(b"\n") == crlf:
        return head.split(b"\r\n")
    return head.replace(b"\r", b"").split(b"\n")


def parse_fields(lines: list[bytes], limits: HeadLimits) -> list[tuple[str, str]]:
    """(name, value) of each field line: field-name ":" OWS field-value OWS (RFC 9112
    section 5), the name a token right up to the colon, no line folded (section 5.2)."""
    if len(lines) > limits.headers:
        raise too_many_fields(limits)
    if lines and max(map(len, lines)) + 2 > limits.header_bytes:  # CRLF included
        raise _field_too_long(limits)
    headers = []
    for line in b"\n".join(lines).decode("latin-1").split("\n") if lines else ():
        name, colon, value = line.partition(":")
        if not colon:
            raise bad_request("malformed header line")
        headers.append((name, value.strip(" \t")))
    # All names checked in one regex call rather than one call per line. Covers obsolete
    # line folding too (a line starting with whitespace) and whitespace before the colon.
    if headers and not _NAMES_RE.fullmatch("\n".join([name for name, _ in headers])):
        raise bad_request("malformed header line")
    return headers


def parse_head(head: bytes, limits: HeadLimits = DEFAULT_HEAD_LIMITS) -> RequestHead:
    """Parse a request line and header block (without the final empty line)."""
    lines = split_lines(head)
    request_line = lines[0]
    method, target, version = parse_request_line(request_line, limits)
    if len(head.translate(None, _CTL_BYTES)) != len(head):
        raise bad_request("control character in the request head")
    parsed = RequestHead(
        method.decode("ascii"),
        target.decode("latin-1"),
        version.decode("ascii"),
        request_line.decode("latin-1"),
        parse_fields(lines[1:], limits),
    )
    _read_framing(parsed)
    if method == b"CONNECT":
        # A tunnel is a proxy's business (RFC 9110 section 9.3.6) and WSGI cannot carry
        # one: 501 is the answer for a method the server does not support (section 15.6.2).
        raise HttpError(501, "Not Implemented", "CONNECT: this server is not a proxy")
    return parsed


def transfer_codings(value: str) -> list[str]:
    """The codings a Transfer-Encoding list names, lowercased, parameters dropped; 400
    for an empty or malformed element."""
    codings = []
    for element in value.split(","):
        coding = element.partition(";")[0].strip(" \t").lower()
        if not _CODING_RE.fullmatch(coding):
            raise bad_request(f"malformed Transfer-Encoding {value[:40]!r}")
        codings.append(coding)
    return codings


def _read_framing(head: RequestHead) -> None:
    """Body framing, Expect, Connection and Host of a parsed head (RFC 9112 sections 3.2,
    6 and 9.3); HttpError for what the server must refuse."""
    length: str | None = None
    encoding: str | None = None
    expect: str | None = None
    connection = ""
    hosts = 0
    names = []
    for name, value in head.headers:
        lowered = name.lower()
        names.append(lowered)
        if lowered == "content-length":
            if length is not None and length != value:
                raise bad_request("conflicting Content-Length headers")
            length = value
        elif lowered == "transfer-encoding":
            # A list field: two lines mean the same as one joined by a comma.
            encoding = value if encoding is None else f"{encoding},{value}"
        elif lowered == "host":
            hosts += 1
        elif lowered == "connection":
            connection = f"{connection},{value.lower()}" if connection else value.lower()
        elif lowered == "expect":
            expect = value.lower()
    check_singletons(names)
    http11 = head.version == "HTTP/1.1"
    if encoding is not None:
        if not http11:
            # Faulty framing (RFC 9112 section 6.1): a proxy may have read it differently.
            raise bad_request("Transfer-Encoding in an HTTP/1.0 request")
        if length is not None:
            raise bad_request("both Content-Length and Transfer-Encoding")
        codings = transfer_codings(encoding)
        if codings[-1] != "chunked" or codings.count("chunked") > 1:
            # Chunked not last, or twice: the body's length cannot be known, and RFC 9112
            # section 6.3 says a server MUST answer 400 and close.
            raise bad_request(f"Transfer-Encoding {encoding[:40]!r} does not end in chunked")
        if len(codings) > 1:
            # gzip, chunked and the like: RFC 9112 section 6.1 says a server SHOULD answer
            # 501 to a transfer coding it does not understand; decoding compressed bodies
            # is not this server's business.
            raise HttpError(501, "Not Implemented", f"unsupported Transfer-Encoding {codings[0]!r}")
        head.chunked = True
    elif length is not None:
        if not _LENGTH_RE.fullmatch(length.encode("latin-1")):
            raise bad_request(f"invalid Content-Length {length[:40]!r}")
        head.length = int(length)
    if expect is not None:
        if expect != "100-continue":
            raise HttpError(417, "Expectation Failed", f"unsupported Expect: {expect[:40]!r}")
        head.expect_continue = http11
    if http11 and not hosts:
        # RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
        raise bad_request("HTTP/1.1 request without a Host header")
    tokens = {token.strip(" \t") for token in connection.split(",")}
    head.keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens


def _too_large(limit: int) -> str:
    return f"request body over the limit of {limit} bytes (CSERVER_MAX_BODY_BYTES)"


def body_too_large(limit: int) -> HttpError:
    """The 413 for a declared length over the limit."""
    return HttpError(413, "Content Too Large", _too_large(limit))
