"""Killed backends, Django's psycopg pool and the fork-mode parent, in a real PostgreSQL.

Helpers and conventions come from tests.test_connections_pg.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from testkit.pgcluster import PgCluster
from testkit.serverproc import concurrent_gets, get, wait_until
from tests.test_connections_pg import (
    CLOSE_WITHIN,
    MODES,
    REQUESTS,
    SHUTDOWN_WITHIN,
    WORKERS,
    KeepAlive,
    Run,
    figures,
    serve,
)

pytestmark = pytest.mark.postgres


def hold_every_worker(run: Run) -> set[int]:
    """Pool mode: make all workers open a connection at once; their backend pids."""
    _elapsed, results = concurrent_gets(run.server.url("/db/hold?ms=500"), WORKERS)
    assert all(status == 200 for status, _h, _b in results)
    pids = {json.loads(body)["backend"] for _s, _h, body in results}
    assert len(pids) == WORKERS
    return pids


def terminate_all(run: Run) -> set[int]:
    """pg_terminate_backend() every session the server holds; wait until they are gone."""
    killed = run.open_pids()
    assert killed
    for pid in killed:
        run.pg.terminate(pid)
    run.pg.wait_for(lambda: not (run.open_pids() & killed), timeout=5)
    return killed


@pytest.mark.parametrize("health_checks", [True, False], ids=["checks", "no-checks"])
@pytest.mark.parametrize("mode", MODES)
def test_killed_backend_with_and_without_health_checks(
    pg: PgCluster, pg_db: str, mode: str, health_checks: bool
) -> None:
    """CONN_HEALTH_CHECKS=True replaces a terminated backend without a failed request;
    without it, Django's documented behaviour: the request that meets it fails, once."""
    env = {"DJANGO_CONN_HEALTH_CHECKS": "1"} if health_checks else {}
    with serve(pg, pg_db, mode, "None", **env) as run, KeepAlive(run.server) as client:
        assert run.startup_open == []
        # Thread and fork mode: the keep-alive connection stays with one thread or child,
        # and so with one database session. Pool mode: every worker holds a session.
        if mode == "pool":
            held = hold_every_worker(run)
        else:
            status, pid = client.get()
            assert status == 200
            held = {pid}
        assert run.open_pids() == held
        killed = terminate_all(run)
        statuses = []
        new_pids = set()
        for _ in range(REQUESTS if mode == "pool" else 3):
            status, pid = client.get()
            statuses.append(status)
            if pid is not None:
                new_pids.add(pid)
        if health_checks:
            assert statuses == [200] * len(statuses)
        else:
            # The first request meets a dead session and fails; Django then drops it, so
            # each killed session fails exactly one request at most.
            assert statuses[0] == 500
            assert set(statuses) == {200, 500}
            assert statuses.count(500) <= len(killed)
            if mode != "pool":
                assert statuses == [500, 200, 200]
        assert new_pids
        assert not (new_pids & killed)
        _shutdown_in, opened = run.shutdown()
    figures(
        test="terminate",
        mode=mode,
        health_checks=health_checks,
        killed=len(killed),
        statuses="".join("." if s == 200 else "F" for s in statuses),
        new_backends=len(new_pids),
        opened=opened,
    )


