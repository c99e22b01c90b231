"""A process per connection, made safe: children never outlive the server or share its state."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import sys
import time
import traceback
from collections import deque

from cserver.server.base import logger
from cserver.server.conn import ClientConnection
from cserver.server.watch import WatchingServer

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to signal this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class ForkServer(WatchingServer):
    """Forks a child for each connection, with at most ``workers`` children alive at once.

    The parent reads each request head first (so a slow client never holds a child) and
    queues connections with a complete request while the cap is reached; past the
    connection limit new connections get a 503.
    """

    mode = "fork"
    multithread = False
    multiprocess = True

    def started(self) -> None:
        super().started()
        # Objects that exist now are shared with every child; moving them out of the
        # collector's reach keeps a child's GC from touching (and so copying) their pages.
        gc.collect()
        gc.freeze()
        self.children: dict[int, float] = {}
        self._waiting: deque[ClientConnection] = deque()
        self._pid = os.getpid()
        self._previous_sigchld: object = None
        # Outside the main thread (embedded use) reaping falls back to the loop's tick.
        with contextlib.suppress(ValueError):
            self._previous_sigchld = signal.signal(signal.SIGCHLD, self._on_sigchld)

    def _on_sigchld(self, signum: int, frame: object) -> None:
        self.wake()

    def open_connections(self) -> int:
        return len(self.conns) + len(self.children)

    def tick_interval(self) -> float:
        tick = super().tick_interval()
        return min(tick, 0.5) if self._previous_sigchld is not None else min(tick, 0.05)

    def woken(self) -> None:
        super().woken()
        self.reap()

    def housekeeping(self) -> None:
        super().housekeeping()
        self.reap()

    def reap(self) -> None:
        while self.children:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                break
            if pid == 0:
                break
            self.children.pop(pid, None)
        self._spawn_waiting()

    def dispatch(self, conn: ClientConnection) -> None:
        self._waiting.append(conn)
        self._spawn_waiting()

    def _spawn_waiting(self) -> None:
        # Also while draining: a request read in full is served, not reset.
        while self._waiting and len(self.children) < self.limits.workers:
            self._spawn(self._waiting.popleft())

    def _spawn(self, conn: ClientConnection) -> None:
        delay = self.ctx.delay.spawn() if self.ctx.delay is not None else None
        try:
            pid = os.fork()
        except OSError as exc:
            # Out of processes or memory: drop this connection, keep the server up.
            logger.error("fork() failed, connection from %s dropped: %s", conn.addr, exc)
            self.drop(conn, registered=False)
            time.sleep(0.05)
            return
        if pid == 0:
            self.ctx.delay = delay
            self._child(conn)
        self.forget(conn)
        conn.close()
        self.children[pid] = time.monotonic()

    def _child(self, conn: ClientConnection) -> None:
        status = 0
        try:
            die_with_parent()
            # The parent may have died before prctl() took effect.
            if os.getppid() != self._pid:
                os._exit(1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            # Ctrl-C reaches the whole process group: the parent decides, the child finishes.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, self._child_sigterm)
            self._close_parent_state(conn)
            self.lifecycle.child_started()
            try:
                self.serve_connection(conn, f"fork-{os.getpid()}")
            finally:
                self.lifecycle.child_finished()
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                # Never return into the parent's stack or run its atexit handlers.
                os._exit(status)

    def _child_sigterm(self, signum: int, frame: object) -> None:
        self.ctx.stopping.set()

    def _close_parent_state(self, own: ClientConnection) -> None:
        """Close, in the child, every descriptor that belongs to the parent's work.

        Otherwise a connection the parent closes would stay open in the child, and the
        parent's selector could report events for descriptors it no longer has.
        """
        self.listener.close()
        self.selector.close()
        for fd in (self._wake_r, self._wake_w, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        for conn in (*self.conns.values(), *self._lingering.values(), *self._to_linger):
            if conn is not own:
                conn.close()
        self.conns.clear()
        self._lingering.clear()
        self._to_linger.clear()
        self._waiting.clear()

    def finish_connection(self, conn: ClientConnection) -> None:
        # In a child: linger here, there is no selector thread to hand the socket to.
        if os.getpid() != self._pid:
            if conn.linger:
                conn.close_gracefully(self.limits.linger_timeout)
            else:
                conn.close()
            return
        super().finish_connection(conn)

    def drain(self, deadline: float) -> None:
        # Children born from here on see ctx.stopping: one request each, no keep-alive.
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.finish_arrivals(deadline)
        while (self.children or self._waiting) and time.monotonic() < deadline:
            self.reap()  # which also starts waiting connections' children
            time.sleep(0.02)
        while self._waiting:
            self.drop(self._waiting.popleft(), registered=False)
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)
        if self._previous_sigchld is not None:
            signal.signal(signal.SIGCHLD, self._previous_sigchld)  # type: ignore[arg-type]
