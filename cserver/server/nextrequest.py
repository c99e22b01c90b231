"""Waiting, in a worker, for the next request on a kept-alive connection.

A worker that has served a request waits for the next one on the same connection itself,
up to the keep-alive timeout (fork mode's child a shorter while, then it hands the
connection back). The wait ends early at shutdown, but never drops a request that is
already arriving.
"""

from __future__ import annotations

import select
import time

from cserver.server.conn import ClientConnection
from cserver.server.context import ServerContext

# How long, at shutdown, a connection accepted just before may take to send its request.
ARRIVAL_GRACE = 1.0


def wait_readable(conn: ClientConnection, timeout: float, ctx: ServerContext) -> bool:
    """Wait for the next request on a connection; False on timeout, or on shutdown unless
    a request has arrived or is arriving on a fresh connection."""
    if conn.reader.arrived():
        return True
    poller = select.poll()
    poller.register(conn.fd, select.POLLIN)
    # One wait for both: no thread wakes up periodically just to look for a shutdown.
    poller.register(ctx.stop_fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while not ctx.stopping.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        events = poller.poll(remaining * 1000)
        if any(fd == conn.fd for fd, _ in events):
            return True
        if events:
            break  # the stop pipe: the server (or, in a child, the parent) stopped
    return arrives_before_shutdown(conn)


def arrives_before_shutdown(conn: ClientConnection) -> bool:
    """At shutdown: an idle keep-alive connection just closes, but one accepted without a
    request yet (a reload retiring this generation, say) was sent one: wait briefly for it
    rather than reset it."""
    if conn.requests_served:
        return False
    poller = select.poll()
    poller.register(conn.fd, select.POLLIN)
    return bool(poller.poll(ARRIVAL_GRACE * 1000))
