"""Request bodies as a worker reads them: lazily for a known length, or chunked to the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import IO

from cserver.server.conn import ClientClosedEarly, ClientConnection, ClientGone
from cserver.server.limits import RECV_SIZE

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
        self.closed_early = False  # ...by ending its sending side: it may still read

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
        self.broken = self.closed_early = True
        raise ClientClosedEarly(f"closed with {self.remaining - len(conn.buf)} body bytes missing")

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
    """The whole chunked body of the current request, as a file and its length.

    Goes on from what the selector decoded already, if anything.
    """
    body = conn.reader.take_chunked(limit)
    deadline = time.monotonic() + body_timeout
    try:
        while not body.feed(conn.buf):
            if not conn.fill(deadline, io_timeout):
                raise ClientClosedEarly("closed in the middle of a chunked body")
    except BaseException:
        body.close()
        raise
    return body.file, body.total
