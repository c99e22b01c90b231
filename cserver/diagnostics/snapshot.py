"""The status page's data: the shared tables read into plain rows (the JSON document's core)."""

from __future__ import annotations

import time
from typing import Any

from cserver.diagnostics import shared
from cserver.diagnostics.shared import Tables


def snapshot(t: Tables) -> dict[str, Any]:
    """Counters, workers with their connections, and recent requests; called with the lock
    held, after the reaping, so that every row is of the same instant."""
    now = time.time()
    c = t.counters
    counters = {field[0]: getattr(c, field[0]) for field in shared.Counters._fields_}
    workers = [_worker_row(slot, w, now) for slot, w in enumerate(t.workers) if w.used]
    conns = [(s.worker, _connection_row(s, now)) for s in t.connections if s.used]
    count = min(c.recent_next, shared.RECENT)
    recent = [_recent_row(t.recent[(c.recent_next - 1 - n) % shared.RECENT]) for n in range(count)]
    by_slot = {row.pop("slot"): row for row in workers}
    for row in workers:
        row["connections"] = []
    unowned: list[dict[str, Any]] = []
    for slot, row in conns:
        owner = by_slot.get(slot)
        (owner["connections"] if owner is not None else unowned).append(row)
    workers.sort(key=lambda row: (row["pid"], _natural(row["name"])))
    return {
        "counters": counters,
        "workers": workers,
        "unowned_connections": unowned,
        "open": len(conns),
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
