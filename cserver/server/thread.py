"""Thread per connection, like runserver, but bounded, and closing each thread's resources."""

from __future__ import annotations

import itertools
import threading
import time

from cserver.server.base import BaseServer, logger
from cserver.server.conn import ClientConnection
from cserver.server.handler import handle_request
from cserver.server.watch import WatchingServer


class ThreadServer(BaseServer):
    """Each accepted connection gets its own thread for as long as it stays open.

    The connection limit bounds the threads: past it, new connections get a 503.
    """

    mode = "thread"

    def started(self) -> None:
        self._counter = itertools.count(1)
        self._live: set[threading.Thread] = set()
        self._live_lock = threading.Lock()

    def open_connections(self) -> int:
        with self._live_lock:
            return len(self._live)

    def handle_accepted(self, conn: ClientConnection) -> None:
        name = f"thread-{next(self._counter)}"
        thread = threading.Thread(target=self._run, args=(conn, name), name=name, daemon=True)
        with self._live_lock:
            self._live.add(thread)
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread": out of memory or a ulimit
            with self._live_lock:
                self._live.discard(thread)
            logger.error("cserver: cannot start a thread (%s); refusing the connection", exc)
            self.refuse(conn)

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

    def drain(self, deadline: float) -> None:
        # Idle keep-alive threads wake up on the stop pipe; busy ones finish their request.
        # Threads still busy at the deadline are abandoned.
        while self.open_connections() and time.monotonic() < deadline:
            time.sleep(0.02)


class SingleServer(WatchingServer):
    """One request at a time in the serving thread: runserver's --nothreading.

    Requests are still read by the selector, so a slow client does not block the others.
    """

    mode = "single"
    multithread = False

    def dispatch(self, conn: ClientConnection) -> None:
        # No keep-alive here: one idle client would otherwise block everyone else.
        self.forget(conn)
        try:
            handle_request(conn, self.ctx, "single")
        except Exception:
            logger.exception("cserver: internal error on a connection from %s", conn.addr)
            conn.linger = False
        # The serving thread's database connections persist, as under runserver.
        if conn.linger:
            self.linger(conn)
        else:
            conn.close()

    def drain(self, deadline: float) -> None:
        self.finish_arrivals(deadline)
