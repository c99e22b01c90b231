"""The status page: the JSON document and the HTML view of it (no scripts, no external assets)."""

from __future__ import annotations

import os
import threading
import time
from html import escape
from importlib import resources
from string import Template
from typing import Any

from cserver import __version__
from cserver.diagnostics.registry import Registry

_TEMPLATE = Template(resources.files(__package__).joinpath("status.html").read_text("utf-8"))
_CSS = resources.files(__package__).joinpath("status.css").read_text("utf-8")
_NO_WORKER = {
    "fork": ": a child exits when its client connection closes (see recent requests)",
    "thread": ": a thread ends when its client connection closes (see recent requests)",
}
_CONN_CLASS = {"new": "new", "reused": "reused", "idle": "plain", "none": "none"}

COUNTER_NOTES = (
    "Counters run from server start and leave out requests for this page. "
    "<b>opened</b>: connections Django opened (its connection_created signal; with "
    "OPTIONS pool, checkouts from the pool). <b>reused</b>: times a request ran queries on a "
    "connection an earlier request had opened. <b>closed</b>: connections Django closed or "
    "returned to its pool. <b>left open</b>: connections still open when the worker that "
    "owned them ended (runserver leaks these; cserver closes them, so this should stay 0). "
    "<b>open now</b> = opened &minus; closed &minus; left open."
)

MODE_NOTES = {
    "thread": "Thread mode: one thread per client connection. A thread ends, and cserver "
    "closes its database connections, when its client disconnects; only live threads "
    "that served a request are listed.",
    "pool": "Pool mode: {workers} long-lived worker threads; a worker is listed once it has "
    "served a request, and keeps its database connections between requests as CONN_MAX_AGE "
    "allows.",
    "fork": "Fork mode: each client connection is served by a child process that exits when "
    "the connection closes. Counters, workers, connections and recent requests live in "
    "memory shared by all children (set up before the first fork), so this page shows the "
    "whole server although child pid {pid} rendered it. Only children alive now are listed.",
    "asgi": "ASGI mode: uvicorn's event loop serves every connection; each request is a task "
    "(the worker named in X-Cserver-Worker), and Django runs its synchronous parts in a thread "
    "of the request's own (X-Cserver-Thread). At most {workers} requests are computed at "
    "once. The event loop is listed as one worker.",
    "single": "--nothreading: one request at a time in the serving thread; its database "
    "connections persist between requests, as under runserver.",
}


PROCESSES_NOTE = (
    "{count} worker processes (--processes), each with the workers above: counters, workers, "
    "connections and recent requests live in memory shared by all of them, so this page "
    "shows the whole server although process {pid} rendered it; the pid column tells the "
    "processes apart."
)


