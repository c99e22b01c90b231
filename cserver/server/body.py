"""Request bodies: a lazy reader for a known length, and chunked decoding."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from typing import IO

from cserver.server.conn import ClientConnection, ClientGone
from cserver.server.http import HttpError, bad_request, body_too_large, chunk_size
from cserver.server.limits import MAX_CHUNK_LINE, MAX_HEADERS, RECV_SIZE, SPOOL_BYTES

__all__ = ["BodyReader", "read_chunked"]


class BodyReader:
    """``wsgi.input`` for a body of known length, read lazily from the connection."""

    def __init__(
        self, conn: ClientConnection, length: int, body_timeout: float, io_timeout: float
    ) -> None:
        self._conn = conn
        self.remaining = length
        self._body_timeout = body_timeout
        self._io_timeout = io_timeout
        self._deadline = 0.0
        self.broken = False  # the client went away before the whole body came

    def prefetch(self, limit: int) -> None:
        """Buffer the whole body now if it is at most ``limit`` bytes, so the application
        never sees a small body cut short."""
        if self.remaining <= limit:
            while len(self._conn.buf) < self.remaining:
                self._need(force=True)

    def _need(self, force: bool = False) -> None:
        conn = self._conn
        if conn.buf and not force:
            return
        if not self._deadline:
            self._deadline = time.monotonic() + self._body_timeout
        try:
            if conn.fill(self._deadline, self._io_timeout):
                return
        except ClientGone:
            self.broken = True
            raise
        self.broken = True
        raise ClientGone("closed mid-body")

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.remaining
        size = min(size, self.remaining)
        parts = []
        while size > 0:
            self._need()
            data = self._conn.take(size)
            self.remaining -= len(data)
            size -= len(data)
            parts.append(data)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = self.remaining if size is None or size < 0 else min(size, self.remaining)
        parts = []
        while limit > 0:
            self._need()
            buf = self._conn.buf
            newline = buf.find(b"\n", 0, limit)
            data = self._conn.take(newline + 1 if newline >= 0 else min(len(buf), limit))
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

    def __iter__(self) -> Iterator[bytes]:
        while self.remaining:
            yield self.readline()

    def discard(self, limit: int) -> bool:
        """Skip what the application left unread; False if more than ``limit`` remained."""
        if self.remaining > limit:
            return False
        while self.remaining:
            self.read(min(self.remaining, RECV_SIZE))
        return True


def read_chunked(
    conn: ClientConnection, limit: int, body_timeout: float, io_timeout: float
) -> tuple[IO[bytes], int]:
    """Decode a whole chunked body, so the application sees a plain CONTENT_LENGTH.

    Returns the body as a file (in memory up to SPOOL_BYTES, then on disk) and its length.
    """
    deadline = time.monotonic() + body_timeout
    body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    total = 0
    try:
        while True:
            size = chunk_size(_read_line(conn, deadline, io_timeout))
            if size is None:
                raise bad_request("invalid chunk size")
            if total + size > limit:
                raise body_too_large(limit)
            if size == 0:
                for _ in range(MAX_HEADERS + 1):  # trailers are read and dropped
                    if not _read_line(conn, deadline, io_timeout):
                        body.seek(0)
                        return body, total
                raise HttpError(431, "Request Header Fields Too Large", "too many trailers")
            left = size
            while left:
                if not conn.buf and not conn.fill(deadline, io_timeout):
                    raise ClientGone("closed mid-chunk")
                data = conn.take(left)
                body.write(data)
                left -= len(data)
            total += size
            while len(conn.buf) < 2:
                if not conn.fill(deadline, io_timeout):
                    raise ClientGone("closed mid-chunk")
            if conn.buf[:2] != b"\r\n":
                raise bad_request("chunk not terminated by CRLF")
            del conn.buf[:2]
    except BaseException:
        body.close()
        raise


def _read_line(conn: ClientConnection, deadline: float, io_timeout: float) -> bytes:
    start = 0
    while True:
        end = conn.buf.find(b"\r\n", start)
        if end >= 0:
            line = bytes(conn.buf[:end])
            del conn.buf[: end + 2]
            return line
        if len(conn.buf) > MAX_CHUNK_LINE:
            raise bad_request("chunk header line too long")
        start = max(0, len(conn.buf) - 1)
        if not conn.fill(deadline, io_timeout):
            raise ClientGone("closed mid-chunk")
