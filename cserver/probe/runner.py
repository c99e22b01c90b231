"""One probe run: reachability check, DB baseline, load, settle, DB counters, summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cserver.probe.client import LoadPlan, Target, check_reachable, parse_target, run_load
from cserver.probe.pgstats import (
    PgMonitor,
    PgStatsError,
    fetch_server_stats,
    is_postgres_url,
)
from cserver.probe.report import summarise
from cserver.redact import redact_url

DEFAULT_URL = "http://127.0.0.1:8000/whoami"


class ProbeConnectError(Exception):
    """The server did not accept a TCP connection; the message is the one line to print."""


@dataclass
class ProbeOptions:
    """Everything `cserver probe` accepts, already validated."""

    url: str = DEFAULT_URL
    requests: int = 200
    concurrency: int = 8
    keepalive: bool = False
    timeout: float = 10.0
    duration_limit: float = 60.0
    settle: float = 1.0
    database_url: str | None = None
    stats_wait: float = 3.0  # upper bound for PostgreSQL's lazily flushed counters


class _DbWatch:
    """Takes a baseline of the database counters before the load and the delta after."""

    def __init__(self, opts: ProbeOptions, target: Target) -> None:
        self.opts = opts
        self.target = target
        self.source: str | None = None
        self.note: str | None = None
        self.monitor: PgMonitor | None = None
        self.before: Any = None

    def start(self) -> None:
        url = self.opts.database_url
        if url and is_postgres_url(url):
            monitor = PgMonitor(url, connect_timeout=min(self.opts.timeout, 5.0))
            try:
                monitor.open()
                self.before = monitor.snapshot()
                self.monitor, self.source = monitor, "postgresql"
                return
            except PgStatsError as exc:
                monitor.close()
                self.note = f"PostgreSQL not reachable: {exc}"
        elif url:
            self.note = "database URL is not PostgreSQL"
        stats = fetch_server_stats(self.target, timeout=min(self.opts.timeout, 2.0))
        if stats is not None and "opened" in stats:
            self.before, self.source = stats, "diagnostics"
        elif self.note is None:
            self.note = "no PostgreSQL URL and no /__cserver__/stats"

    def finish(self) -> dict[str, Any]:
        opened = left = None
        if self.source is not None:
            time.sleep(self.opts.settle)
        if self.monitor is not None:
            try:
                after = self.monitor.settled_snapshot(max_wait=self.opts.stats_wait)
                if after.sessions is not None and self.before.sessions is not None:
                    # The counter may lag for sessions still open; those are counted directly.
                    opened = max(after.sessions - self.before.sessions, after.opened_since_start)
                left = after.open_connections
            except PgStatsError as exc:
                self.note = f"PostgreSQL read failed: {exc}"
            finally:
                self.monitor.close()
        elif self.source == "diagnostics":
            after_stats = fetch_server_stats(self.target, timeout=min(self.opts.timeout, 2.0))
            if after_stats is not None:
                opened = after_stats.get("opened", 0) - self.before["opened"]
                left = after_stats.get("left_open")
        return {
            "db_source": self.source,
            "db_sessions_opened": opened,
            "db_left_open": left,
            "db_note": self.note,
        }


def run_probe(
    opts: ProbeOptions, on_progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Run the probe and return the report dict (the JSON that `--json` prints)."""
    target = parse_target(opts.url)
    reason = check_reachable(target, timeout=min(opts.timeout, 5.0))
    if reason is not None:
        raise ProbeConnectError(f"cannot connect to {redact_url(opts.url)}: {reason}")
    watch = _DbWatch(opts, target)
    watch.start()
    plan = LoadPlan(
        target=target,
        requests=opts.requests,
        concurrency=opts.concurrency,
        keepalive=opts.keepalive,
        timeout=opts.timeout,
        duration_limit=opts.duration_limit,
    )
    try:
        result = run_load(plan, on_progress=on_progress)
    finally:
        db = watch.finish()
    return {
        "url": redact_url(opts.url),
        "requests_planned": opts.requests,
        "concurrency": opts.concurrency,
        "keepalive": opts.keepalive,
        "timeout_s": opts.timeout,
        "duration_limit_s": opts.duration_limit,
        "settle_s": opts.settle,
        "database_url": redact_url(opts.database_url) if opts.database_url else None,
        **summarise(result),
        **db,
    }
