"""Django database connections under every cserver mode, counted in a real PostgreSQL.

Each test starts a real server on the test project, sends requests that each report the
backend pid that served their query, and counts sessions in pg_stat_activity (open now)
and pg_stat_database.sessions (ever opened). Figures are printed (``pytest -s``) as
``figures: ...`` lines.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from testkit.pgcluster import PgCluster
from testkit.serverproc import ServerProcess, get, project_env, start_server, wait_until

pytestmark = pytest.mark.postgres

MODES = ["thread", "pool", "fork"]
WORKERS = 4
REQUESTS = 30
# Issue target: a thread's or child's connections are gone a second after the response.
CLOSE_WITHIN = 1.0
# After SIGTERM: the server's grace period plus PostgreSQL noticing the closed sockets.
SHUTDOWN_WITHIN = 3.0
# What a backend logs (at DEBUG1) when its client vanished without closing the session,
# e.g. a process that exited or was killed with the connection still open.
UNCLEAN_END = "unexpected EOF on client connection"


def pg_env(pg: PgCluster, db: str, max_age: str, **extra: str) -> dict[str, str]:
    """Environment for tests.project.pg_settings on database ``db``."""
    return project_env(
        {
            "DJANGO_SETTINGS_MODULE": "tests.project.pg_settings",
            "DATABASE_URL": pg.database_url(db),
            "DJANGO_CONN_MAX_AGE": max_age,
            **extra,
        }
    )


class Run:
    """A running server plus what PostgreSQL had seen of ``db`` before its first request."""

    def __init__(self, server: ServerProcess, pg: PgCluster, db: str, log_offset: int) -> None:
        self.server = server
        self.pg = pg
        self.db = db
        self.log_offset = log_offset
        # The startup checks' session (migration check) has ended once none is left, and a
        # backend flushes its statistics before it leaves pg_stat_activity: exact baseline.
        self.startup_open = [s.pid for s in pg.sessions(db)]
        self.baseline = pg.sessions_opened(db)

    def open_pids(self) -> set[int]:
        return {s.pid for s in self.pg.sessions(self.db)}

    def backend(self, path: str = "/db") -> int:
        """One request on a new socket; the backend pid that served its query."""
        status, _headers, body = get(self.server.url(path))
        assert status == 200, body[:300]
        return json.loads(body)["backend"]

    def sequential(self, count: int = REQUESTS, path: str = "/db") -> list[int]:
        return [self.backend(path) for _ in range(count)]

    def wait_closed(self, keep: set[int] | None = None, timeout: float = CLOSE_WITHIN) -> float:
        """Seconds until only ``keep`` sessions remain; fails after ``timeout``."""
        keep = keep or set()
        start = time.monotonic()
        self.pg.wait_for(lambda: self.open_pids() <= keep, timeout=timeout)
        return time.monotonic() - start

    def unclean_ends(self) -> list[str]:
        """Server log lines of this database's sessions that ended without being closed."""
        with self.pg.logfile.open("rb") as log:
            log.seek(self.log_offset)
            text = log.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if UNCLEAN_END in line]

    def shutdown(self) -> tuple[float, int]:
        """SIGTERM; (seconds until no session is left, sessions opened since startup).

        Also checks that the server closed every session it opened itself.
        """
        code = self.server.stop(timeout=10)
        assert code == 0, self.server.output()[-2000:]
        seconds = self.wait_closed(timeout=SHUTDOWN_WITHIN)
        assert self.unclean_ends() == []
        return seconds, self.pg.sessions_opened(self.db) - self.baseline


def log_unclean_ends(pg: PgCluster, db: str) -> int:
    """Make db's sessions log UNCLEAN_END; the log's size now, where the test's part starts."""
    with psycopg.connect(pg.dsn("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET log_min_messages = debug1").format(sql.Identifier(db))
        )
    return pg.logfile.stat().st_size


@contextlib.contextmanager
def serve(
    pg: PgCluster,
    db: str,
    mode: str,
    max_age: str,
    workers: int = WORKERS,
    command: str = "runcserver",
    reload: bool = False,
    **extra: str,
) -> Iterator[Run]:
    """A server in ``mode`` with CONN_MAX_AGE ``max_age``, stopped (SIGKILL at worst) at exit."""
    args = [] if command == "runserver" else ["--mode", mode, "--workers", str(workers)]
    log_offset = log_unclean_ends(pg, db)
    env = pg_env(pg, db, max_age, **extra)
    with start_server(args, env=env, command=command, noreload=not reload) as server:
        # The check connection is closed before the banner; give its backend time to exit
        # (tests assert Run.startup_open is empty where that is expected).
        if extra.get("TEST_STARTUP_QUERY") != "1":
            wait_until(lambda: not pg.sessions(db), CLOSE_WITHIN + 1)
        yield Run(server, pg, db, log_offset)


class KeepAlive:
    """One client connection carrying several requests (HTTP/1.1 keep-alive)."""

    def __init__(self, server: ServerProcess) -> None:
        assert server.port is not None
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

    def get(self, path: str = "/db") -> tuple[int, int | None]:
        """(status, backend pid or None if the request failed)."""
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        assert not response.will_close, "the server closed a keep-alive connection"
        backend = json.loads(body)["backend"] if response.status == 200 else None
        return response.status, backend

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> KeepAlive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def figures(**values: object) -> None:
    print("figures:", " ".join(f"{k}={v}" for k, v in values.items()))


