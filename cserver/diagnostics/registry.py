"""What diagnostics know: requests in flight, workers, database connections, recent requests."""

from __future__ import annotations

import os
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from cserver.diagnostics import shared
from cserver.diagnostics.dbhooks import backend_pid
from cserver.diagnostics.shared import Tables
from cserver.diagnostics.slots import Slots
from cserver.diagnostics.snapshot import snapshot

_RECORD = "_cserver_diag_record"


@dataclass(slots=True)
class RequestState:
    """One request as diagnostics follow it, from the wrapper's call to the response's close."""

    started: float
    worker: str
    mode: str
    method: str
    path: str
    delay_ms: int | None
    opened: dict[str, int] = field(default_factory=dict)  # alias -> serial opened meanwhile
    used: set[str] = field(default_factory=set)  # aliases that ran queries
    db: list[tuple[str, str, str]] | None = None  # (alias, pid text, state), set once
    status: int = 500
    finished: bool = False
    thread: str = ""  # the thread that ran the request's Django code, when not the caller


@dataclass(slots=True)
class ConnectionRecord:
    """Kept on a DatabaseWrapper: which raw connection diagnostics last saw it open."""

    serial: int
    raw_id: int
    slot: int
    pid_text: str
    closed: bool = False


class Registry:
    """Counters and tables for one server; every method is safe from any worker."""

    def __init__(self, mode: str, configured_workers: int, processes: int = 1) -> None:
        self.mode = mode
        self.configured_workers = configured_workers
        self.processes = processes
        self.server_pid = os.getpid()
        self.started = time.time()
        # Fork children and --processes workers all add to tables created before they fork.
        self.store = shared.Store(cross_process=mode == "fork" or processes > 1)
        # The request being served, per thread (WSGI modes) or per task (asgi mode, where
        # asgiref carries the context into the thread that runs a synchronous view).
        self._req: ContextVar[RequestState | None] = ContextVar(
            f"cserver_diag_request_{id(self)}", default=None
        )
        self.slots = Slots()

    # -- requests -------------------------------------------------------------------------

    def request_started(self, environ: dict[str, Any]) -> RequestState:
        """Count a request in; called in the worker before the application."""
        delay = environ.get("cserver.delay_ms")
        req = RequestState(
            started=time.perf_counter(),
            worker=str(environ.get("cserver.worker") or threading.current_thread().name),
            mode=str(environ.get("cserver.mode") or self.mode),
            method=str(environ.get("REQUEST_METHOD", "")),
            path=str(environ.get("PATH_INFO", "")),
            delay_ms=delay if isinstance(delay, int) else None,
        )
        with self.store.locked() as t:
            # asgi mode: the request is a task, the worker slot its event loop.
            slot_name = str(environ.get("cserver.worker_slot") or req.worker)
            slot = self.slots.worker(t, slot_name, req.mode)
            t.counters.in_flight += 1
            if slot >= 0:
                t.workers[slot].busy = 1
        self._req.set(req)
        return req

    def response_db(self, req: RequestState) -> list[tuple[str, str, str]]:
        """The request's database use, worked out once (when the response starts)."""
        if req.db is not None:
            return req.db
        req.db = db = self._db_state(req)
        if db:
            counted = [(a, s) for a, _, s in db if s in ("new", "reused")]
            if counted:
                with self.store.locked() as t:
                    for alias, state in counted:
                        if state == "reused":
                            t.counters.reused += 1
                        self._count_use(t, alias)
        return db

    def request_finished(self, req: RequestState) -> None:
        """Count a request out; called when the server closes the response."""
        if req.finished:
            return
        req.finished = True
        db = self.response_db(req)
        duration = (time.perf_counter() - req.started) * 1000
        db_text = ",".join(f"{alias}:{state}" for alias, _, state in db) or "-"
        now = time.time()
        with self.store.locked() as t:
            c = t.counters
            c.in_flight -= 1
            c.requests += 1
            slot = self.slots.own_worker(t)
            if slot >= 0:
                w = t.workers[slot]
                w.busy = 0
                w.requests += 1
                w.last_request = now
            r = t.recent[c.recent_next % shared.RECENT]
            c.recent_next += 1
            r.time = now
            r.duration_ms = duration
            r.status = req.status
            r.delay_ms = -1 if req.delay_ms is None else req.delay_ms
            r.method = shared.put(req.method, 8)
            r.path = shared.put(req.path, shared.PATH_SIZE)
            r.worker = shared.put(req.worker, shared.NAME_SIZE)
            r.db = shared.put(db_text, shared.DB_SIZE)
        self._req.set(None)

    def _db_state(self, req: RequestState) -> list[tuple[str, str, str]]:
        out = []
        for wrapper in connections.all(initialized_only=True):
            alias = wrapper.alias
            rec: ConnectionRecord | None = getattr(wrapper, _RECORD, None)
            raw = wrapper.connection
            if raw is not None and (rec is None or rec.raw_id != id(raw)):
                # Opened before diagnostics were watching: known to exist, not by whom.
                out.append((alias, "-", "reused" if alias in req.used else "idle"))
                continue
            open_now = raw is not None and rec is not None and not rec.closed
            opened = alias in req.opened
            used = alias in req.used
            if not (open_now or opened or used):
                continue
            if opened:
                state = "new"
            elif not open_now:
                state = "none"
            else:
                state = "reused" if used else "idle"
            pid = rec.pid_text if rec is not None and (open_now or opened) else "-"
            out.append((alias, pid, state))
        return out

    # -- connections ----------------------------------------------------------------------

    def connection_opened(self, wrapper: Any) -> None:
        """Django opened a connection in this thread (connection_created)."""
        pid = backend_pid(wrapper)
        req: RequestState | None = self._req.get()
        now = time.time()
        with self.store.locked() as t:
            if req is not None:
                worker, mode = req.worker, req.mode
            else:
                worker, mode = threading.current_thread().name, self.mode
            slot = self.slots.worker(t, worker, mode)
            t.counters.opened += 1
            serial = t.counters.opened
            index = self.slots.free_connection(t)
            if index < 0:
                t.counters.untracked_connections += 1
            else:
                s = t.connections[index]
                s.used = 1
                s.worker = slot
                s.pid = os.getpid()
                s.serial = serial
                s.backend_pid = -1 if pid is None else pid
                s.opened = now
                s.requests = 0
                s.alias = shared.put(wrapper.alias, shared.NAME_SIZE)
                s.vendor = shared.put(wrapper.vendor, 16)
        # SQLite has no server process: its serial stands in, unique across the server.
        if pid is not None:
            pid_text = str(pid)
        else:
            pid_text = str(serial) if wrapper.vendor == "sqlite" else "-"
        setattr(wrapper, _RECORD, ConnectionRecord(serial, id(wrapper.connection), index, pid_text))
        if req is not None:
            req.opened[wrapper.alias] = serial

    def connection_used(self, wrapper: Any) -> None:
        """A query ran on ``wrapper`` (from its execute wrapper)."""
        req: RequestState | None = self._req.get()
        if req is not None:
            req.used.add(wrapper.alias)

    def connection_closed(self, wrapper: Any) -> None:
        """Django closed (or returned to its pool) the wrapper's connection."""
        rec: ConnectionRecord | None = getattr(wrapper, _RECORD, None)
        if rec is None or rec.closed:
            return
        rec.closed = True
        with self.store.locked() as t:
            t.counters.closed += 1
            if rec.slot >= 0:
                s = t.connections[rec.slot]
                if s.used and s.serial == rec.serial:
                    s.used = 0

    def _count_use(self, t: Tables, alias: str) -> None:
        for wrapper in connections.all(initialized_only=True):
            rec: ConnectionRecord | None = getattr(wrapper, _RECORD, None)
            if wrapper.alias == alias and rec is not None and rec.slot >= 0:
                s = t.connections[rec.slot]
                if s.used and s.serial == rec.serial:
                    s.requests += 1

    # -- reading --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the status page shows, as plain data (the JSON document's core)."""
        with self.store.locked() as t:
            self.slots.reap(t)
            return snapshot(t)
