"""What every concurrency mode shares: the listening socket, the accept loop, the shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from cserver.server.handler import ClientConnection, ServerContext

logger = logging.getLogger("cserver")


def _noop() -> None:
    return None


@dataclass
class Lifecycle:
    """Hooks through which the framework integration owns per-worker resources.

    The server itself knows nothing of Django; the runcserver command passes hooks that
    close a worker's database connections at the right moment for each mode.
    """

    connection_finished: Callable[[], None] = _noop  # thread mode, in the connection's thread
    worker_stopped: Callable[[], None] = _noop  # pool mode, in each worker as it exits
    child_started: Callable[[], None] = _noop  # fork mode, in the child right after fork
    child_finished: Callable[[], None] = _noop  # fork mode, in the child before it exits
    server_stopped: Callable[[], None] = _noop  # every mode, in the serving thread at the end


@dataclass(frozen=True)
class Limits:
    """Timeouts and sizes that bound what one client can hold."""

    keepalive_timeout: float = 5.0
    request_timeout: float = 60.0
    grace_period: float = 5.0
    workers: int = 8


def create_listener(addr: str, port: int, ipv6: bool, backlog: int) -> socket.socket:
    """Bind and listen like runserver does, with SO_REUSEADDR so a restart can rebind at once."""
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def wait_readable(conn: ClientConnection, timeout: float, ctx: ServerContext) -> bool:
    """Wait for the next request on an idle connection; False on timeout or shutdown."""
    if conn.buf:
        return True
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    while not ctx.stopping.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        # Short slices so a shutdown is noticed without closing sockets under a thread.
        if poller.poll(min(remaining, 0.2) * 1000):
            return True
    return False


class BaseServer:
    """Accept loop and shutdown; subclasses decide what happens to an accepted socket."""

    mode = "base"
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
        self.lifecycle = lifecycle or Lifecycle()
        self.listener.setblocking(False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._shutdown_requested = False
        self.selector = selectors.DefaultSelector()
        self.accepting = False
        self.accepted = 0

    @property
    def server_address(self) -> tuple:
        return self.listener.getsockname()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def request_shutdown(self) -> None:
        """Ask the server to stop; safe from a signal handler and from any thread."""
        self._shutdown_requested = True
        self.wake()

    def serve_forever(self) -> None:
        """Serve until request_shutdown(), then drain in-flight work within the grace period."""
        self.selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.set_accepting(True)
        self.started()
        try:
            while not self._shutdown_requested:
                for key, _events in self.selector.select(timeout=self.tick_interval()):
                    if key.data == "listener":
                        self._accept_ready()
                    elif key.data == "wake":
                        self._drain_wake_pipe()
                        self.woken()
                    else:
                        self.client_ready(key)
                self.housekeeping()
        finally:
            self.ctx.stopping.set()
            self.set_accepting(False)
            try:
                self.drain(time.monotonic() + self.limits.grace_period)
            finally:
                self.lifecycle.server_stopped()
                self.close()

    def set_accepting(self, on: bool) -> None:
        if on and not self.accepting:
            self.selector.register(self.listener, selectors.EVENT_READ, "listener")
        elif not on and self.accepting:
            self.selector.unregister(self.listener)
        self.accepting = on

    def _accept_ready(self) -> None:
        # Accept a bounded batch so one busy listener cannot starve the rest of the loop.
        for _ in range(64):
            if not self.accepting:
                return
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and friends: log, back off briefly, keep serving.
                logger.warning("accept() failed: %s", exc)
                time.sleep(0.05)
                return
            self.accepted += 1
            sock.setblocking(True)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.handle_accepted(ClientConnection(sock, addr))

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self.selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.listener.close()

    # Hooks for the concurrency modes.
    def started(self) -> None:
        return None

    def tick_interval(self) -> float:
        return 1.0

    def handle_accepted(self, conn: ClientConnection) -> None:
        raise NotImplementedError

    def client_ready(self, key: selectors.SelectorKey) -> None:
        return None

    def woken(self) -> None:
        return None

    def housekeeping(self) -> None:
        return None

    def drain(self, deadline: float) -> None:
        return None

    def serve_connection(self, conn: ClientConnection, worker: str) -> None:
        """Serve requests on one connection until it closes, idles out, or the server stops."""
        from cserver.server.handler import handle_request

        conn.sock.settimeout(self.limits.request_timeout)
        try:
            while wait_readable(conn, self.limits.keepalive_timeout, self.ctx):
                if not handle_request(conn, self.ctx, worker):
                    break
        finally:
            conn.close()
