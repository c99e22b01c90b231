"""A process per connection, made safe: children never outlive the server or share its state."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import sys
import time
import traceback
from collections import deque

from cserver.procutil import die_with_parent, exited_children, signal_all
from cserver.server.base import logger
from cserver.server.conn import IDLE, ClientConnection
from cserver.server.handler import handle_request
from cserver.server.nextrequest import wait_readable
from cserver.server.watch import WatchingServer

# A child whose client sends nothing for this long exits with HAND_BACK, and the parent,
# which kept its copy of the socket, watches the idle connection again: an idle
# keep-alive client holds no child. A client that keeps sending keeps its child.
HAND_BACK_AFTER = 0.5
HAND_BACK = 75
# A child whose response left input unread (an upload answered unread, an error) half-closes
# and exits with LINGER_BACK; the parent lingers on its copy of the socket (lingering.py).
# Draining in the child would hold one of the ``workers`` children for up to
# --linger-timeout, doing nothing but dropping bytes, while the parent's selector drains
# any number of sockets at once; the bytes that arrive in between wait in the kernel.
LINGER_BACK = 76


class ForkServer(WatchingServer):
    """Forks a child for each connection (and again when a connection its idle child handed
    back sends its next request), with at most ``workers`` children alive at once.

    The parent reads each request head first (so a slow client never holds a child) and
    queues connections with a complete request while the cap is reached; past the
    connection limit new connections get a 503.
    """

    mode = "fork"
    multithread = False
    multiprocess = True
    # The children serve and log (inline: a forked child has no writer thread), and a fork
    # while a writer thread held a stream's or handler's lock would leave the child with a
    # lock nobody releases: no writer thread in this parent.
    request_log_thread = False

    def started(self) -> None:
        super().started()
        # Objects that exist now are shared with every child; moving them out of the
        # collector's reach keeps a child's GC from touching (and so copying) their pages.
        gc.collect()
        gc.freeze()
        self.children: dict[int, float] = {}
        # The parent's copy of each connection a child serves, by the child's pid.
        self._lent: dict[int, ClientConnection] = {}
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
        try:
            for pid, status in exited_children(strict=True) if self.children else ():
                self.children.pop(pid, None)
                conn = self._lent.pop(pid, None)
                if conn is not None:
                    self._take_back(conn, status)
                if not self.children:
                    break
        except ChildProcessError:
            self.children.clear()
        self._spawn_waiting()

    def _take_back(self, conn: ClientConnection, status: int) -> None:
        """A child ended: watch its idle keep-alive connection again, linger on one it left
        with input unread, or close it."""
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        if code == LINGER_BACK:
            # The child knew how much of the body was unread; the parent does not, and
            # bounds it by the largest body it would have accepted.
            conn.unread = self.limits.max_body_bytes
            self.linger(conn)
            return
        if code != HAND_BACK or self.ctx.stopping.is_set():
            conn.close()
            return
        conn.reader.clear()
        conn.requests_served += 1  # not a fresh connection: shutdown may close it at once
        conn.state = IDLE
        self.handle_accepted(conn)

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
        self._lent[pid] = conn  # kept open: the child may hand the connection back
        self.children[pid] = time.monotonic()

    def _child(self, conn: ClientConnection) -> None:
        status = 0
        try:
            die_with_parent(self._pid)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            # Ctrl-C reaches the whole process group: the parent decides, the child finishes.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, self._child_sigterm)
            self._close_parent_state(conn)
            self.lifecycle.child_started()
            try:
                status = self._serve_child(conn, f"fork-{os.getpid()}")
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

    def _serve_child(self, conn: ClientConnection, worker: str) -> int:
        """Serve the connection's requests; HAND_BACK once it idles, else 0 after closing."""
        idle = False
        try:
            while True:
                if not wait_readable(conn, HAND_BACK_AFTER, self.ctx):
                    idle = True
                    break
                if not handle_request(conn, self.ctx, worker):
                    break
        except Exception:
            logger.exception("cserver: internal error on a connection from %s", conn.addr)
            conn.linger = False
        if idle and not conn.buf and not conn.linger and not self.ctx.stopping.is_set():
            return HAND_BACK  # exit without closing: the parent's copy stays open
        if conn.linger and not self.ctx.stopping.is_set():
            # The client sees the response end now; the parent drains the rest.
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            return LINGER_BACK
        self.finish_connection(conn)
        return 0

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
        for conn in (*self.conns.values(), *self._lent.values()):
            if conn is not own:
                conn.close()
        self.lingering.close_all()
        self.conns.clear()
        self._lent.clear()
        self._waiting.clear()

    def finish_connection(self, conn: ClientConnection) -> None:
        if os.getpid() != self._pid:
            # In a child (lingering was handed to the parent, or the server is stopping):
            # the parent still holds its copy of the socket until it reaps this child, so
            # end the stream now and the client sees the close without waiting for that.
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            conn.close()
            return
        super().finish_connection(conn)

    def drain(self, deadline: float) -> None:
        # Children born from here on see ctx.stopping: one request each, no keep-alive.
        signal_all(self.children, signal.SIGTERM)
        self.finish_arrivals(deadline)
        while (self.children or self._waiting) and time.monotonic() < deadline:
            self.reap()  # which also starts waiting connections' children
            time.sleep(0.02)
        while self._waiting:
            self.drop(self._waiting.popleft(), registered=False)
        signal_all(self.children, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)
        for conn in self._lent.values():
            conn.close()  # their children did not exit in time
        self._lent.clear()
        if self._previous_sigchld is not None:
            signal.signal(signal.SIGCHLD, self._previous_sigchld)  # type: ignore[arg-type]
