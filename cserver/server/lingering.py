"""Lingering close (RFC 9112 section 9.6) in the selector thread of the WSGI modes.

A response can end while the client is still sending: the application answered without
reading the body (a 403 to an upload), or the server refused the request (413, 408, 503).
Closing then, with unread bytes in the socket, makes the kernel answer them with a reset,
and a reset can destroy the response before the client has read it: curl reports
"connection reset", a browser a network error. So the server half-closes (the client sees
the whole response and then the end of the stream), reads and drops what still comes, and
closes once the client is done: it closed too, or went quiet for ``linger_idle`` seconds.

A client that keeps sending is cut off after ``linger_bytes`` beyond the unread rest of a
declared body (which is within --max-body-bytes), or after ``linger_timeout`` seconds in
all. The socket belongs to the selector thread meanwhile, whatever the mode: a worker
thread never waits for a client to finish (a pool of one would otherwise be busy for the
whole bound), and a fork child hands its socket back to the parent (fork.py).
"""

from __future__ import annotations

import contextlib
import selectors
import time
from collections import deque

from cserver.server.conn import ClientConnection
from cserver.server.limits import MAX_LINGERING, Limits

__all__ = ["LingeringConnections"]


class LingeringConnections:
    """The connections a server is closing gracefully; the selector thread owns them."""

    def __init__(self, selector: selectors.BaseSelector, limits: Limits) -> None:
        self._selector = selector
        self._limits = limits
        self.conns: dict[int, ClientConnection] = {}
        # Handed over by other threads (deque appends are atomic), taken on the next wake-up.
        self.pending: deque[ClientConnection] = deque()
        # Refused connections linger too, so a flood over the limit gets clean 503s. Past
        # this many the server closes at once (a reset, but a bounded number of sockets).
        self.capacity = max(MAX_LINGERING, limits.connection_limit)

    def __len__(self) -> int:
        return len(self.conns)

    @property
    def full(self) -> bool:
        return len(self.conns) >= self.capacity

    def start(self, conn: ClientConnection, idle: float | None = None) -> None:
        """Half-close ``conn`` and drain it until the client is done or a bound is hit.

        ``idle`` replaces the quiet gap that ends the linger: a refused connection waits
        for a request that may not have been sent yet.
        """
        if self.full:
            conn.close()
            return
        limits = self._limits
        now = time.monotonic()
        conn.start_linger(limits.linger_bytes + conn.unread)
        conn.linger_gap = limits.linger_idle if idle is None else idle
        conn.linger_quiet_until = now + conn.linger_gap
        conn.linger_until = now + max(limits.linger_timeout, conn.linger_gap)
        try:
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        except (OSError, ValueError, KeyError):
            conn.close()
            return
        self.conns[conn.fd] = conn

    def readable(self, conn: ClientConnection) -> bool:
        """Drop what arrived; True once the connection is closed (done or over the bound)."""
        if conn.discard_input():
            return False
        self.end(conn)
        return True

    def expire(self, now: float) -> bool:
        """Close the connections past a deadline; True if any closed."""
        expired = [
            conn
            for conn in self.conns.values()
            if conn.linger_until < now or conn.linger_quiet_until < now
        ]
        for conn in expired:
            self.end(conn)
        return bool(expired)

    def end(self, conn: ClientConnection) -> None:
        self.conns.pop(conn.fd, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)
        conn.close()

    def close_all(self) -> None:
        """At shutdown, or in a fork child (where these sockets are the parent's)."""
        for conn in (*self.conns.values(), *self.pending):
            conn.close()
        self.conns.clear()
        self.pending.clear()
