"""Tests for the throwaway PostgreSQL cluster used by the rest of the suite."""

from __future__ import annotations

import contextlib
import os

import psycopg
import pytest

from testkit.pgcluster import PgCluster, wait_for

pytestmark = pytest.mark.postgres


def test_cluster_listens_on_loopback_and_has_settings(pg: PgCluster, pg_db: str) -> None:
    with psycopg.connect(pg.dsn(pg_db)) as conn:
        addr, port, max_conn, fsync, is_super = conn.execute(
            "SELECT host(inet_server_addr()), inet_server_port(),"
            " current_setting('max_connections'), current_setting('fsync'),"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()
    assert addr == "127.0.0.1"
    assert port == pg.port
    assert max_conn == "200"
    assert fsync == "off"
    assert is_super is True
    assert pg.database_url(pg_db) == f"postgres://postgres@127.0.0.1:{pg.port}/{pg_db}"


def test_sessions_follow_open_and_closed_connections(pg: PgCluster, pg_db: str) -> None:
    assert pg.sessions(pg_db) == []
    conns = [psycopg.connect(pg.dsn(pg_db), application_name=f"probe-{i}") for i in range(3)]
    try:
        rows = pg.sessions(pg_db)
        assert sorted(r.application_name for r in rows) == ["probe-0", "probe-1", "probe-2"]
        assert {r.pid for r in rows} == {c.info.backend_pid for c in conns}
        conns[0].close()
        # The backend exits shortly after the client closes the socket.
        wait_for(lambda: len(pg.sessions(pg_db)) == 2, timeout=10)
    finally:
        for c in conns:
            c.close()
    wait_for(lambda: pg.sessions(pg_db) == [], timeout=10)


def test_sessions_excludes_other_databases(pg: PgCluster, pg_db: str) -> None:
    other = pg.create_database(f"{pg_db[:55]}_other")
    try:
        with psycopg.connect(pg.dsn(other), application_name="elsewhere"):
            assert pg.sessions(pg_db) == []
            assert [r.application_name for r in pg.sessions(other)] == ["elsewhere"]
    finally:
        pg.drop_database(other)


def test_sessions_opened_counts_every_connection(pg: PgCluster, pg_db: str) -> None:
    before = pg.sessions_opened(pg_db)
    for _ in range(4):
        with psycopg.connect(pg.dsn(pg_db)) as conn:
            conn.execute("SELECT 1")
    # Backends flush the counter when they exit, asynchronously to our close().
    assert wait_for(lambda: pg.sessions_opened(pg_db) - before == 4, timeout=10)
    # A persistent connection reused for many queries counts once.
    with psycopg.connect(pg.dsn(pg_db), autocommit=True) as conn:
        for _ in range(5):
            conn.execute("SELECT 1")
    wait_for(lambda: pg.sessions_opened(pg_db) - before == 5, timeout=10)


def test_terminate_disconnects_the_client(pg: PgCluster, pg_db: str) -> None:
    conn = psycopg.connect(pg.dsn(pg_db), autocommit=True)
    try:
        pid = conn.info.backend_pid
        assert pg.terminate(pid) is True
        wait_for(lambda: all(r.pid != pid for r in pg.sessions(pg_db)), timeout=10)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()


def test_stop_removes_directory_and_frees_port() -> None:
    # A second, private cluster: stop() must leave nothing running or on disk.
    try:
        cluster = PgCluster().start()
    except Exception as exc:
        if os.environ.get("CSERVER_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL not available: {exc}")
    base, dsn = cluster.base, cluster.dsn()
    try:
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        cluster.stop()
    assert base is not None and not base.exists()
    with (
        pytest.raises(psycopg.OperationalError),
        contextlib.closing(psycopg.connect(dsn.replace("connect_timeout=10", "connect_timeout=2"))),
    ):
        pass
    cluster.stop()  # idempotent
