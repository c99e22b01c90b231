"""Request bodies: a lazy reader for a known length, and chunked decoding."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from typing import IO

from cserver.server.conn import ClientConnection, ClientGone
from cserver.server.http import HttpError, bad_request, body_too_large, chunk_size
from cserver.server.limits import MAX_CHUNK_LINE, MAX_HEADERS, RECV_SIZE, SPOOL_BYTES

__all__ = ["BodyReader", "ChunkedBody", "read_chunked"]


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


class ChunkedBody:
    """A chunked request body, decoded as its bytes arrive and never scanned twice.

    Whoever holds the connection feeds it the buffered bytes: the selector while a small
    body trickles in, then the worker until the end. The decoded body goes to a file (in
    memory up to SPOOL_BYTES, then on disk), so the application sees a plain CONTENT_LENGTH.
    An error found by the selector is kept and raised to the worker, which answers it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.total = 0
        self.done = False
        self.error: HttpError | None = None
        self._state = _SIZE
        self._left = 0  # bytes of the current chunk still to come
        self._trailers = 0

    def feed(self, buf: bytearray) -> bool:
        """Take what ``buf`` holds of the body out of it; True once the body is complete."""
        if self.error is not None:
            raise self.error
        try:
            return self._feed(buf)
        except HttpError as err:
            self.error = err
            raise

    def _feed(self, buf: bytearray) -> bool:
        while not self.done:
            if self._state == _DATA:
                if not buf:
                    return False
                data = buf[: self._left]
                self.file.write(data)
                del buf[: len(data)]
                self._left -= len(data)
                if not self._left:
                    self._state = _CRLF
            elif self._state == _CRLF:
                if len(buf) < 2:
                    return False
                if buf[:2] != b"\r\n":
                    raise bad_request("chunk not terminated by CRLF")
                del buf[:2]
                self._state = _SIZE
            else:
                line = _take_line(buf)
                if line is None:
                    return False
                if self._state == _SIZE:
                    self._chunk_started(line)
                elif not line:  # the empty line after the trailers
                    self.done = True
                    self.file.seek(0)
                else:
                    self._trailers += 1  # trailers are read and dropped
                    if self._trailers > MAX_HEADERS:
                        raise HttpError(431, "Request Header Fields Too Large", "too many trailers")
        return True

    def _chunk_started(self, line: bytes) -> None:
        size = chunk_size(line)
        if size is None:
            raise bad_request("invalid chunk size")
        if self.total + size > self.limit:
            raise body_too_large(self.limit)
        self.total += size
        self._left = size
        self._state = _DATA if size else _TRAILER

    def close(self) -> None:
        self.file.close()


_SIZE, _DATA, _CRLF, _TRAILER = range(4)


def _take_line(buf: bytearray) -> bytes | None:
    """The next CRLF-terminated line, taken out of ``buf``; None until it is complete."""
    end = buf.find(b"\r\n", 0, MAX_CHUNK_LINE + 2)
    if end < 0:
        if len(buf) > MAX_CHUNK_LINE:
            raise bad_request("chunk header line too long")
        return None
    line = bytes(buf[:end])
    del buf[: end + 2]
    return line


def read_chunked(
    conn: ClientConnection, limit: int, body_timeout: float, io_timeout: float
) -> tuple[IO[bytes], int]:
    """The whole chunked body of the current request, as a file and its length.

    Goes on from what the selector decoded already (``conn.chunked``), if anything.
    """
    body, conn.chunked = conn.chunked or ChunkedBody(limit), None
    deadline = time.monotonic() + body_timeout
    try:
        while not body.feed(conn.buf):
            if not conn.fill(deadline, io_timeout):
                raise ClientGone("closed mid-chunk")
    except BaseException:
        body.close()
        raise
    return body.file, body.total