def database_rows(databases: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Alias, vendor, host and name of each configured database; never user or password."""
    rows = []
    for alias, conf in databases.items():
        rows.append(
            {
                "alias": alias,
                "vendor": _vendor(str(conf.get("ENGINE", ""))),
                "host": str(conf.get("HOST") or "local"),
                "name": str(conf.get("NAME") or "-"),
            }
        )
    return rows


def _vendor(engine: str) -> str:
    # Django's own vendor names (connection.vendor), without building a connection here.
    name = engine.rsplit(".", 1)[-1]
    if name.startswith("sqlite"):
        return "sqlite"
    if name.startswith(("postgres", "postgis")):
        return "postgresql"
    return name.removesuffix("_gis") or "-"


def build_stats(
    registry: Registry, settings: dict[str, Any], environ: dict[str, Any]
) -> dict[str, Any]:
    """The document served at /__cserver__/stats; its top-level keys are a stable interface."""
    snap = registry.snapshot()
    c = snap["counters"]
    mode = registry.mode
    notes = [MODE_NOTES[mode].format(workers=registry.configured_workers, pid=os.getpid())]
    if registry.processes > 1:
        notes.append(PROCESSES_NOTE.format(count=registry.processes, pid=os.getpid()))
    if c["untracked_workers"] or c["untracked_connections"]:
        notes.append(
            "Some workers or connections did not fit the fixed tables and are only counted, "
            "not listed."
        )
    if c["lock_timeouts"]:
        notes.append("The shared lock timed out (a killed worker?): counts since may be off.")
    return {
        "cserver": __version__,
        "mode": mode,
        "pid": registry.server_pid,
        "served_by": {"pid": os.getpid(), "thread": threading.current_thread().name},
        "workers_configured": registry.configured_workers,
        "processes": registry.processes,
        "worker_pids": sorted({w["pid"] for w in snap["workers"]}),
        "delay": settings.get("delay", "off"),
        "uptime_s": round(snap["now"] - registry.started, 3),
        "shared_across_processes": registry.store.cross_process,
        "in_flight": c["in_flight"],
        "requests": c["requests"],
        "connections": {
            "opened": c["opened"],
            "reused": c["reused"],
            "closed": c["closed"],
            "left_open": c["left_open"],
            "open": snap["open"],
        },
        "workers": snap["workers"],
        "unowned_connections": snap["unowned_connections"],
        "recent": snap["recent"],
        "databases": settings.get("databases", []),
        "untracked": {
            "workers": c["untracked_workers"],
            "connections": c["untracked_connections"],
        },
        "notes": notes,
    }


def render_html(stats: dict[str, Any], refresh: int = 0) -> str:
    """The status page for ``stats`` (as built by build_stats)."""
    conns = stats["connections"]
    mode = stats["mode"]
    served = stats["served_by"]
    pids = ", ".join(str(pid) for pid in stats["worker_pids"]) or "-"
    facts = [
        f"mode <b>{escape(mode)}</b>",
        f"<b>{stats['workers_configured']}</b> workers configured"
        if mode in ("pool", "fork")
        else "",
        f"delay <b>{escape(stats['delay'])}</b>",
        f"<b>{stats['processes']}</b> processes (pids {pids})" if stats["processes"] > 1 else "",
        f"server pid <b>{stats['pid']}</b>",
        f"up <b>{_duration(stats['uptime_s'])}</b>",
        f"page by pid {served['pid']} / {escape(served['thread'])} at {time.strftime('%H:%M:%S')}",
    ]
    left = conns["left_open"]
    server_cards = [
        _card("Mode", mode, f"server pid {stats['pid']}"),
        _card("In flight", stats["in_flight"], "requests being served"),
        _card("Requests", stats["requests"], "served since start"),
        _card("Workers", len(stats["workers"]), "live now"),
    ]
    db_cards = [
        _card("Opened", conns["opened"], "connections"),
        _card("Reused", conns["reused"], "by later requests"),
        _card("Closed", conns["closed"], "connections"),
        _card("Open now", conns["open"], "held by workers"),
        _card("Left open", left, "by ended workers", "bad" if left else "good"),
    ]
    links = [
        f"<b>{label}</b>"
        if value == refresh
        else f'<a href="/__cserver__/?refresh={value}">{label}</a>'
        for value, label in ((0, "off"), (2, "2 s"), (10, "10 s"))
    ]
    return _TEMPLATE.substitute(
        refresh_meta=f'<meta http-equiv="refresh" content="{refresh}">\n' if refresh else "",
        mode=escape(mode),
        in_flight=stats["in_flight"],
        css=_CSS,
        facts=" &middot; ".join(f for f in facts if f),
        refresh_links=" ".join(links),
        server_cards="\n".join(server_cards),
        db_cards="\n".join(db_cards),
        worker_count=len(stats["workers"]),
        worker_rows=_worker_rows(stats, mode),
        recent_count=len(stats["recent"]),
        recent_rows=_recent_rows(stats["recent"]),
        database_rows=_database_rows(stats["databases"]),
        notes="\n".join(f"<p>{note}</p>" for note in [*map(escape, stats["notes"]), COUNTER_NOTES]),
    )


def _card(label: str, value: object, hint: str, tone: str = "") -> str:
    return (
        f'<div class="card {tone}"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(str(value))}</div>'
        f'<div class="hint">{escape(hint)}</div></div>'
    )


def _worker_rows(stats: dict[str, Any], mode: str) -> str:
    rows = []
    for w in stats["workers"]:
        conns = w["connections"] or [None]
        state = "busy" if w["busy"] else "idle"
        head = (
            f'<td rowspan="{len(conns)}">{escape(w["name"])}</td>'
            f'<td rowspan="{len(conns)}">{w["pid"]}</td>'
            f'<td rowspan="{len(conns)}">{escape(w["thread"])}</td>'
            f'<td rowspan="{len(conns)}"><span class="badge {state}">{state}</span></td>'
            f'<td rowspan="{len(conns)}" class="num">{w["requests"]}</td>'
            f'<td rowspan="{len(conns)}" class="num">{_duration(w["age_s"])}</td>'
        )
        for n, conn in enumerate(conns):
            cells = head if n == 0 else ""
            rows.append(f'<tr class="{"group" if n == 0 else ""}">{cells}{_conn_cells(conn)}</tr>')
    for conn in stats["unowned_connections"]:
        cells = _conn_cells(conn)
        rows.append(f'<tr class="group"><td colspan="6">(worker not tracked)</td>{cells}</tr>')
    if not rows:
        why = _NO_WORKER.get(mode, "")
        rows.append(f'<tr><td colspan="11" class="empty">No live worker right now{why}.</td></tr>')
    return "\n".join(rows)


def _conn_cells(conn: dict[str, Any] | None) -> str:
    if conn is None:
        return '<td colspan="5" class="muted">no database connection</td>'
    ident = conn["backend_pid"] if conn["backend_pid"] is not None else f"id {conn['id']}"
    return (
        f"<td>{escape(conn['alias'])}</td><td>{escape(conn['vendor'])}</td>"
        f'<td class="num">{ident}</td><td class="num">{_duration(conn["age_s"])}</td>'
        f'<td class="num">{conn["requests"]}</td>'
    )


def _recent_rows(recent: list[dict[str, Any]]) -> str:
    rows = []
    for r in recent:
        stamp = time.strftime("%H:%M:%S", time.localtime(r["time"]))
        stamp += f".{int(r['time'] * 1000) % 1000:03d}"
        delay = "-" if r["delay_ms"] is None else f"{r['delay_ms']} ms"
        rows.append(
            f"<tr><td>{stamp}</td><td>{escape(r['method'])}</td>"
            f'<td class="path">{escape(r["path"])}</td>'
            f'<td class="num"><span class="badge s{str(r["status"])[:1]}">{r["status"]}</span></td>'
            f'<td class="num">{r["duration_ms"]:.1f} ms</td><td class="num">{delay}</td>'
            f"<td>{escape(r['worker'])}</td><td>{_db_badges(r['db'])}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="8" class="empty">No request served yet.</td></tr>')
    return "\n".join(rows)


def _db_badges(db: str) -> str:
    if db == "-":
        return '<span class="muted">-</span>'
    parts = []
    for item in db.split(","):
        alias, _, state = item.partition(":")
        css = _CONN_CLASS.get(state, "plain")
        parts.append(f'<span class="badge {css}">{escape(alias)} {escape(state)}</span>')
    return " ".join(parts)


def _database_rows(databases: list[dict[str, str]]) -> str:
    rows = [
        f"<tr><td>{escape(d['alias'])}</td><td>{escape(d['vendor'])}</td>"
        f"<td>{escape(d['host'])}</td><td>{escape(d['name'])}</td></tr>"
        for d in databases
    ]
    return "\n".join(rows) or '<tr><td colspan="4" class="empty">No database configured.</td></tr>'


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
