"""A fixed pool of long-lived worker threads fed by a selector, like gunicorn's gthread."""

from __future__ import annotations

import queue
import selectors
import threading
import time
from collections import deque

from cserver.server.base import BaseServer
from cserver.server.handler import ClientConnection, handle_request


class PoolServer(BaseServer):
    """Workers keep their database connections between requests, so CONN_MAX_AGE means
    what it means under gunicorn. Idle keep-alive sockets wait in the selector, not in a
    worker, and readable connections queue when every worker is busy."""

    mode = "pool"

    def started(self) -> None:
        self._ready: queue.SimpleQueue[ClientConnection | None] = queue.SimpleQueue()
        # Connections workers hand back for the selector to watch; deque appends are atomic.
        self._returned: deque[ClientConnection] = deque()
        self._idle: dict[int, ClientConnection] = {}
        self.busy = 0
        self._busy_lock = threading.Lock()
        self.max_busy = 0
        self._workers = [
            threading.Thread(target=self._work, name=f"pool-{n}", daemon=True)
            for n in range(1, self.limits.workers + 1)
        ]
        for worker in self._workers:
            worker.start()

    def tick_interval(self) -> float:
        return min(1.0, self.limits.keepalive_timeout / 4)

    def handle_accepted(self, conn: ClientConnection) -> None:
        self._watch(conn)

    def _watch(self, conn: ClientConnection) -> None:
        conn.idle_since = time.monotonic()
        self._idle[conn.sock.fileno()] = conn
        self.selector.register(conn.sock, selectors.EVENT_READ, conn)

    def client_ready(self, key: selectors.SelectorKey) -> None:
        conn: ClientConnection = key.data
        self.selector.unregister(conn.sock)
        del self._idle[key.fd]
        self._ready.put(conn)

    def woken(self) -> None:
        while self._returned:
            conn = self._returned.popleft()
            if self.ctx.stopping.is_set():
                conn.close()
            else:
                self._watch(conn)

    def housekeeping(self) -> None:
        expired = time.monotonic() - self.limits.keepalive_timeout
        for fd, conn in list(self._idle.items()):
            if conn.idle_since < expired:
                self.selector.unregister(conn.sock)
                del self._idle[fd]
                conn.close()

    def _work(self) -> None:
        name = threading.current_thread().name
        try:
            while True:
                conn = self._ready.get()
                if conn is None:
                    return
                with self._busy_lock:
                    self.busy += 1
                    self.max_busy = max(self.max_busy, self.busy)
                try:
                    self._serve(conn, name)
                finally:
                    with self._busy_lock:
                        self.busy -= 1
        finally:
            self.lifecycle.worker_stopped()

    def _serve(self, conn: ClientConnection, name: str) -> None:
        conn.sock.settimeout(self.limits.request_timeout)
        keep = False
        try:
            keep = handle_request(conn, self.ctx, name)
            # Pipelined requests already buffered are served without a selector round trip.
            while keep and conn.buf:
                keep = handle_request(conn, self.ctx, name)
        finally:
            if keep and not self.ctx.stopping.is_set():
                self._returned.append(conn)
                self.wake()
            else:
                conn.close()

    def drain(self, deadline: float) -> None:
        for conn in self._idle.values():
            self.selector.unregister(conn.sock)
            conn.close()
        self._idle.clear()
        for _ in self._workers:
            self._ready.put(None)
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        while self._returned:
            self._returned.popleft().close()
