"""What diagnostics know: requests in flight, workers, database connections, recent requests."""

from __future__ import annotations

import os
import threading
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from cserver.diagnostics import shared
from cserver.diagnostics.dbhooks import backend_pid
from cserver.diagnostics.shared import Tables
from cserver.procutil import process_alive

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
        self._local = threading.local()
        # The request being served, per thread (WSGI modes) or per task (asgi mode, where
        # asgiref carries the context into the thread that runs a synchronous view).
        self._req: ContextVar[RequestState | None] = ContextVar(
            f"cserver_diag_request_{id(self)}", default=None
        )
        # Worker slot -> its thread, for slots this process filled. Lives in process memory:
        # a forked child judges other children by their pid instead.
        self._threads: dict[int, weakref.ref[threading.Thread]] = {}
        self._worker_hint = 0
        self._conn_hint = 0

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
            slot = self._worker_slot(t, slot_name, req.mode)
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
            slot = self._own_slot(t)
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
            slot = self._worker_slot(t, worker, mode)
            t.counters.opened += 1
            serial = t.counters.opened
            index = self._free_connection(t)
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

    # -- slots (all called with the lock held) --------------------------------------------

    def _own_slot(self, t: Tables) -> int:
        slot = getattr(self._local, "slot", -1)
        if slot < 0:
            return -1
        w = t.workers[slot]
        if w.used and w.generation == self._local.generation and w.pid == os.getpid():
            return slot
        return -1

    def _worker_slot(self, t: Tables, name: str, mode: str) -> int:
        slot = self._own_slot(t)
        if slot >= 0:
            return slot
        slot = self._free_slot(t.workers, "_worker_hint")
        if slot < 0:
            self._reap(t)
            slot = self._free_slot(t.workers, "_worker_hint")
        if slot < 0:
            t.counters.untracked_workers += 1
            return -1
        t.counters.generation += 1
        thread = threading.current_thread()
        w = t.workers[slot]
        w.used = 1
        w.busy = 0
        w.pid = os.getpid()
        w.generation = t.counters.generation
        w.started = time.time()
        w.last_request = 0.0
        w.requests = 0
        w.name = shared.put(name, shared.NAME_SIZE)
        w.mode = shared.put(mode, 8)
        w.thread = shared.put(thread.name, shared.NAME_SIZE)
        self._threads[slot] = weakref.ref(thread)
        self._local.slot = slot
        self._local.generation = w.generation
        return slot

    def _free_connection(self, t: Tables) -> int:
        index = self._free_slot(t.connections, "_conn_hint")
        if index < 0:
            self._reap(t)
            index = self._free_slot(t.connections, "_conn_hint")
        return index

    def _free_slot(self, table: Any, hint_name: str) -> int:
        size = len(table)
        start = getattr(self, hint_name)
        for step in range(size):
            index = (start + step) % size
            if not table[index].used:
                setattr(self, hint_name, (index + 1) % size)
                return index
        return -1

    def _worker_alive(self, slot: int, w: shared.WorkerSlot) -> bool:
        if w.pid != os.getpid():
            return process_alive(w.pid)
        ref = self._threads.get(slot)
        thread = ref() if ref is not None else None
        return thread is not None and thread.is_alive()

    def _reap(self, t: Tables) -> None:
        """Free the slots of workers that ended; their open connections were left open."""
        ended = set()
        for slot, w in enumerate(t.workers):
            if w.used and not self._worker_alive(slot, w):
                w.used = 0
                ended.add(slot)
                self._threads.pop(slot, None)
        pids: dict[int, bool] = {}
        for s in t.connections:
            if not s.used:
                continue
            if s.worker >= 0:
                gone = s.worker in ended
            else:
                if s.pid not in pids:
                    pids[s.pid] = s.pid != os.getpid() and not process_alive(s.pid)
                gone = pids[s.pid]
            if gone:
                s.used = 0
                t.counters.left_open += 1

    # -- reading --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the status page shows, as plain data (the JSON document's core)."""
        now = time.time()
        with self.store.locked() as t:
            self._reap(t)
            c = t.counters
            counters = {field[0]: getattr(c, field[0]) for field in shared.Counters._fields_}
            workers = [_worker_row(slot, w, now) for slot, w in enumerate(t.workers) if w.used]
            conns = [(s.worker, _connection_row(s, now)) for s in t.connections if s.used]
            count = min(c.recent_next, shared.RECENT)
            recent = [
                _recent_row(t.recent[(c.recent_next - 1 - n) % shared.RECENT]) for n in range(count)
            ]
        by_slot = {row.pop("slot"): row for row in workers}
        for row in workers:
            row["connections"] = []
        unowned: list[dict[str, Any]] = []
        for slot, row in conns:
            owner = by_slot.get(slot)
            (owner["connections"] if owner is not None else unowned).append(row)
        workers.sort(key=lambda row: (row["pid"], _natural(row["name"])))
        open_now = len(conns)
        return {
            "counters": counters,
            "workers": workers,
            "unowned_connections": unowned,
            "open": open_now,
            "recent": recent,
            "now": now,
        }


def _natural(name: str) -> tuple:
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, 0)


def _worker_row(slot: int, w: shared.WorkerSlot, now: float) -> dict[str, Any]:
    return {
        "slot": slot,
        "name": shared.get(w.name),
        "mode": shared.get(w.mode),
        "pid": w.pid,
        "thread": shared.get(w.thread),
        "busy": bool(w.busy),
        "requests": w.requests,
        "age_s": round(max(0.0, now - w.started), 3),
        "idle_s": None if w.busy or not w.last_request else round(now - w.last_request, 3),
    }


def _connection_row(s: shared.ConnectionSlot, now: float) -> dict[str, Any]:
    return {
        "alias": shared.get(s.alias),
        "vendor": shared.get(s.vendor),
        "id": s.serial,
        "backend_pid": None if s.backend_pid < 0 else s.backend_pid,
        "age_s": round(max(0.0, now - s.opened), 3),
        "requests": s.requests,
    }


def _recent_row(r: shared.RecentSlot) -> dict[str, Any]:
    return {
        "time": r.time,
        "method": shared.get(r.method),
        "path": shared.get(r.path),
        "status": r.status,
        "duration_ms": round(r.duration_ms, 2),
        "delay_ms": None if r.delay_ms < 0 else r.delay_ms,
        "worker": shared.get(r.worker),
        "db": shared.get(r.db),
    }
