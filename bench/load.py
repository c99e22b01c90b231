#!/usr/bin/env python3
"""Load and soak runs that check cserver's bounds, not its speed.

Usage: python bench/load.py [--short] [--only conn,limit,slowloris,fork,soak]
       [--soak-seconds 1800] [--json FILE]

Scenarios (full size; --short shrinks them for CI):
  conn       1,000 concurrent keep-alive connections against pool mode (16 workers)
  limit      the same against --connection-limit 500: every request is served or gets a 503
  slowloris  200 idle or trickling connections; latency of normal requests meanwhile
  fork       1,000 concurrent connections against fork mode (8 workers): children cap, zombies
  soak       moderate mixed load for --soak-seconds; threads, descriptors and database
             connections at the end must equal those at the start
Servers run the test project (tests.project) with DEBUG off, on loopback, free ports.
Exit status 1 when a bound is violated. Only loopback is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `testkit` and `cserver` importable
    sys.path.insert(0, str(ROOT))

from testkit import loadkit as lk  # noqa: E402
from testkit.serverproc import ServerProcess, project_env, start_server  # noqa: E402

SCENARIOS = ("conn", "limit", "slowloris", "fork", "soak")
FULL = {"conns": 1000, "slow": 200, "fork_conns": 1000, "soak": 1800.0}
SHORT = {"conns": 200, "slow": 50, "fork_conns": 60, "soak": 8.0}
THREAD_SLACK = 3  # threads beyond main + workers that a server may have


class Run:
    """One scenario's figures and the bounds checked on them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.figures: dict[str, Any] = {}
        self.checks: list[tuple[str, bool, str]] = []

    def check(self, what: str, ok: bool, detail: Any = "") -> None:
        self.checks.append((what, bool(ok), str(detail)))

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


def server(args: list[str], tmp: Path, extra: dict[str, str] | None = None) -> ServerProcess:
    env = project_env(
        {
            "DJANGO_SETTINGS_MODULE": "tests.hostile.load_settings",
            "TEST_DEBUG": "0",
            "TEST_SQLITE": str(tmp / "load.sqlite3"),
            **(extra or {}),
        }
    )
    return start_server(args, env=env, timeout=60)


def sqlite_connections(pid: int, path: Path) -> int:
    """Open SQLite connections of a process: descriptors on the database file."""
    return sum(1 for target in lk.fd_targets(pid) if target == str(path))


def _after_load(run: Run, srv: ServerProcess, sampler: lk.Sampler, base: lk.Snapshot) -> None:
    """Bounds every scenario shares: alive, no hang, back to the starting state."""
    started = time.monotonic()
    try:
        status = asyncio.run(lk.one_get(srv.port))
    except Exception as exc:
        status = lk.classify(exc)  # type: ignore[assignment]
    run.figures["first_request_after_load_s"] = round(time.monotonic() - started, 3)
    run.check("serves a request right after the load (< 2 s)", status == 200, status)
    run.check("server process alive", srv.proc.poll() is None, srv.proc.poll())
    snap, took = lk.settle(
        sampler.snapshot, lambda s: s.fds <= base.fds and s.threads == base.threads, 20
    )
    run.figures["settled_in_s"] = round(took, 2)
    run.check("descriptors back to the start", snap.fds <= base.fds, f"{base.fds} -> {snap.fds}")
    run.check(
        "threads back to the start",
        snap.threads == base.threads,
        f"{base.threads} -> {snap.threads}",
    )


def scenario_conns(name: str, conns: int, tmp: Path, limit: int | None, workers: int = 16) -> Run:
    run = Run(name)
    args = ["--mode", "pool", "--workers", str(workers)]
    if limit is not None:
        args += ["--connection-limit", str(limit)]
    with server(args, tmp) as srv:
        sampler = lk.Sampler(srv.proc.pid)
        asyncio.run(lk.burst(srv.port, 4, 2, 10))  # warm up: workers import and connect
        base = lk.quiet(sampler)
        started = time.monotonic()
        with sampler:
            outcomes = asyncio.run(lk.burst(srv.port, conns, 3, 60))
        run.figures.update(
            connections=conns,
            connection_limit=limit or 1000,
            seconds=round(time.monotonic() - started, 2),
            outcomes=dict(outcomes),
            threads_start=base.threads,
            threads_max=sampler.peak("threads"),
            fds_start=base.fds,
            fds_max=sampler.peak("fds"),
            rss_start_mib=round(base.rss_kib / 1024, 1),
            rss_max_mib=round(sampler.peak("rss_kib") / 1024, 1),
        )
        run.check(
            "no request failed (each got 200 or a clean 503)",
            outcomes.errors() == 0,
            dict(outcomes),
        )
        if limit is None or limit >= conns:
            run.check("nothing refused under the limit", outcomes["503"] == 0, outcomes["503"])
        else:
            run.check("connections over the limit got 503", outcomes["503"] > 0, outcomes["503"])
        run.check(
            f"threads <= workers + 1 + {THREAD_SLACK}",
            sampler.peak("threads") <= workers + 1 + THREAD_SLACK,
            sampler.peak("threads"),
        )
        run.check("memory growth < 256 MiB", sampler.peak("rss_kib") - base.rss_kib < 256 * 1024)
        _after_load(run, srv, sampler, base)
    return run


