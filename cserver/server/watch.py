"""Servers whose selector reads each request before anything else sees it.

Clients that send slowly ("slowloris") cost a selector entry and a buffer here, never a
worker thread or a child process: a connection is handed on only once its whole head (and
a small body) is buffered, or once it is known to be bad. Between requests, idle
keep-alive connections come back here too: from a pool worker when no request follows
within pool.NEXT_REQUEST_WAIT_MS, from a fork child after fork.HAND_BACK_AFTER.
"""

from __future__ import annotations

import contextlib
import selectors
import time
from collections import deque

from cserver.server.base import BaseServer
from cserver.server.conn import HEAD, IDLE, READY, ClientConnection, ClientGone
from cserver.server.handler import incomplete_request, send_error
from cserver.server.http import HttpError
from cserver.server.nextrequest import ARRIVAL_GRACE
from cserver.server.reader import CONTINUE, GO

_EVENT_READ = selectors.EVENT_READ
_DIRECT_SELECTORS: tuple[type, ...] = tuple(
    cls for cls in (getattr(selectors, "EpollSelector", None),) if cls is not None
)


class WatchingServer(BaseServer):
    """Buffers requests in the selector thread; subclasses say what ``dispatch`` does."""

    def started(self) -> None:
        # Every open client connection this process owns, by file descriptor. Entries are
        # removed before a socket is closed, so a reused descriptor never finds a stale one.
        self.conns: dict[int, ClientConnection] = {}
        # Connections other threads hand back to be watched again; deque appends are atomic.
        self._returned: deque[ClientConnection] = deque()
        # Whether other threads may register sockets with the selector directly.
        self._direct = isinstance(self.selector, _DIRECT_SELECTORS) and self.multithread

    def open_connections(self) -> int:
        return len(self.conns)

    def tick_interval(self) -> float:
        limits = self.limits
        return min(
            1.0, limits.keepalive_timeout / 4, limits.header_timeout / 4, limits.linger_idle / 2
        )

    def handle_accepted(self, conn: ClientConnection) -> None:
        self.conns[conn.fd] = conn
        conn.since = time.monotonic()
        self.selector.register(conn.sock, _EVENT_READ, conn)

    def client_ready(self, conn: ClientConnection) -> None:
        try:
            got = conn.recv_nowait()
        except ClientGone:
            got = False
        if got is None:
            return
        if not got:
            if conn.state == HEAD and conn.reader.arrived():
                # Half-closed with a request incomplete: it can still read the answer.
                self.selector.unregister(conn.sock)
                self.conns.pop(conn.fd, None)
                err = incomplete_request("closed its side before the end of the request")
                send_error(conn, self.ctx, err, wait=0)
                self.linger(conn)
                return
            self.drop(conn)
            return
        reader = conn.reader
        if conn.state == IDLE:
            conn.state = HEAD
            reader.deadline = time.monotonic() + self.limits.header_timeout
        ready = reader.ready(self.limits.max_body_bytes, self.limits.body_timeout)
        if ready == GO:
            self.selector.unregister(conn.sock)
            conn.state = READY
            self.dispatch(conn)
        elif ready == CONTINUE:
            conn.send_continue()

    def dispatch(self, conn: ClientConnection) -> None:
        """Hand on a connection whose request is buffered (selector thread)."""
        raise NotImplementedError

    def give_back(self, conn: ClientConnection) -> None:
        """From a worker: watch this kept-alive connection again."""
        conn.since = time.monotonic()
        if self._direct:
            # epoll's interest list may change while another thread waits on it, and the
            # kernel sees the change at once: no wake-up round trip on the hot path.
            self._rewatch(conn)
            if self.ctx.stopping.is_set():
                self.drop(conn)  # shutdown began meanwhile; dropping twice is harmless
            return
        conn.state = READY  # in transit until the selector thread registers it
        self._returned.append(conn)
        self.wake()

    def _rewatch(self, conn: ClientConnection) -> None:
        reader = conn.reader
        if reader.head is not None:
            conn.state = HEAD  # its body is arriving, on the deadline reader.ready() set
        elif conn.buf:
            # Part of the next request came with the last one: its clock is running.
            reader.deadline = conn.since + self.limits.header_timeout
            conn.state = HEAD
        else:
            conn.state = IDLE
        try:
            self.selector.register(conn.sock, _EVENT_READ, conn)
        except (KeyError, ValueError, OSError, RuntimeError):
            # The selector closed under us at shutdown.
            self.forget(conn)
            conn.close()

    def woken(self) -> None:
        while self._returned:
            conn = self._returned.popleft()
            if self.ctx.stopping.is_set():
                self.drop(conn, registered=False)
            else:
                self._rewatch(conn)

    def housekeeping(self) -> None:
        now = time.monotonic()
        idle_before = now - self.limits.keepalive_timeout
        for conn in list(self.conns.values()):
            state = conn.state
            if state == IDLE and conn.since < idle_before:
                self.drop(conn)
            elif state == HEAD and conn.reader.deadline < now:
                self.selector.unregister(conn.sock)
                self.conns.pop(conn.fd, None)
                timeout = HttpError(408, "Request Timeout", "request too slow")
                send_error(conn, self.ctx, timeout, wait=0)
                self.linger(conn)

    def drop(self, conn: ClientConnection, registered: bool = True) -> None:
        """Forget and close a connection (selector thread)."""
        if registered:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(conn.sock)
        self.conns.pop(conn.fd, None)
        conn.close()

    def forget(self, conn: ClientConnection) -> None:
        """From any thread: a connection that is no longer ours to count or to close."""
        self.conns.pop(conn.fd, None)

    def finish_arrivals(self, deadline: float) -> None:
        """At shutdown: serve the requests already on their way instead of resetting them.

        Idle keep-alive connections close at once. A connection accepted but not yet
        complete (when a reload retires this generation, its client has sent or is sending
        a request) gets a short grace to finish its head, then is dispatched as usual.
        """
        for conn in list(self.conns.values()):
            if conn.state == IDLE and conn.requests_served:
                self.drop(conn)
        end = min(deadline, time.monotonic() + ARRIVAL_GRACE)
        while time.monotonic() < end and any(
            conn.state in (IDLE, HEAD) for conn in self.conns.values()
        ):
            self.select_once(max(0.0, min(0.05, end - time.monotonic())))
        self.close_watched()

    def close_watched(self) -> None:
        """At shutdown: close every connection still waiting in the selector."""
        for conn in list(self.conns.values()):
            if conn.state in (IDLE, HEAD):
                self.drop(conn)