@pytest.mark.parametrize("max_age", ["0", "60", "None"])
@pytest.mark.parametrize("mode", MODES)
def test_sessions_per_mode_and_conn_max_age(
    pg: PgCluster, pg_db: str, mode: str, max_age: str
) -> None:
    """New socket per request: pool workers keep <= workers sessions; threads and children
    close theirs when their client connection ends; nothing survives shutdown."""
    with serve(pg, pg_db, mode, max_age) as run:
        # The server process closed its check connection before serving (and forking).
        assert run.startup_open == []
        pids = run.sequential()
        open_after = len(run.open_pids())
        persistent_pool = mode == "pool" and max_age != "0"
        if persistent_pool:
            # Each worker keeps its one connection for the next request.
            assert len(set(pids)) <= WORKERS
            assert run.open_pids() <= set(pids)
            closed_in = None
        else:
            # CONN_MAX_AGE=0 closes at the end of each request; a thread or a child closes
            # its connections when its client connection ends, whatever CONN_MAX_AGE says.
            assert len(set(pids)) == REQUESTS
            closed_in = run.wait_closed()
        shutdown_in, opened = run.shutdown()
    if persistent_pool:
        assert opened <= WORKERS
    else:
        assert opened == REQUESTS
    figures(
        test="matrix",
        mode=mode,
        conn_max_age=max_age,
        requests=REQUESTS,
        opened=opened,
        distinct_backends=len(set(pids)),
        open_after_last=open_after,
        all_closed_in=f"{closed_in:.2f}s" if closed_in is not None else "-",
        zero_after_shutdown_in=f"{shutdown_in:.2f}s",
    )


@pytest.mark.parametrize("mode", MODES)
def test_conn_max_age_number_expires(pg: PgCluster, pg_db: str, mode: str) -> None:
    """CONN_MAX_AGE=1: reused within a second, replaced at the first request after it."""
    with serve(pg, pg_db, mode, "1") as run, KeepAlive(run.server) as client:
        assert run.startup_open == []
        first = [client.get() for _ in range(5)]
        assert all(status == 200 for status, _ in first)
        first_pids = {pid for _, pid in first}
        if mode != "pool":
            # One thread or child serves this client connection: one session, reused.
            assert len(first_pids) == 1
            assert run.open_pids() == first_pids
        time.sleep(1.3)
        second = [client.get() for _ in range(5)]
        assert all(status == 200 for status, _ in second)
        second_pids = {pid for _, pid in second}
        # Django closes an expired connection at the start of the next request.
        assert not (first_pids & second_pids)
        if mode != "pool":
            assert len(second_pids) == 1
            run.pg.wait_for(lambda: not (run.open_pids() & first_pids), timeout=CLOSE_WITHIN)
        client.close()
        if mode != "pool":
            run.wait_closed()
        _shutdown_in, opened = run.shutdown()
    figures(test="max_age_1", mode=mode, opened=opened, before=first_pids, after=second_pids)


def test_runserver_opens_more_sessions_than_pool_mode(pg: PgCluster, pg_db: str) -> None:
    """The point of the project: runserver's thread per request versus pool mode."""
    count = 50
    results = {}
    for command in ("runserver", "runcserver"):
        pg.create_database(pg_db)  # a fresh database, fresh counters
        with serve(pg, pg_db, "pool", "None", command=command) as run:
            assert run.startup_open == []
            pids = run.sequential(count)
            # What the server still holds once its request threads are gone.
            time.sleep(1.0)
            left_open = len(run.open_pids())
            code = run.server.stop(timeout=10)
            # runserver dies of SIGTERM without handling it; cserver exits cleanly.
            assert code == (0 if command == "runcserver" else -15)
            run.wait_closed(timeout=SHUTDOWN_WITHIN)
            opened = pg.sessions_opened(pg_db) - run.baseline
            unclean = len(run.unclean_ends())
        results[command] = opened
        if command == "runcserver":
            assert unclean == 0
        figures(
            test="compare",
            server=command if command == "runserver" else "runcserver --mode pool --workers 4",
            conn_max_age="None",
            requests=count,
            opened=opened,
            distinct_backends=len(set(pids)),
            left_open_1s_after=left_open,
            ended_unclosed=unclean,
        )
    assert results["runcserver"] <= WORKERS
    assert results["runserver"] > results["runcserver"]


def test_each_worker_process_has_its_own_sessions(pg: PgCluster, pg_db: str) -> None:
    """--processes 2: every process opens and keeps its own sessions, as under gunicorn -w 2;
    pg_stat_activity holds exactly those, and none is left after shutdown."""
    extra = {"CSERVER_PROCESSES": "2", "CSERVER_DIAGNOSTICS": "1"}
    with serve(pg, pg_db, "pool", "None", workers=2, **extra) as run:
        backends: dict[int, set[int]] = {}
        for _ in range(200):
            status, headers, body = get(run.server.url("/db"))
            assert status == 200, body[:300]
            data = json.loads(body)
            assert int(headers["X-Cserver-Pid"]) == data["pid"]
            backends.setdefault(data["pid"], set()).add(data["backend"])
            if len(backends) == 2 and sum(map(len, backends.values())) >= 2:
                break
        assert len(backends) == 2, backends
        first, second = backends.values()
        assert not first & second  # no session is shared between processes
        for pids in backends.values():
            assert 1 <= len(pids) <= 2  # at most one per pool worker of that process
        assert run.open_pids() == first | second
        _, opened = run.shutdown()
    assert opened == len(first | second)
    figures(test="processes", per_process={p: sorted(b) for p, b in backends.items()})
