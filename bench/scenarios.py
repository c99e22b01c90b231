"""The measured scenarios: three wrk loads and the PostgreSQL session scenario."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import servers, wrk
from bench.transfer import TRANSFER_SCENARIOS
from cserver.probe import ProbeOptions, run_probe
from cserver.probe.pgstats import PgMonitor, PgStatsError


@dataclass(frozen=True)
class HttpScenario:
    """One wrk load: a path, a number of connections, keep-alive or not."""

    key: str
    label: str
    path: str
    connections: int
    headers: tuple[str, ...] = ()


HTTP_SCENARIOS = {
    s.key: s
    for s in (
        # /hello/length sets Content-Length as CommonMiddleware does; without it (a0, b0)
        # waitress closes the connection after each response, so its a0 (keep-alive) is
        # really a new socket per request.
        HttpScenario("a", "hello + length, c=16 keep-alive", "/hello/length", 16),
        HttpScenario(
            "b", "hello + length, c=16 new socket each", "/hello/length", 16, ("Connection: close",)
        ),
        HttpScenario("a0", "hello, no length, c=16 keep-alive", "/hello", 16),
        HttpScenario(
            "b0", "hello, no length, c=16 new socket each", "/hello", 16, ("Connection: close",)
        ),
        HttpScenario("c", "slow 50 ms, c=64", "/slow?ms=50", 64),
    )
}
DB_KEY = "d"
DB_LABEL = "DB: sequential new-socket /db, CONN_MAX_AGE=None"
ALL_SCENARIOS = (*HTTP_SCENARIOS, DB_KEY, *TRANSFER_SCENARIOS)

Log = Callable[[str], None]


def _fail(failures: list[str], log: Log, message: str) -> None:
    failures.append(message)
    log(f"FAILED {message}")


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    """Median of one numeric field over repetitions (None values skipped)."""
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def migrate(env: dict[str, str], workdir: Path, timeout: float = 120) -> None:
    """Create the demo tables in whatever database env points at."""
    proc = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"migrate failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")


def run_http(
    names: list[str],
    keys: list[str],
    *,
    repeat: int,
    duration: int,
    warmup: int,
    wrk_threads: int,
    workdir: Path,
    log: Log,
    failures: list[str],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """All wrk scenarios on all servers; servers stay up and repetitions are interleaved."""
    env = servers.base_env(workdir)
    migrate(env, workdir)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {k: {n: [] for n in names} for k in keys}
    with contextlib.ExitStack() as stack:
        running = {}
        for name in names:
            try:
                srv = servers.start(servers.SERVERS[name], env, workdir)
            except servers.ServerStartError as exc:
                _fail(failures, log, f"{name}: {exc}")
                continue
            stack.callback(srv.stop)
            running[name] = srv
            log(f"started {srv.spec.label} on port {srv.port}")
        # Interleaving (rep -> scenario -> server) spreads background noise over all servers
        # instead of letting it land on whichever server happened to run at that moment.
        for rep in range(repeat):
            for key in keys:
                sc = HTTP_SCENARIOS[key]
                for name, srv in running.items():
                    url = srv.url(sc.path)
                    load = {"connections": sc.connections, "threads": wrk_threads}
                    try:
                        if rep == 0 and warmup > 0:
                            wrk.run(url, duration=warmup, headers=sc.headers, **load)
                        res = wrk.run(url, duration=duration, headers=sc.headers, **load)
                    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                        _fail(failures, log, f"({key}) {name}: {exc}")
                        continue
                    results[key][name].append(
                        {
                            "requests_per_s": res.requests_per_s,
                            "requests": res.requests,
                            "latency_ms": res.latency_ms,
                            "errors": res.errors,
                        }
                    )
                    log(
                        f"rep {rep + 1}/{repeat} ({key}) {name:9s} "
                        f"{res.requests_per_s:9.1f} req/s"
                        + (f"  errors {res.errors}" if res.errors else "")
                    )
    return results


@contextlib.contextmanager
def postgres(pg_url: str | None) -> Iterator[tuple[Callable[[str], str], Any]]:
    """(database URL for a name, admin connection) on the given or a throwaway server."""
    import psycopg

    cluster = None
    if pg_url is None:
        from testkit.pgcluster import PgCluster  # the suite's throwaway-cluster helper

        cluster = PgCluster().start()
        pg_url = cluster.database_url("postgres")
    base = pg_url.rsplit("/", 1)[0]
    try:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            yield (lambda name: f"{base}/{name}"), admin
    finally:
        if cluster is not None:
            cluster.stop()


def recreate_database(admin: Any, name: str, template: str = "template0") -> None:
    """Drop name (disconnecting its sessions) and create it again from template."""
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


class BenchDatabases:
    """Databases cloned from one migrated template, each dropped after its run."""

    def __init__(self, url_for: Callable[[str], str], admin: Any, template: str) -> None:
        self.url_for = url_for
        self.admin = admin
        self.template = template

    @contextlib.contextmanager
    def fresh(self, name: str) -> Iterator[str]:
        """A new database called name with the demo's tables; its URL. Dropped at exit."""
        recreate_database(self.admin, name, self.template)
        try:
            yield self.url_for(name)
        finally:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def migrated_databases(
    pg_url: str | None, workdir: Path, template: str
) -> Iterator[BenchDatabases]:
    """On the given or a throwaway PostgreSQL: a migrated template to clone runs from."""
    with postgres(pg_url) as (url_for, admin):
        recreate_database(admin, template)
        migrate(servers.base_env(workdir, {"DATABASE_URL": url_for(template)}), workdir)
        try:
            yield BenchDatabases(url_for, admin, template)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