@pytest.mark.parametrize("mode", MODES)
def test_psycopg_pool(pg: PgCluster, pg_db: str, mode: str) -> None:
    """OPTIONS={"pool": True}: one pool per process, reused across requests, closed at the
    end of the process (at shutdown, or when a fork-mode child exits)."""
    env = {"DJANGO_DB_POOL": "1", "DJANGO_CONN_HEALTH_CHECKS": "1"}
    with serve(pg, pg_db, mode, "0", **env) as run:
        assert run.startup_open == []
        pids = run.sequential()
        if mode == "fork":
            # Every child has a pool of its own, closed before the child exits, and opens
            # one session, not psycopg_pool's default four (cserver.dbconn.size_child_pools).
            assert len(set(pids)) == REQUESTS
            run.wait_closed(timeout=CLOSE_WITHIN + 1)
            assert pg.sessions_opened(pg_db) - run.baseline == REQUESTS
            open_after = 0
        else:
            # psycopg_pool's default size is 4: the whole process shares those sessions.
            assert len(set(pids)) <= 4
            open_after = len(run.open_pids())
            assert set(pids) <= run.open_pids()
        with KeepAlive(run.server) as client:
            before_kill = [client.get() for _ in range(3)]
            assert [s for s, _ in before_kill] == [200] * 3
            if mode == "fork":
                # This child's own pool holds the one connection it needs, reused.
                assert len({p for _, p in before_kill}) == 1
            # Pooled connections survive a killed backend: the pool checks them on checkout.
            killed = terminate_all(run)
            statuses = [client.get() for _ in range(5)]
            assert [s for s, _ in statuses] == [200] * 5
            after_kill = {p for _, p in statuses}
            assert not (after_kill & killed)
            # Replacements come from the pool (at most its size), not one per request.
            assert len(after_kill) <= 4
        shutdown_in, opened = run.shutdown()
    figures(
        test="psycopg_pool",
        mode=mode,
        requests=REQUESTS,
        distinct_backends=len(set(pids)),
        open_between_requests=open_after,
        opened=opened,
        zero_after_shutdown_in=f"{shutdown_in:.2f}s",
    )


@pytest.mark.parametrize("db_pool", [False, True], ids=["plain", "psycopg-pool"])
def test_fork_child_never_uses_the_parents_connection(
    pg: PgCluster, pg_db: str, db_pool: bool
) -> None:
    """A project that queries at startup leaves the server process holding sessions when it
    forks: children must neither use them nor end them, and shutdown closes them."""
    env = {"TEST_STARTUP_QUERY": "1"}
    if db_pool:
        env["DJANGO_DB_POOL"] = "1"
    with serve(pg, pg_db, "fork", "0" if db_pool else "None", **env) as run:
        # The pool fills to its minimum size (4) in the background.
        expected = 4 if db_pool else 1

        def parent_sessions() -> set[int] | None:
            pids = run.open_pids()
            return pids if len(pids) == expected else None

        parent = pg.wait_for(parent_sessions)
        time.sleep(0.3)
        assert run.open_pids() == parent
        pids = run.sequential(20)
        assert not (set(pids) & parent)
        assert len(set(pids)) == 20
        # The children's sessions are gone and the parent's are untouched.
        run.wait_closed(keep=parent, timeout=CLOSE_WITHIN + 1)
        assert run.open_pids() == parent
        shutdown_in, _opened = run.shutdown()
    figures(
        test="fork_parent",
        db_pool=db_pool,
        parent_sessions=len(parent),
        child_backends=len(set(pids)),
        parent_closed_at_shutdown_in=f"{shutdown_in:.2f}s",
    )


@pytest.mark.parametrize("mode", MODES)
def test_reload_closes_the_old_generations_sessions(pg: PgCluster, pg_db: str, mode: str) -> None:
    """A reload (here SIGHUP; a code change does the same) ends a generation with os._exit:
    only the lifecycle hooks close its sessions, so none may be left to die with it."""
    with serve(pg, pg_db, mode, "None", reload=True) as run, KeepAlive(run.server) as client:
        assert run.startup_open == []
        assert wait_until(lambda: "Watching for file changes" in run.server.output(), 20)
        # A session held by an idle keep-alive client (thread, child or pool worker) and,
        # in pool mode, one per worker.
        status, _pid = client.get()
        assert status == 200
        if mode == "pool":
            hold_every_worker(run)
        held = run.open_pids()
        assert held
        run.server.signal(signal.SIGHUP)
        pg.wait_for(lambda: not (run.open_pids() & held), timeout=SHUTDOWN_WITHIN + 10)
        assert run.unclean_ends() == []
        # The next generation serves, with sessions of its own.
        status, _headers, body = get(run.server.url("/db"), timeout=20)
        assert status == 200
        assert json.loads(body)["backend"] not in held
        run.shutdown()
    figures(test="reload", mode=mode, held_before_reload=len(held), unclean_ends=0)
