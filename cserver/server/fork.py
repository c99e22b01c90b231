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

from cserver.server.base import BaseServer, logger
from cserver.server.handler import ClientConnection

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


class ForkServer(BaseServer):
    """Forks a child for each accepted connection, with at most ``workers`` alive at once.

    At the cap the listener is taken out of the selector, so new connections wait in the
    kernel's backlog instead of being refused.
    """

    mode = "fork"
    multithread = False
    multiprocess = True

    def started(self) -> None:
        # Objects that exist now are shared with every child; moving them out of the
        # collector's reach keeps a child's GC from touching (and so copying) their pages.
        gc.collect()
        gc.freeze()
        self.children: dict[int, float] = {}
        self.max_children = 0
        self._pid = os.getpid()
        self._previous_sigchld: object = None
        # Outside the main thread (embedded use) reaping falls back to the loop's tick.
        with contextlib.suppress(ValueError):
            self._previous_sigchld = signal.signal(signal.SIGCHLD, self._on_sigchld)

    def _on_sigchld(self, signum: int, frame: object) -> None:
        self.wake()

    def tick_interval(self) -> float:
        return 0.5 if self._previous_sigchld is not None else 0.05

    def woken(self) -> None:
        self.reap()

    def housekeeping(self) -> None:
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
        if not self.ctx.stopping.is_set():
            self.set_accepting(len(self.children) < self.limits.workers)

    def handle_accepted(self, conn: ClientConnection) -> None:
        delay = self.ctx.delay.spawn() if self.ctx.delay is not None else None
        try:
            pid = os.fork()
        except OSError as exc:
            # Out of processes or memory: drop this connection, keep the server up.
            logger.error("fork() failed, connection from %s dropped: %s", conn.addr, exc)
            conn.close()
            time.sleep(0.05)
            return
        if pid == 0:
            self.ctx.delay = delay
            self._child(conn)
        conn.sock.close()
        self.children[pid] = time.monotonic()
        self.max_children = max(self.max_children, len(self.children))
        if len(self.children) >= self.limits.workers:
            self.set_accepting(False)

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
            signal.signal(signal.SIGTERM, lambda *_: self.ctx.stopping.set())
            self.listener.close()
            self.selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
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

    def serve_connection(self, conn: ClientConnection, worker: str) -> None:
        # Between keep-alive requests, also stop if the parent has gone (non-Linux systems).
        parent = self._pid
        stopping = self.ctx.stopping

        class _ParentWatch:
            def is_set(self) -> bool:
                return stopping.is_set() or os.getppid() != parent

            def set(self) -> None:
                stopping.set()

        self.ctx.stopping = _ParentWatch()  # type: ignore[assignment]
        super().serve_connection(conn, worker)

    def drain(self, deadline: float) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)
        if self._previous_sigchld is not None:
            signal.signal(signal.SIGCHLD, self._previous_sigchld)  # type: ignore[arg-type]
