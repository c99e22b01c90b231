"""One client socket, always non-blocking: every wait has a deadline, so no client can hang us."""

from __future__ import annotations

import contextlib
import select
import socket
import time

from cserver.server.limits import DEFAULT_HEAD_LIMITS, RECV_SIZE, HeadLimits
from cserver.server.reader import RequestReader

# Connection states, kept as small ints: they are read on every request.
IDLE = 0  # between requests, waiting for the first byte (keep-alive timeout runs)
HEAD = 1  # part of a request is buffered (header timeout runs)
READY = 2  # a whole request is buffered, or in transit between threads
BUSY = 3  # a worker, thread or child owns it
LINGER = 4  # the response was sent; draining what the client still sends before closing

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
        "linger_budget",
        "linger_gap",
        "linger_quiet_until",
        "linger_until",
        "reader",
        "requests_served",
        "since",
        "sock",
        "state",
        "unread",
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
        self.linger = False  # the response went out with input unread: close gracefully
        # The declared body the client is still sending: drained on top of linger_bytes.
        self.unread = 0
        # While lingering (lingering.py): how much the client may still send, the quiet gap
        # that ends it and when that gap runs out, and the overall deadline.
        self.linger_budget = 0
        self.linger_gap = 0.0
        self.linger_quiet_until = 0.0
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

    def start_linger(self, budget: int) -> None:
        """Half-close: the client sees our response and EOF, and may still send ``budget``
        bytes."""
        self.state = LINGER
        self.linger_budget = budget
        self.reader.clear()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def discard_input(self) -> bool:
        """Read and drop what the client sends while lingering; False once we should close
        (the client closed, failed, or went over its budget)."""
        for _ in range(16):
            try:
                data = self.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return False
            if not data:
                return False
            self.linger_budget -= len(data)
            if self.linger_budget < 0:
                return False
        self.linger_quiet_until = time.monotonic() + self.linger_gap
        return True

    def close(self) -> None:
        self.reader.drop_chunked()
        with contextlib.suppress(OSError):
            self.sock.close()
