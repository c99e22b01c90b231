"""Django's database connections under ASGI, counted in a real PostgreSQL.

runcserver --mode asgi serves the test project with uvicorn in-process; Django runs a sync
view, and an async view's sync_to_async query, in a thread of the request's own
(asgiref's thread-sensitive context), so a connection is never reused by the next request.
These tests pin that behaviour for a sync and an async view and compare it with uvicorn
run on its own, on the same load in the same test. Figures are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

import pytest

from testkit.pgcluster import PgCluster
from testkit.serverproc import (
    ROOT,
    UVICORN_BANNER_RE,
    ServerProcess,
    start_server,
    wait_until,
)
from tests.test_connections_pg import (
    CLOSE_WITHIN,
    SHUTDOWN_WITHIN,
    Run,
    figures,
    log_unclean_ends,
    pg_env,
)

pytestmark = pytest.mark.postgres

VIEWS = {"sync": "/db", "async": "/db/async"}
REQUESTS = 30
SERVERS = ("runcserver --mode asgi", "uvicorn")


def _start(server: str, env: dict[str, str]) -> ServerProcess:
    if server == "uvicorn":
        # Django's own ASGI application of the settings in env, as uvicorn serves it.
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "django.core.asgi:get_asgi_application",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--workers",
            "1",
        ]
        process = ServerProcess(argv, env, ROOT, banner=UVICORN_BANNER_RE)
        process.wait_bound(30)
        return process
    return start_server(["--mode", "asgi"], env=env)


@contextlib.contextmanager
def serve_asgi(pg: PgCluster, db: str, server: str, max_age: str) -> Iterator[Run]:
    """``server`` on the PostgreSQL test project, stopped (SIGKILL at worst) at exit."""
    log_offset = log_unclean_ends(pg, db)
    with _start(server, pg_env(pg, db, max_age)) as process:
        # runcserver's startup check closed its connection before serving.
        wait_until(lambda: not pg.sessions(db), CLOSE_WITHIN + 1)
        yield Run(process, pg, db, log_offset)


def stop_and_count(run: Run) -> tuple[int, float]:
    """SIGTERM; (sessions opened since the first request, seconds until none is open)."""
    run.server.stop(timeout=10)
    seconds = run.wait_closed(timeout=SHUTDOWN_WITHIN)
    # Backends report their session when they exit: all have, so the counter is final.
    return run.pg.sessions_opened(run.db) - run.baseline, seconds


@pytest.mark.parametrize("view", list(VIEWS))
def test_asgi_mode_without_persistent_connections_leaves_no_session(
    pg: PgCluster, pg_db: str, view: str
) -> None:
    """CONN_MAX_AGE=0: each request's session is closed when its response is done."""
    with serve_asgi(pg, pg_db, SERVERS[0], "0") as run:
        assert run.startup_open == []
        pids = run.sequential(REQUESTS, VIEWS[view])
        assert len(set(pids)) == REQUESTS
        closed_in = run.wait_closed()
        code = run.server.stop(timeout=10)
        assert code == 0, run.server.output()[-2000:]
        assert run.unclean_ends() == []
        opened = pg.sessions_opened(pg_db) - run.baseline
    assert opened == REQUESTS
    figures(
        test="asgi_max_age_0",
        view=view,
        requests=REQUESTS,
        opened=opened,
        all_closed_in=f"{closed_in:.2f}s",
    )


@pytest.mark.parametrize("max_age", ["60", "None"])
@pytest.mark.parametrize("view", list(VIEWS))
def test_asgi_mode_opens_a_session_per_request_like_uvicorn(
    pg: PgCluster, pg_db: str, view: str, max_age: str
) -> None:
    """Persistent connections under ASGI: no request reuses a session (each ran in a thread
    of its own), in runcserver's asgi mode exactly as under uvicorn; the sessions of
    finished threads stay open until garbage collection closes them, and none outlives
    the server (runcserver closes them all)."""
    results = {}
    for server in SERVERS:
        pg.create_database(pg_db)  # a fresh database, fresh counters
        with serve_asgi(pg, pg_db, server, max_age) as run:
            pids = run.sequential(REQUESTS, VIEWS[view])
            # What the server still holds a second after the load (the table's "left open").
            time.sleep(1.0)
            left_open = run.open_pids()
            assert left_open <= set(pids)
            opened, closed_in = stop_and_count(run)
            unclean = len(run.unclean_ends())
        results[server] = (opened, len(set(pids)))
        if server == SERVERS[0]:
            # runcserver exits cleanly, and the sessions of finished threads end with it,
            # closed by the client (uvicorn's end as "unexpected EOF", see the figures).
            assert unclean == 0, run.server.output()[-2000:]
        figures(
            test="asgi_persistent",
            server=server,
            view=view,
            conn_max_age=max_age,
            requests=REQUESTS,
            opened=opened,
            distinct_backends=len(set(pids)),
            left_open_1s_after=len(left_open),
            all_closed_after_stop_in=f"{closed_in:.2f}s",
            ended_unclosed=unclean,
        )
    assert results[SERVERS[0]] == results[SERVERS[1]] == (REQUESTS, REQUESTS)
