"""HTTP/1.x wire format: reading a request head and body from a client socket."""

from __future__ import annotations

import contextlib
import re
import socket
from dataclasses import dataclass, field

# Limits that keep one client from exhausting the server's memory.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_CHUNKED_BODY = 64 * 1024 * 1024
RECV_SIZE = 64 * 1024

_TOKEN_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION_RE = re.compile(rb"^HTTP/1\.[01]$")


class HttpError(Exception):
    """A request the server answers with an error status, then closes."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason


class ClientGone(Exception):
    """The client closed the connection or stopped sending within the timeout."""


@dataclass(slots=True)
class ClientConnection:
    """One accepted socket plus the bytes read from it but not yet consumed."""

    sock: socket.socket
    addr: tuple
    buf: bytearray = field(default_factory=bytearray)
    requests_served: int = 0
    # Set by the pool's selector to expire idle keep-alive connections.
    idle_since: float = 0.0

    def fill(self) -> bool:
        """Read what the socket has; False on end of stream."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise ClientGone(str(exc)) from exc
        if not data:
            return False
        self.buf += data
        return True

    def take(self, size: int) -> bytes:
        """Remove and return up to ``size`` buffered bytes."""
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass(slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    raw_line: str
    headers: list[tuple[str, str]]


def read_head(conn: ClientConnection) -> RequestHead | None:
    """Read and parse one request head; None if the client closed before sending one."""
    start = 0
    while True:
        end = conn.buf.find(b"\r\n\r\n", start)
        if end >= 0:
            break
        if len(conn.buf) > MAX_HEAD_BYTES:
            raise HttpError(431, "Request Header Fields Too Large")
        start = max(0, len(conn.buf) - 3)
        if not conn.fill():
            if conn.buf.strip():
                raise ClientGone("closed mid-request")
            return None
    head = bytes(conn.buf[:end])
    del conn.buf[: end + 4]
    if len(head) > MAX_HEAD_BYTES:
        raise HttpError(431, "Request Header Fields Too Large")
    return parse_head(head)


def parse_head(head: bytes) -> RequestHead:
    """Parse a request line and header block (without the final blank line)."""
    # Tolerate the empty lines a client may send between keep-alive requests.
    head = head.lstrip(b"\r\n")
    lines = head.split(b"\r\n")
    request_line = lines[0]
    raw_line = request_line.decode("latin-1")
    if request_line.startswith(b"\x16\x03"):
        raise HttpError(400, "Bad Request", "TLS handshake on a plain HTTP port")
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "Bad Request", f"malformed request line {raw_line[:80]!r}")
    method, target, version = parts
    if not _TOKEN_RE.match(method):
        raise HttpError(400, "Bad Request", f"invalid method {raw_line[:40]!r}")
    if not _VERSION_RE.match(version):
        if version.startswith(b"HTTP/"):
            raise HttpError(505, "HTTP Version Not Supported")
        raise HttpError(400, "Bad Request", f"malformed request line {raw_line[:80]!r}")
    if not target or any(c <= 0x20 or c == 0x7F for c in target):
        raise HttpError(400, "Bad Request", "invalid request target")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, "Request Header Fields Too Large", "too many header lines")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or not _TOKEN_RE.match(name):
            # Covers obsolete line folding too (a line starting with whitespace).
            raise HttpError(400, "Bad Request", "malformed header line")
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return RequestHead(
        method.decode("ascii"), target.decode("latin-1"), version.decode("ascii"), raw_line, headers
    )


class BodyReader:
    """``wsgi.input`` for a body of known length, read lazily from the connection."""

    def __init__(self, conn: ClientConnection, length: int) -> None:
        self._conn = conn
        self.remaining = length

    def _chunk(self, size: int) -> bytes:
        conn = self._conn
        if not conn.buf and not conn.fill():
            raise ClientGone("closed mid-body")
        data = conn.take(min(size, self.remaining))
        self.remaining -= len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.remaining
        size = min(size, self.remaining)
        parts = []
        while size > 0:
            data = self._chunk(size)
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = self.remaining if size is None or size < 0 else min(size, self.remaining)
        parts = []
        while limit > 0:
            conn = self._conn
            if not conn.buf and not conn.fill():
                raise ClientGone("closed mid-body")
            newline = conn.buf.find(b"\n", 0, limit)
            take = newline + 1 if newline >= 0 else min(len(conn.buf), limit)
            data = conn.take(take)
            self.remaining -= len(data)
            limit -= len(data)
            parts.append(data)
            if newline >= 0:
                break
        return b"".join(parts)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while self.remaining:
            line = self.readline()
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        while self.remaining:
            yield self.readline()

    def discard(self, limit: int) -> bool:
        """Skip what the application left unread; False if more than ``limit`` remained."""
        if self.remaining > limit:
            return False
        while self.remaining:
            self.read(min(self.remaining, RECV_SIZE))
        return True


def read_chunked(conn: ClientConnection, limit: int = MAX_CHUNKED_BODY) -> bytes:
    """Decode a whole chunked body, so the application sees a plain CONTENT_LENGTH."""
    body = bytearray()
    while True:
        size_line = _read_line(conn)
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            if not size_text or not re.fullmatch(rb"[0-9A-Fa-f]+", size_text):
                raise ValueError
            size = int(size_text, 16)
        except ValueError:
            raise HttpError(400, "Bad Request", "invalid chunk size") from None
        if len(body) + size > limit:
            raise HttpError(413, "Content Too Large")
        if size == 0:
            # Trailers are read and dropped.
            while _read_line(conn):
                pass
            return bytes(body)
        while len(conn.buf) < size + 2:
            if not conn.fill():
                raise ClientGone("closed mid-chunk")
        if conn.buf[size : size + 2] != b"\r\n":
            raise HttpError(400, "Bad Request", "chunk not terminated by CRLF")
        body += conn.buf[:size]
        del conn.buf[: size + 2]


def _read_line(conn: ClientConnection) -> bytes:
    while True:
        end = conn.buf.find(b"\r\n")
        if end >= 0:
            line = bytes(conn.buf[:end])
            del conn.buf[: end + 2]
            return line
        if len(conn.buf) > 8192:
            raise HttpError(400, "Bad Request", "chunk header line too long")
        if not conn.fill():
            raise ClientGone("closed mid-chunk")
