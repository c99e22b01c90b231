"""One client socket, always non-blocking: every wait has a deadline, so no client can hang us."""

from __future__ import annotations

import contextlib
import select
import socket
import time

from cserver.server.limits import DEFAULT_HEAD_LIMITS, LINGER_BYTES, RECV_SIZE, HeadLimits
from cserver.server.reader import RequestReader

# Connection states, kept as small ints: they are read on every request.
IDLE = 0  # between requests, waiting for the first byte (keep-alive timeout runs)
HEAD = 1  # part of a request is buffered (header timeout runs)
READY = 2  # a whole request is buffered, or in transit between threads
BUSY = 3  # a worker, thread or child owns it
LINGER = 4  # an error response was sent; draining the client before closing

_POLL_FLAGS = select.POLLERR | select.POLLHUP


class ClientGone(ConnectionError):
    """The client closed the connection, failed, or stopped sending within the timeout.

    A ConnectionError, so that Django reading ``wsgi.input`` turns it into its own
    UnreadablePostError like any other broken read.
    """


class ClientClosedEarly(ClientGone):
    """The client ended its sending side (a clean end of stream) with the request
    incomplete. It may still read: the server answers 400 rather than vanish (RFC 9112
    section 8 allows an error response to an incomplete request before closing)."""


class ClientTimeout(ClientGone):
    """The client sent too slowly: a deadline passed."""


class ClientConnection:
    """An accepted socket plus the bytes read from it but not yet consumed; ``reader``
    owns the request those bytes make."""

    __slots__ = (
        "addr",
        "buf",
        "fd",
        "linger",
        "linger_limit",
        "linger_until",
        "reader",
        "requests_served",
        "since",
        "sock",
        "state",
    )

    def __init__(
        self,
        sock: socket.socket,
        addr: tuple | str | None,
        head_limits: HeadLimits = DEFAULT_HEAD_LIMITS,
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.addr = addr
        self.fd = sock.fileno()
        self.buf = bytearray()
        self.state = IDLE
        self.since = 0.0  # when the connection last became idle
        self.reader = RequestReader(self.buf, head_limits)
        self.requests_served = 0
        self.linger = False  # an error response went out: close gracefully
        # How much the client may still send while we close, and until when.
        self.linger_limit = LINGER_BYTES
        self.linger_until = 0.0

    def recv_nowait(self) -> bool | None:
        """Append what the socket has now: True if data came, False at end of stream, None if
        nothing is there yet."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise ClientGone(str(exc)) from exc
        if not data:
            return False
        self.buf += data
        return True

    def fill(self, deadline: float, io_timeout: float) -> bool:
        """Read more bytes, waiting until ``deadline`` at most; False at end of stream."""
        while True:
            got = self.recv_nowait()
            if got is not None:
                return got
            self.wait(select.POLLIN, deadline, io_timeout)

    def wait(self, event: int, deadline: float, io_timeout: float) -> None:
        """Wait until the socket is ready for ``event``; ClientTimeout when time runs out."""
        remaining = min(deadline - time.monotonic(), io_timeout)
        if remaining <= 0:
            raise ClientTimeout("timed out")
        poller = select.poll()
        poller.register(self.fd, event | _POLL_FLAGS)
        if not poller.poll(remaining * 1000):
            raise ClientTimeout("timed out")

    def send_all(self, data: bytes, io_timeout: float) -> None:
        """Send everything, waiting at most ``io_timeout`` for each bit of progress."""
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            raise ClientGone(str(exc)) from exc
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            self.wait(select.POLLOUT, float("inf"), io_timeout)
            try:
                sent = self.sock.send(view)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                raise ClientGone(str(exc)) from exc
            view = view[sent:]

    def take(self, size: int) -> bytes:
        """Remove and return up to ``size`` buffered bytes."""
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def send_continue(self) -> None:
        """Tell a client that waits for it (``Expect: 100-continue``) to send its body."""
        with contextlib.suppress(OSError):
            self.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def start_linger(self) -> None:
        """Half-close: the client sees our response and EOF, and may still send."""
        self.state = LINGER
        self.reader.clear()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def discard_input(self) -> bool:
        """Read and drop what the client sends while lingering; False once we should close."""
        for _ in range(16):
            try:
                data = self.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not data:
                return False
            self.linger_limit -= len(data)
            if self.linger_limit < 0:
                return False
        return True

    def close_gracefully(self, timeout: float) -> None:
        """Blocking linger for threads and children: half-close, drain briefly, close.

        Closing with unread input makes the kernel send a reset, which can destroy the
        error response before the client reads it.
        """
        self.start_linger()
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | _POLL_FLAGS)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                break
            if not self.discard_input():
                break
        self.close()

    def close(self) -> None:
        self.reader.drop_chunked()
        with contextlib.suppress(OSError):
            self.sock.close()