async def _trickle(socks: list[tuple[Any, Any]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for _, writer in socks:
            if not writer.is_closing():
                writer.write(b"x")
        await asyncio.sleep(1.0)


async def _slowloris(port: int, slow: int, probes: int) -> dict[str, Any]:
    async def probe_series() -> list[float]:
        times = []
        for _ in range(probes):
            started = time.monotonic()
            status = await lk.one_get(port)
            times.append(time.monotonic() - started if status == 200 else float("inf"))
            await asyncio.sleep(0.02)
        return times

    baseline = await probe_series()
    idle = [await lk.connect(port, 10) for _ in range(slow // 2)]
    tricklers = [await lk.connect(port, 10) for _ in range(slow - slow // 2)]
    for _, writer in tricklers:
        writer.write(b"GET /hello HTTP/1.1\r\nHost: load\r\nX-Slow: ")
    stop = asyncio.Event()
    trickle = asyncio.create_task(_trickle(tricklers, stop))
    during = await probe_series()
    stop.set()
    await trickle

    async def closed_by_server(pair: tuple[Any, Any]) -> str:
        reader, writer = pair
        try:
            data = await asyncio.wait_for(reader.read(), 30)
            return "408" if data.startswith(b"HTTP/1.1 408") else "closed"
        except Exception as exc:
            return lk.classify(exc)
        finally:
            await lk.close_writer(writer)

    endings = await asyncio.gather(*(closed_by_server(p) for p in idle + tricklers))
    return {"baseline": baseline, "during": during, "endings": endings}


def scenario_slowloris(slow: int, tmp: Path, short: bool) -> Run:
    run = Run("slowloris")
    timeouts = ["--header-timeout", "3", "--keepalive-timeout", "3"] if short else []
    with server(["--mode", "pool", "--workers", "16", *timeouts], tmp) as srv:
        sampler = lk.Sampler(srv.proc.pid)
        asyncio.run(lk.burst(srv.port, 4, 2, 10))
        base = lk.quiet(sampler)
        with sampler:
            result = asyncio.run(_slowloris(srv.port, slow, 20 if short else 50))
        base_ms = statistics.median(result["baseline"]) * 1000
        during = sorted(result["during"])
        p50 = statistics.median(during) * 1000
        p95 = during[int(len(during) * 0.95) - 1] * 1000
        endings: dict[str, int] = {}
        for ending in result["endings"]:
            endings[ending] = endings.get(ending, 0) + 1
        run.figures.update(
            slow_connections=slow,
            baseline_p50_ms=round(base_ms, 2),
            during_p50_ms=round(p50, 2),
            during_p95_ms=round(p95, 2),
            during_max_ms=round(during[-1] * 1000, 2),
            added_p50_ms=round(p50 - base_ms, 2),
            added_p95_ms=round(p95 - base_ms, 2),
            slow_connections_ended=endings,
            threads_start=base.threads,
            threads_max=sampler.peak("threads"),
        )
        run.check(
            "threads never grew", sampler.peak("threads") <= base.threads, sampler.peak("threads")
        )
        run.check(
            "every slow connection closed by the server (408 or close)",
            sum(endings.get(k, 0) for k in ("408", "closed")) == slow,
            endings,
        )
        if not short:  # a latency figure: checked in full runs, only reported in --short
            run.check(
                "normal requests delayed < 100 ms (p95)",
                p95 - base_ms < 100,
                round(p95 - base_ms, 2),
            )
        _after_load(run, srv, sampler, base)
    return run


def scenario_fork(conns: int, tmp: Path, workers: int = 8) -> Run:
    run = Run("fork")
    with server(["--mode", "fork", "--workers", str(workers)], tmp) as srv:
        sampler = lk.Sampler(srv.proc.pid, interval=0.01, watch_children=True)
        asyncio.run(lk.burst(srv.port, 2, 1, 20))
        lk.settle(sampler.snapshot, lambda s: s.children == 0, 10)
        base = sampler.snapshot()
        started = time.monotonic()
        with sampler:
            outcomes = asyncio.run(lk.burst(srv.port, conns, 2, 120))
            # Children exit as their clients close; all must be reaped, none left a zombie.
            snap, took = lk.settle(sampler.snapshot, lambda s: s.children == 0, 15)
        run.figures.update(
            connections=conns,
            workers=workers,
            seconds=round(time.monotonic() - started, 2),
            outcomes=dict(outcomes),
            children_max=sampler.peak("children"),
            zombie_max_age_s=round(sampler.max_zombie_age, 3),
            children_gone_after_s=round(took, 2),
        )
        run.check("no request failed", outcomes.errors() == 0, dict(outcomes))
        run.check(
            f"live children <= {workers}",
            sampler.peak("children") <= workers,
            sampler.peak("children"),
        )
        run.check("no child left behind", snap.children == 0, snap.children)
        run.check("no zombie older than 1 s", sampler.max_zombie_age < 1.0, sampler.max_zombie_age)
        _after_load(run, srv, sampler, base)
    return run


def scenario_soak(seconds: float, tmp: Path, pg: Any = None, workers: int = 8) -> Run:
    """Persistent database connections (CONN_MAX_AGE=None): one per worker, none leaked."""
    run = Run("soak")
    db_file = tmp / "load.sqlite3"
    extra = {"DJANGO_CONN_MAX_AGE": "None"}
    if pg is not None:
        pg.create_database("cserver_load")
        extra["DATABASE_URL"] = pg.database_url("cserver_load")
    args = ["--mode", "pool", "--workers", str(workers), "--header-timeout", "2"]
    with server(args, tmp, extra) as srv:
        pid = srv.proc.pid

        def db_count() -> int:
            if pg is not None:
                return len(pg.sessions("cserver_load"))
            return sqlite_connections(pid, db_file)

        sampler = lk.Sampler(pid, db_count, interval=1.0)
        run.figures["database"] = "postgresql" if pg is not None else "sqlite file"
        # Warm up until every worker holds its persistent database connection.
        for _ in range(20):
            asyncio.run(lk.db_burst(srv.port, workers * 2))
            if db_count() >= workers:
                break
        base = lk.quiet(sampler)
        started = time.monotonic()
        with sampler:
            outcomes = asyncio.run(lk.soak(srv.port, seconds, 16))
        run.figures.update(
            seconds=round(time.monotonic() - started, 1),
            outcomes=dict(outcomes),
            threads_start=base.threads,
            fds_start=base.fds,
            db_connections_start=base.db,
            rss_start_mib=round(base.rss_kib / 1024, 1),
            rss_max_mib=round(sampler.peak("rss_kib") / 1024, 1),
            db_connections_max=sampler.peak("db"),
        )
        odd = [key for key in outcomes if key.endswith("-odd") or key == "5xx"]
        run.check("no unexpected failure", outcomes.errors() == 0 and not odd, dict(outcomes))
        snap, _ = lk.settle(
            sampler.snapshot,
            lambda s: (s.threads, s.fds, s.db) == (base.threads, base.fds, base.db),
            20,
        )
        run.figures.update(
            threads_end=snap.threads,
            fds_end=snap.fds,
            db_connections_end=snap.db,
            rss_end_mib=round(snap.rss_kib / 1024, 1),
        )
        run.check(
            "same threads at the end",
            snap.threads == base.threads,
            f"{base.threads} -> {snap.threads}",
        )
        run.check("same descriptors at the end", snap.fds == base.fds, f"{base.fds} -> {snap.fds}")
        run.check(
            "same database connections at the end", snap.db == base.db, f"{base.db} -> {snap.db}"
        )
        _after_load(run, srv, sampler, base)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="small sizes for CI")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--soak-seconds", type=float, default=None, help="soak duration")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    parser.add_argument(
        "--pg",
        action="store_true",
        help="soak against a throwaway PostgreSQL cluster (tests/pgcluster.py) instead of "
        "a SQLite file; needs the PostgreSQL server binaries",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}: expected {', '.join(SCENARIOS)}")
    size = SHORT if args.short else FULL
    soak_seconds = args.soak_seconds if args.soak_seconds is not None else size["soak"]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="cserver-load-") as tmp_name:
        tmp = Path(tmp_name)
        for name in chosen:
            if name == "conn":
                runs.append(scenario_conns("conn", size["conns"], tmp, None))
            elif name == "limit":
                runs.append(scenario_conns("limit", size["conns"], tmp, size["conns"] // 2))
            elif name == "slowloris":
                runs.append(scenario_slowloris(size["slow"], tmp, args.short))
            elif name == "fork":
                runs.append(scenario_fork(size["fork_conns"], tmp))
            elif args.pg:
                from testkit.pgcluster import PgCluster

                with PgCluster() as cluster:
                    runs.append(scenario_soak(soak_seconds, tmp, cluster))
            else:
                runs.append(scenario_soak(soak_seconds, tmp))
            print(report(runs[-1]), flush=True)
    results = {r.name: {"ok": r.ok, "figures": r.figures, "checks": r.checks} for r in runs}
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r.ok for r in runs) else 1


def report(run: Run) -> str:
    lines = [f"## {run.name}: {'ok' if run.ok else 'BOUND VIOLATED'}"]
    lines += [f"  {key}: {value}" for key, value in run.figures.items()]
    lines += [f"  [{'ok' if ok else 'FAIL'}] {what} ({detail})" for what, ok, detail in run.checks]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