def run_db(
    names: list[str],
    *,
    repeat: int,
    requests: int,
    settle: float,
    workdir: Path,
    pg_url: str | None,
    log: Log,
    failures: list[str],
) -> dict[str, list[dict[str, Any]]]:
    """Per server and repetition: a fresh server and database, N sequential new-socket /db."""
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with migrated_databases(pg_url, workdir, "bench_template") as databases:
        for rep in range(repeat):
            for name in names:
                # Each run gets its own database: sessions and leftovers never mix.
                try:
                    with databases.fresh(f"bench_{name}_{rep}") as url:
                        r = _one_db_run(name, url, requests, settle, workdir)
                except Exception as exc:  # one broken server must not sink the others
                    _fail(failures, log, f"(d) {name} rep {rep + 1}: {exc}")
                    continue
                results[name].append(r)
                log(
                    f"rep {rep + 1}/{repeat} (d) {name:9s} {r['elapsed_s']:7.3f} s, "
                    f"sessions opened {r['sessions_opened']}, left open {r['left_open']}"
                    + (f", errors {r['error_kinds']}" if r["errors"] else "")
                )
    return results


def _one_db_run(
    name: str, database_url: str, requests: int, settle: float, workdir: Path
) -> dict[str, Any]:
    env = servers.base_env(workdir, {"DATABASE_URL": database_url, "DJANGO_CONN_MAX_AGE": "None"})
    load = DbLoad(path="/db", requests=requests, concurrency=1, keepalive=False, settle=settle)
    return probe_fresh_server(servers.SERVERS[name], env, database_url, load, workdir)


def _open_sessions(database_url: str) -> int | None:
    """Client sessions on the database now: what the server held before the load."""
    monitor = PgMonitor(database_url)
    try:
        monitor.open()
        return monitor.snapshot().open_connections
    except PgStatsError:
        return None
    finally:
        monitor.close()


@dataclass(frozen=True)
class DbLoad:
    """The requests sent to a freshly started server whose database sessions are counted."""

    path: str
    requests: int
    concurrency: int
    keepalive: bool
    settle: float


def probe_fresh_server(
    spec: servers.ServerSpec,
    env: dict[str, str],
    database_url: str,
    load: DbLoad,
    workdir: Path,
) -> dict[str, Any]:
    """Start spec, send the load with the probe, stop it: the probe's database figures."""
    srv = servers.start(spec, env, workdir)
    try:
        # /hello loads Django's URLconf and middleware without touching the database, so
        # the measured time is about connections, not first-request imports.
        for _ in range(3):
            srv.answers("/hello")
        time.sleep(0.2)
        open_before = _open_sessions(database_url)
        report = run_probe(
            ProbeOptions(
                url=srv.url(load.path),
                requests=load.requests,
                concurrency=load.concurrency,
                keepalive=load.keepalive,
                timeout=10.0,
                duration_limit=300.0,
                settle=load.settle,
                database_url=database_url,
            )
        )
    finally:
        srv.stop()
    return {
        "elapsed_s": report["elapsed_s"],
        "requests": report["requests"],
        "errors": report["errors"],
        "error_kinds": report["error_kinds"],
        "sessions_opened": report["db_sessions_opened"],
        "left_open": report["db_left_open"],
        "open_before": open_before,
        "db_pids_seen": report["db_pids_seen"],
        "latency_ms": report["latency_ms"],
    }
