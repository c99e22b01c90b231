"""``wsgi.file_wrapper`` (PEP 3333), sent with os.sendfile where the file and socket allow.

Django's FileResponse hands its file to the wrapper; a 50 MB file then costs a handful of
sendfile() calls instead of thousands of read() and send() pairs through Python.
"""

from __future__ import annotations

import io
import os
import select
import stat
from collections.abc import Iterator
from typing import IO, Any, Protocol

from cserver.server.conn import ClientConnection, ClientGone
from cserver.server.limits import Limits

# When sendfile is not possible, read at least this much per send: the application's block
# size hint (Django's is 4 KiB) is tuned for memory, not for system calls.
_MIN_BLOCK = 256 * 1024
# One sendfile() call sends at most this much, so a huge file does not block the check
# for a client that stopped reading for longer than one io_timeout.
_SENDFILE_STEP = 8 * 1024 * 1024


class _Limited(Protocol):
    @property
    def limits(self) -> Limits: ...


class SentBody(Protocol):
    """What send_file needs of the response it sends for (response.Response), declared here:
    context.py imports this module for FileWrapper, so it must import neither of them."""

    conn: ClientConnection
    size: int  # body bytes sent so far, counted here

    @property
    def ctx(self) -> _Limited: ...

    @property
    def length(self) -> int | None: ...

    @property
    def no_body(self) -> bool: ...

    def start(self) -> None: ...


class FileWrapper:
    """Iterates a file in blocks; the server recognises it and may send the file directly."""

    def __init__(self, filelike: IO[bytes], blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        close = getattr(filelike, "close", None)
        if close is not None:
            self.close = close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = max(self.blksize, _MIN_BLOCK)
        while True:
            data = read(size)
            if not data:
                return
            yield data


def _file_position(filelike: Any) -> tuple[int, int] | None:
    """(descriptor, offset) of a regular file, or None if sendfile cannot read it."""
    try:
        fd = filelike.fileno()
        offset = filelike.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
    except OSError:
        return None
    return fd, offset


def send_file(response: SentBody, wrapper: FileWrapper) -> bool:
    """Send the wrapped file as the body with sendfile(); False if it must be iterated.

    Only for a declared Content-Length: that many bytes go out, never more, even if the
    file grows meanwhile; if it ends early, Response.finish() closes the connection.
    """
    if response.no_body:
        response.start()
        return True
    length = response.length
    position = _file_position(wrapper.filelike)
    if length is None or position is None or not hasattr(os, "sendfile"):
        return False
    fd, offset = position
    response.start()
    conn = response.conn
    io_timeout = response.ctx.limits.io_timeout
    while response.size < length:
        step = min(length - response.size, _SENDFILE_STEP)
        try:
            sent = os.sendfile(conn.fd, fd, offset, step)
        except (BlockingIOError, InterruptedError):
            conn.wait(select.POLLOUT, float("inf"), io_timeout)
            continue
        except OSError as exc:
            raise ClientGone(str(exc)) from exc
        if not sent:
            break  # the file is shorter than declared
        offset += sent
        response.size += sent
    return True
