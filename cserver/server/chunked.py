"""A chunked request body, decoded as its bytes arrive: no socket, no connection."""

from __future__ import annotations

import tempfile
from typing import IO

from cserver.server.fields import check_trailer
from cserver.server.http import (
    HttpError,
    bad_request,
    body_too_large,
    chunk_size,
    parse_fields,
    too_many_fields,
)
from cserver.server.limits import DEFAULT_HEAD_LIMITS, MAX_CHUNK_LINE, SPOOL_BYTES, HeadLimits

__all__ = ["ChunkedBody"]


class ChunkedBody:
    """A chunked request body, decoded as its bytes arrive and never scanned twice.

    Whoever holds the connection feeds it the buffered bytes: the selector while a small
    body trickles in, then the worker until the end. The decoded body goes to a file (in
    memory up to SPOOL_BYTES, then on disk), so the application sees a plain CONTENT_LENGTH.
    An error found by the selector is kept and raised to the worker, which answers it.
    """

    def __init__(self, limit: int, head_limits: HeadLimits = DEFAULT_HEAD_LIMITS) -> None:
        self.limit = limit
        self.head_limits = head_limits
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
                    self._trailer_line(line)
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

    def _trailer_line(self, line: bytes) -> None:
        """Check one trailer field line by the rules of a header line, then drop it.

        The application never sees trailers, but a malformed or forbidden one is refused:
        a proxy in front may have read the body's end, or the fields, differently.
        """
        limits = self.head_limits
        self._trailers += 1
        if self._trailers > limits.headers:
            raise too_many_fields(limits, "trailer fields")
        if b"\r" in line or line.translate(None, _CTL_BYTES) != line:
            raise bad_request("control character in a trailer field")
        ((name, _),) = parse_fields([line], limits)
        check_trailer(name.lower())

    def close(self) -> None:
        self.file.close()


_SIZE, _DATA, _CRLF, _TRAILER = range(4)
# As in a head: control characters other than HTAB (CR and LF end the line already).
_CTL_BYTES = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])


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
