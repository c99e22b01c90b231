"""What every concurrency mode shares: the listener, the accept loop, the limit, the shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cserver import generation
from cserver.server import requestlog
from cserver.server.canned import connection_limit_response
from cserver.server.conn import LINGER, ClientConnection
from cserver.server.context import ServerContext
from cserver.server.handler import handle_request
from cserver.server.lifecycle import Lifecycle
from cserver.server.limits import Limits
from cserver.server.lingering import LingeringConnections
from cserver.server.nextrequest import wait_readable
from cserver.server.refusals import RefusalLog
from cserver.server.response import server_logger
from cserver.server.shared_limit import DEFER_STEP, ConnectionBudget

if TYPE_CHECKING:
    from cserver.delay import RandomDelay

__all__ = ["BaseServer", "Limits", "ServerCore"]

logger = logging.getLogger("cserver")

_LISTENER = "listener"
_WAKE = "wake"


class ServerCore:
    """What runcserver's _serve() and the banner use of a server, in every mode (asgi too):
    the socket, the context (its delay), the limits and the lifecycle hooks."""

    mode = "core"
    multithread = True
    multiprocess = False

    def __init__(
        self,
        listener: socket.socket,
        ctx: ServerContext,
        limits: Limits,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.listener = listener
        self.ctx = ctx
        self.limits = limits
        ctx.limits = limits
        self.lifecycle = lifecycle or Lifecycle()

    @property
    def server_address(self) -> tuple:
        return self.listener.getsockname()

    @property
    def delay(self) -> RandomDelay | None:
        return self.ctx.delay

    def follow_changes(self, report: Callable[[], None]) -> None:
        """In a server generation: call ``report`` once serving, then apply the supervisor's
        changed templates and translations to this process."""
        generation.follow_changes(report)


class BaseServer(ServerCore):
    """Accept loop, connection limit and shutdown; subclasses decide what happens to a
    connection once accepted."""

    mode = "base"
    # Request log lines written by a thread of their own (requestlog.py), not by each worker.
    request_log_thread = True

    def __init__(
        self,
        listener: socket.socket,
        ctx: ServerContext,
        limits: Limits,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        super().__init__(listener, ctx, limits, lifecycle)
        self.listener.setblocking(False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # Closing the write end at shutdown makes the read end readable for every waiter.
        self._stop_r, self._stop_w = os.pipe()
        ctx.stop_fd = self._stop_r
        self._shutdown_requested = False
        self.selector = selectors.DefaultSelector()
        self.accepting = False
        self.refused = 0
        self._refusal_log = RefusalLog()
        self._accept_paused_until = 0.0
        # With the lingering connections at their cap and the limit reached, accepting
        # pauses: further clients wait in the listen backlog instead of being reset.
        self.lingering = LingeringConnections(self.selector, limits)
        self._full = False
        # Set in a worker process of --processes N: the limit counts every process.
        self.budget: ConnectionBudget | None = None

    def share_connection_limit(self, budget: ConnectionBudget) -> None:
        """Count against a limit shared with other worker processes (before serving)."""
        self.budget = budget

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def request_shutdown(self) -> None:
        """Ask the server to stop; safe from a signal handler and from any thread."""
        self._shutdown_requested = True
        self.wake()

    def serve_forever(self) -> None:
        """Serve until request_shutdown(), then drain in-flight work within the grace period."""
        self.selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        if self.request_log_thread:
            requestlog.start_writer(server_logger)
        self.started()
        self.set_accepting(True)
        try:
            while not self._shutdown_requested:
                self.select_once(self._loop_timeout())
                self._housekeeping()
        finally:
            self.ctx.stopping.set()
            with contextlib.suppress(OSError):
                os.close(self._stop_w)
            self.set_accepting(False)
            try:
                self.drain(time.monotonic() + self.limits.grace_period)
            finally:
                # After the drain, so the last requests' lines are written too.
                requestlog.stop_writer()
                self.lifecycle.server_stopped()
                self.close()

    def select_once(self, timeout: float) -> None:
        """Wait up to ``timeout`` for events and handle them (the serving thread)."""
        for key, _events in self.selector.select(timeout=timeout):
            data = key.data
            if data is _LISTENER:
                self._accept_ready()
            elif data is _WAKE:
                self._drain_wake_pipe()
                self._take_lingering()
                self.woken()
            elif data.state == LINGER:
                if self.lingering.readable(data):
                    self._resume_if_room()
            else:
                self.client_ready(data)

    def set_accepting(self, on: bool) -> None:
        if on and not self.accepting:
            self.selector.register(self.listener, selectors.EVENT_READ, _LISTENER)
        elif not on and self.accepting:
            self.selector.unregister(self.listener)
        self.accepting = on

    def _loop_timeout(self) -> float:
        tick = self.tick_interval()
        if self._accept_paused_until:
            return max(0.0, min(tick, self._accept_paused_until - time.monotonic()))
        return tick

    def _accept_ready(self) -> None:
        # Accept a bounded batch so one busy listener cannot starve the rest of the loop.
        for _ in range(64):
            if self.budget is not None and self._leave_to_peer(self.budget):
                return
            if self.lingering.full and self._at_limit():
                self._full = True
                self.set_accepting(False)
                return
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and friends: stop accepting for a moment, keep serving the rest.
                logger.warning("accept() failed: %s", exc)
                self.set_accepting(False)
                self._accept_paused_until = time.monotonic() + 0.1
                return
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = ClientConnection(sock, addr, self.limits.head)
            if not self._admit():
                self.refuse(conn)
            else:
                self.handle_accepted(conn)

    def _leave_to_peer(self, budget: ConnectionBudget) -> bool:
        # Not with one request at a time (--nothreading): a busy process does not accept.
        if not self.multithread or not budget.leave_to_peer(self.open_connections()):
            return False
        self.set_accepting(False)
        self._accept_paused_until = time.monotonic() + DEFER_STEP
        return True

    def _at_limit(self) -> bool:
        if self.budget is not None:
            self.budget.report(self.open_connections())
            return self.budget.total() >= self.limits.connection_limit
        return self.open_connections() >= self.limits.connection_limit

    def _admit(self) -> bool:
        """Whether a connection just accepted fits under the limit (and counts from now)."""
        if self.budget is not None:
            return self.budget.admit(self.open_connections())
        return not self._at_limit()

    def refuse(self, conn: ClientConnection) -> None:
        """Answer a connection over the limit with a 503 at once; it holds no worker."""
        self.refused += 1
        data = connection_limit_response(self.limits.connection_limit)
        with contextlib.suppress(OSError):
            conn.sock.send(data)  # a fresh socket's send buffer takes this whole
        # The client may not have sent its request yet: closing before it does would make
        # that request draw a reset, which can destroy the 503 before the client reads it.
        self.linger(conn, idle=max(self.limits.linger_idle, self.limits.keepalive_timeout))
        self._refusal_log.refused(self.limits.connection_limit)

    def linger(self, conn: ClientConnection, idle: float | None = None) -> None:
        """Close after a response without a reset (selector thread only): lingering.py."""
        if self.ctx.stopping.is_set():
            conn.close()
            return
        self.lingering.start(conn, idle)

    def linger_later(self, conn: ClientConnection) -> None:
        """linger() from any thread: the selector thread takes it on its next wake-up."""
        self.lingering.pending.append(conn)
        self.wake()

    def _take_lingering(self) -> None:
        pending = self.lingering.pending
        while pending:
            self.linger(pending.popleft())

    def _resume_if_room(self) -> None:
        if not self._full or self._shutdown_requested or self._accept_paused_until:
            return
        if not self.lingering.full or not self._at_limit():
            self._full = False
            self.set_accepting(True)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.lingering.conns:
            self.lingering.expire(now)
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            if not self._shutdown_requested:
                self.set_accepting(True)
        if self.budget is not None:
            # Connections other threads closed since: room for the other processes too.
            self.budget.report(self.open_connections())
        self._resume_if_room()
        self.housekeeping()

    def _drain_wake_pipe(self) -> None:
        try:
            # A short read means the pipe is empty: no exception on the common path.
            while len(os.read(self._wake_r, 4096)) == 4096:
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self.lingering.close_all()
        self.selector.close()
        for fd in (self._wake_r, self._wake_w, self._stop_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.listener.close()

    # Hooks for the concurrency modes.
    def started(self) -> None:
        return None

    def tick_interval(self) -> float:
        return min(1.0, self.limits.linger_idle / 2)

    def open_connections(self) -> int:
        """Client connections counted against the limit."""
        raise NotImplementedError

    def handle_accepted(self, conn: ClientConnection) -> None:
        raise NotImplementedError

    def client_ready(self, conn: ClientConnection) -> None:
        return None

    def woken(self) -> None:
        return None

    def housekeeping(self) -> None:
        return None

    def drain(self, deadline: float) -> None:
        return None

    def serve_connection(self, conn: ClientConnection, worker: str) -> None:
        """Serve requests on one connection until it closes, idles out, or the server stops."""
        try:
            while wait_readable(conn, self.limits.keepalive_timeout, self.ctx):
                if not handle_request(conn, self.ctx, worker):
                    break
        except Exception:
            logger.exception("cserver: internal error on a connection from %s", conn.addr)
            conn.linger = False
        finally:
            self.finish_connection(conn)

    def finish_connection(self, conn: ClientConnection) -> None:
        """Close a connection a thread is done with; gracefully after an error response."""
        if conn.linger and not self.ctx.stopping.is_set():
            self.linger_later(conn)
        else:
            conn.close()
