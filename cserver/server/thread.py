"""Thread per connection, like runserver, but closing each thread's resources when it ends."""

from __future__ import annotations

import itertools
import threading
import time

from cserver.server.base import BaseServer
from cserver.server.handler import ClientConnection, handle_request


class ThreadServer(BaseServer):
    """Each accepted connection gets its own thread for as long as it stays open."""

    mode = "thread"

    def started(self) -> None:
        self._counter = itertools.count(1)
        self._live: set[threading.Thread] = set()
        self._live_lock = threading.Lock()

    def handle_accepted(self, conn: ClientConnection) -> None:
        name = f"thread-{next(self._counter)}"
        thread = threading.Thread(target=self._run, args=(conn, name), name=name, daemon=True)
        with self._live_lock:
            self._live.add(thread)
        thread.start()

    def _run(self, conn: ClientConnection, name: str) -> None:
        try:
            self.serve_connection(conn, name)
        finally:
            # Django never closes a finished thread's database connections; we do, here,
            # in the thread that owns them (they are thread-local).
            try:
                self.lifecycle.connection_finished()
            finally:
                with self._live_lock:
                    self._live.discard(threading.current_thread())

    def live_threads(self) -> int:
        with self._live_lock:
            return len(self._live)

    def drain(self, deadline: float) -> None:
        # Idle keep-alive threads notice ctx.stopping within a poll slice; busy ones
        # finish their request. Threads still busy at the deadline are abandoned.
        while self.live_threads() and time.monotonic() < deadline:
            time.sleep(0.02)


class SingleServer(BaseServer):
    """One request at a time in the serving thread: runserver's --nothreading."""

    mode = "single"
    multithread = False

    def handle_accepted(self, conn: ClientConnection) -> None:
        # No keep-alive here: one idle client would otherwise block everyone else.
        conn.sock.settimeout(self.limits.request_timeout)
        try:
            handle_request(conn, self.ctx, "single")
        finally:
            # The serving thread's database connections persist, as under runserver.
            conn.close()
