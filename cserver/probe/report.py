"""Turn a probe run into numbers (a JSON-ready dict) and into the one table it prints."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, TextIO

from cserver.probe.client import LoadResult

_SOURCE_LABELS = {
    "header": "X-Cserver-Worker header",
    "json": "JSON body",
    "postgresql": "PostgreSQL",
    "diagnostics": "/__cserver__/stats",
}


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for no values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(result: LoadResult) -> dict[str, Any]:
    """Request counts, error kinds, throughput, latency and what the responses revealed."""
    samples = result.samples
    errors = Counter(s.error for s in samples if s.error)
    ok = len(samples) - sum(errors.values())
    latencies = sorted(s.latency * 1000 for s in samples if s.latency is not None)
    workers = {s.worker for s in samples if s.worker}
    sources = Counter(s.worker_source for s in samples if s.worker_source)
    pids = {pid for s in samples for pid in s.db_pids}
    processes = Counter(s.process for s in samples if s.process is not None)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "requests": len(samples),
        "ok": ok,
        "errors": sum(errors.values()),
        "error_kinds": dict(sorted(errors.items())),
        "elapsed_s": round(result.elapsed, 4),
        # Successful requests only: a server that fails fast must not look fast.
        "requests_per_s": round(ok / result.elapsed, 1) if result.elapsed > 0 else None,
        "latency_ms": {
            "min": ms(latencies[0] if latencies else None),
            "p50": ms(percentile(latencies, 50)),
            "p95": ms(percentile(latencies, 95)),
            "p99": ms(percentile(latencies, 99)),
            "max": ms(latencies[-1] if latencies else None),
            "mean": ms(sum(latencies) / len(latencies) if latencies else None),
        },
        "stopped_early": result.stopped_early,
        "workers_seen": len(workers) if workers else None,
        "workers_source": sources.most_common(1)[0][0] if sources else None,
        "db_pids_seen": len(pids) if pids else None,
        # Server process pid -> requests it answered, when the responses name it.
        "requests_per_process": {str(pid): n for pid, n in sorted(processes.items())} or None,
    }


def _na(value: Any, fmt: str = "{}") -> str:
    return "n/a" if value is None else fmt.format(value)


def format_table(report: dict[str, Any]) -> str:
    """The single human-readable table printed by `cserver probe`."""
    lat = report["latency_ms"]
    requests = str(report["requests"])
    if report["stopped_early"]:
        requests += (
            f" of {report['requests_planned']}"
            f" (stopped by --duration-limit {report['duration_limit_s']:g} s)"
        )
    errors = str(report["errors"])
    if report["error_kinds"]:
        kinds = ", ".join(f"{k}: {n}" for k, n in report["error_kinds"].items())
        errors += f" ({kinds})"
    workers = _na(report["workers_seen"])
    if report["workers_source"]:
        workers += f" (from {_SOURCE_LABELS[report['workers_source']]})"
    opened = _na(report["db_sessions_opened"])
    left = _na(report["db_left_open"])
    if report["db_source"] == "postgresql":
        opened += f" (pg_stat_database.sessions, {report['database_url']})"
        left += f" (pg_stat_activity, after {report['settle_s']:g} s settle)"
    elif report["db_source"] == "diagnostics":
        opened += " (server's /__cserver__/stats)"
        left += f" (server's /__cserver__/stats, after {report['settle_s']:g} s settle)"
    elif report.get("db_note"):
        note = report["db_note"]
        opened += f" ({note if len(note) <= 100 else note[:97] + '...'})"
    connection = "keep-alive" if report["keepalive"] else "new socket per request"
    rows = [
        ("target", f"GET {report['url']}"),
        (
            "load",
            f"{report['requests_planned']} requests, concurrency {report['concurrency']}, "
            f"{connection}",
        ),
        ("requests", requests),
        ("errors", errors),
        ("requests/s", _na(report["requests_per_s"], "{:.1f}")),
        ("latency p50 (ms)", _na(lat["p50"], "{:.2f}")),
        ("latency p95 (ms)", _na(lat["p95"], "{:.2f}")),
        ("latency p99 (ms)", _na(lat["p99"], "{:.2f}")),
        ("workers seen", workers),
        ("per-process requests", _per_process(report.get("requests_per_process"))),
        ("DB backend pids seen", _na(report["db_pids_seen"])),
        ("DB sessions opened", opened),
        ("DB connections left open", left),
    ]
    width = max(len(name) for name, _ in rows)
    value_width = min(60, max(len(value) for _, value in rows))
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * value_width}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def _per_process(counts: dict[str, int] | None) -> str:
    """``pid 4242: 101, pid 4243: 99`` (from X-Cserver-Pid or a JSON "pid")."""
    if not counts:
        return "n/a"
    if len(counts) > 8:  # fork mode: a process per connection
        return f"{len(counts)} processes, at most {max(counts.values())} requests each"
    return ", ".join(f"pid {pid}: {n}" for pid, n in counts.items())


class ProgressBar:
    """A one-line progress bar redrawn in place on a terminal stream."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        """Redraw for `done` of `total` requests."""
        filled = self.width * done // total if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{total}")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        """Erase the bar so the table starts on a clean line."""
        if self.drawn:
            self.stream.write("\r" + " " * (self.width + 24) + "\r")
            self.stream.flush()
