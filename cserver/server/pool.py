"""A fixed pool of long-lived worker threads fed by a selector, like gunicorn's gthread."""

from __future__ import annotations

import queue
import select
import threading
import time
from collections import deque

from cserver.server.base import logger
from cserver.server.conn import BUSY, ClientConnection, ClientGone
from cserver.server.handler import handle_request
from cserver.server.reader import CONTINUE, GO
from cserver.server.watch import WatchingServer

# How long a worker that just answered waits for the same client's next request before
# handing the connection back to the selector (only while no other request is queued).
NEXT_REQUEST_WAIT_MS = 2


class PoolServer(WatchingServer):
    """Workers keep their database connections between requests, so CONN_MAX_AGE means
    what it means under gunicorn. Idle keep-alive sockets and requests still arriving wait
    in the selector, not in a worker; complete requests queue when every worker is busy.
    The thread count is fixed: workers plus the selector thread."""

    mode = "pool"

    def started(self) -> None:
        super().started()
        # Idle workers' inboxes, the most recently idle last. Handing a request to the
        # worker that finished last keeps light load on one warm thread and so on one
        # database connection (as gunicorn's gthread does), not rotating through them all.
        self._idle: list[queue.SimpleQueue[ClientConnection | None]] = []
        # Complete requests waiting for a worker, and the stop markers at shutdown.
        self._backlog: deque[ClientConnection | None] = deque()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._work, name=f"pool-{n}", daemon=True)
            for n in range(1, self.limits.workers + 1)
        ]
        for worker in self._workers:
            worker.start()

    def dispatch(self, conn: ClientConnection) -> None:
        with self._lock:
            if not self._idle:
                self._backlog.append(conn)
                return
            inbox = self._idle.pop()
            conn.state = BUSY  # a worker's from now: the drain must not drop it
        inbox.put(conn)

    def _next(self, inbox: queue.SimpleQueue[ClientConnection | None]) -> ClientConnection | None:
        """The next request for this worker: queued work first, else wait to be handed one."""
        with self._lock:
            if self._backlog:
                conn = self._backlog.popleft()
                # Marked under the lock: the drain, past its deadline, drops every
                # connection not BUSY, and this one is a worker's from here on.
                if conn is not None:
                    conn.state = BUSY
                return conn
            self._idle.append(inbox)
        return inbox.get()

    def _work(self) -> None:
        name = threading.current_thread().name
        inbox: queue.SimpleQueue[ClientConnection | None] = queue.SimpleQueue()
        try:
            while True:
                conn = self._next(inbox)
                if conn is None:
                    return
                try:
                    self._serve(conn, name)
                except BaseException:
                    # Whatever an application raises (even SystemExit), the pool keeps its size.
                    logger.exception("cserver: %s survived an unexpected error", name)
        finally:
            self.lifecycle.worker_stopped()

    def _stop_workers(self) -> None:
        """One stop marker per worker: idle ones get it now, busy ones after the backlog."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._backlog.extend([None] * (len(self._workers) - len(idle)))
        for inbox in idle:
            inbox.put(None)

    def _serve(self, conn: ClientConnection, name: str) -> None:
        conn.state = BUSY
        keep = False
        limits = self.limits
        try:
            keep = handle_request(conn, self.ctx, name)
            # Pipelined requests already buffered whole are served without a selector round
            # trip; a partial one goes back to the selector, which times it. So is the next
            # request of a client that sends it right after reading the response, if no
            # other request waits meanwhile.
            while keep and (conn.buf or self._next_arrives(conn)):
                ready = conn.reader.ready(limits.max_body_bytes, limits.body_timeout)
                if ready == GO:
                    keep = handle_request(conn, self.ctx, name)
                    continue
                if ready == CONTINUE:
                    conn.send_continue()
                break
        finally:
            if keep and not self.ctx.stopping.is_set():
                self.give_back(conn)
            else:
                self.forget(conn)
                self.finish_connection(conn)

    def _next_arrives(self, conn: ClientConnection) -> bool:
        """Whether the client's next request came within NEXT_REQUEST_WAIT (read into its
        buffer), while no other request is queued: saves the hand-back to the selector and
        the hand-over to a worker, which cost more than the request itself on a fast
        client."""
        if self._backlog or self.ctx.stopping.is_set():
            return False
        poller = select.poll()
        poller.register(conn.fd, select.POLLIN)
        if not poller.poll(NEXT_REQUEST_WAIT_MS):
            return False
        try:
            return bool(conn.recv_nowait())
        except ClientGone:
            return False

    def drain(self, deadline: float) -> None:
        self.finish_arrivals(deadline)
        self._stop_workers()
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        for conn in list(self.conns.values()):
            # Idle, arriving or handed back; workers still busy at the deadline are
            # abandoned with their connections.
            if conn.state != BUSY:
                self.drop(conn)
