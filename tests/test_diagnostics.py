"""Diagnostics (--diagnostics): headers, the status page and its counters, on real servers."""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from cserver.diagnostics import shared
from cserver.server.netcheck import is_loopback_address
from testkit.serverproc import (
    ServerProcess,
    concurrent_gets,
    get,
    project_env,
    start_server,
    wait_until,
)

DB_RE = re.compile(r"^(\w+) pid=(\d+|-) conn=(new|reused|idle|none)$")


def stats(server: ServerProcess) -> dict[str, Any]:
    status, headers, body = get(server.url("/__cserver__/stats"))
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def settled_stats(server: ServerProcess, requests: int) -> dict[str, Any]:
    """Stats once ``requests`` were counted: a request is counted after its response is sent."""
    assert wait_until(lambda: stats(server)["requests"] >= requests, timeout=10)
    return stats(server)


def db_entries(headers: dict[str, str]) -> list[tuple[str, str, str]]:
    """Parse X-Cserver-Db into (alias, pid, state) triples."""
    value = headers["X-Cserver-Db"]
    if value == "-":
        return []
    entries = []
    for part in value.split(", "):
        match = DB_RE.match(part)
        assert match, value
        entries.append(match.groups())
    return entries


def assert_arithmetic(data: dict[str, Any]) -> None:
    c = data["connections"]
    assert c["opened"] == c["closed"] + c["left_open"] + c["open"], c
    listed = sum(len(w["connections"]) for w in data["workers"])
    assert listed + len(data["unowned_connections"]) == c["open"]


@pytest.fixture
def sqlite_file(tmp_path: Path) -> str:
    return str(tmp_path / "diag.sqlite3")


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.168.1.5", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("2001:db8::1", False),
        ("0.0.0.0", False),
        ("", False),
        ("localhost", False),
    ],
)
def test_only_loopback_addresses_count_as_local(addr: str, expected: bool) -> None:
    assert is_loopback_address(addr) is expected


def test_shared_tables_add_up_across_forked_processes() -> None:
    store = shared.Store(cross_process=True)
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                for _ in range(2000):
                    with store.locked() as t:
                        t.counters.opened += 1
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert status == 0
    assert store.tables.counters.opened == 6000
    assert store.tables.counters.lock_timeouts == 0


def test_a_lock_held_for_good_stops_being_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "LOCK_TIMEOUT", 0.05)
    store = shared.Store(cross_process=True)
    assert store._lock.acquire(timeout=1)  # as if a child died holding it
    started = time.monotonic()
    for _ in range(20):
        with store.locked() as t:
            t.counters.requests += 1
    assert time.monotonic() - started < 1.0  # one timeout, not twenty
    assert store.tables.counters.lock_timeouts == 1
    assert store.tables.counters.requests == 20


def test_thread_mode_headers_and_connection_closed_at_request_end(sqlite_file: str) -> None:
    env = project_env({"TEST_SQLITE": sqlite_file, "DJANGO_CONN_MAX_AGE": "0"})
    with start_server(["--mode", "thread", "--diagnostics"], env=env) as server:
        _, results = concurrent_gets(server.url("/inflight?ms=300"), 3)
        workers = set()
        for status, headers, body in results:
            assert status == 200
            inside = json.loads(body)
            assert headers["X-Cserver-Worker"] == f"thread/{inside['worker']}"
            assert headers["X-Cserver-Pid"] == str(inside["pid"])
            assert headers["X-Cserver-Thread"] == inside["thread"]
            assert headers["X-Cserver-Db"] == "-"  # this view never touches the database
            workers.add(headers["X-Cserver-Worker"])
        assert len(workers) == 3

        # Two requests on one keep-alive socket: one thread, a new connection each time,
        # because CONN_MAX_AGE=0 closes it when the request finishes.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            seen = []
            for _ in range(2):
                conn.request("GET", "/db")
                response = conn.getresponse()
                response.read()
                seen.append(
                    (response.getheader("X-Cserver-Worker"), db_entries(dict(response.headers)))
                )
        finally:
            conn.close()
        assert seen[0][0] == seen[1][0]
        assert [entries[0][2] for _, entries in seen] == ["new", "new"]
        assert seen[0][1][0][1] != seen[1][1][0][1]  # a different connection each time

        assert wait_until(lambda: stats(server)["connections"]["closed"] == 2, timeout=5)
        data = settled_stats(server, 5)
        assert data["mode"] == "thread"
        assert data["connections"] == {
            "opened": 2,
            "reused": 0,
            "closed": 2,
            "left_open": 0,
            "open": 0,
        }
        assert data["requests"] == 5
        assert data["in_flight"] == 0
        assert_arithmetic(data)


def test_pool_mode_keeps_one_connection_per_worker(sqlite_file: str) -> None:
    env = project_env({"TEST_SQLITE": sqlite_file, "DJANGO_CONN_MAX_AGE": "None"})
    with start_server(["--mode", "pool", "--workers", "2", "--diagnostics"], env=env) as server:
        _, results = concurrent_gets(server.url("/inflight?ms=300"), 2)
        assert {h["X-Cserver-Worker"] for _, h, _ in results} == {"pool/pool-1", "pool/pool-2"}

        by_worker: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for _ in range(8):
            status, headers, _ = get(server.url("/db"))
            assert status == 200
            [(alias, pid, state)] = db_entries(headers)
            assert alias == "default"
            by_worker[headers["X-Cserver-Worker"]].append((pid, state))
        ids = set()
        for uses in by_worker.values():
            assert [state for _, state in uses] == ["new"] + ["reused"] * (len(uses) - 1)
            assert len({pid for pid, _ in uses}) == 1  # the same connection throughout
            ids.add(uses[0][0])
        assert len(ids) == len(by_worker)

        data = settled_stats(server, 10)
        opened = len(by_worker)
        assert opened <= 2
        assert data["connections"] == {
            "opened": opened,
            "reused": 8 - opened,
            "closed": 0,
            "left_open": 0,
            "open": opened,
        }
        assert data["requests"] == 10
        assert_arithmetic(data)
        rows = {f"pool/{w['name']}": w for w in data["workers"]}
        assert set(rows) == {"pool/pool-1", "pool/pool-2"}
        for name, uses in by_worker.items():
            [conn] = rows[name]["connections"]
            assert (conn["alias"], conn["vendor"]) == ("default", "sqlite")
            assert str(conn["id"]) == uses[0][0]
            assert conn["requests"] == len(uses)
            assert conn["age_s"] >= 0
        recent = data["recent"]
        assert len(recent) == 10
        assert [r["path"] for r in recent[:8]] == ["/db"] * 8
        assert {r["db"] for r in recent[:8]} <= {"default:new", "default:reused"}
        assert all(r["status"] == 200 and r["duration_ms"] >= 0 for r in recent)
        assert recent[0]["time"] >= recent[-1]["time"]  # newest first


def test_fork_mode_counts_across_children(sqlite_file: str) -> None:
    env = project_env({"TEST_SQLITE": sqlite_file, "DJANGO_CONN_MAX_AGE": "None"})
    args = ["--mode", "fork", "--workers", "3", "--diagnostics", "--delay", "--delay-max", "20"]
    with start_server(args, env=env) as server:
        _, results = concurrent_gets(server.url("/inflight?ms=300"), 3)
        pids = set()
        for status, headers, body in results:
            assert status == 200
            pid = headers["X-Cserver-Pid"]
            assert headers["X-Cserver-Worker"] == f"fork/fork-{pid}"
            assert json.loads(body)["pid"] == int(pid)
            pids.add(pid)
        assert len(pids) == 3

        ids = set()
        for _ in range(4):
            _, headers, _ = get(server.url("/db"))
            [(_, conn_id, state)] = db_entries(headers)
            assert state == "new"  # each connection's child opens its own
            ids.add(conn_id)
        assert len(ids) == 4  # ids stay unique across processes

        # A child closes its connections as it exits, after the client has its response.
        assert wait_until(lambda: stats(server)["connections"]["closed"] == 4, timeout=10)
        data = settled_stats(server, 7)
        assert data["shared_across_processes"] is True
        assert data["served_by"]["pid"] != data["pid"]
        assert data["connections"] == {
            "opened": 4,
            "reused": 0,
            "closed": 4,
            "left_open": 0,
            "open": 0,
        }
        assert data["requests"] == 7
        assert_arithmetic(data)
        workers = {r["worker"] for r in data["recent"]}
        assert len(workers) == 7  # every request was recorded by a different child
        assert all(r["delay_ms"] is not None and 0 <= r["delay_ms"] <= 20 for r in data["recent"])


def test_connections_a_worker_never_closed_are_left_open() -> None:
    # Django refuses to close an in-memory SQLite connection (that would drop the database),
    # so a thread that ends takes its connection with it: exactly what left_open reports.
    env = project_env({"DJANGO_CONN_MAX_AGE": "0"})
    with start_server(["--mode", "thread", "--diagnostics"], env=env) as server:
        status, _, _ = get(server.url("/db"))
        assert status == 200
        assert wait_until(lambda: stats(server)["connections"]["left_open"] == 1, timeout=10)
        data = stats(server)
        assert data["connections"]["closed"] == 0
        assert data["connections"]["open"] == 0
        assert_arithmetic(data)


def test_status_page_html_and_its_errors(sqlite_file: str) -> None:
    env = project_env({"TEST_SQLITE": sqlite_file, "DJANGO_CONN_MAX_AGE": "None"})
    with start_server(["--mode", "pool", "--workers", "2", "--diagnostics"], env=env) as server:
        get(server.url("/db"))
        # As a browser sends it: < and > are not URI characters (the server refuses them raw).
        get(server.url("/%3Cscript%3Ealert(1)%3C/script%3E"))
        settled_stats(server, 2)
        status, headers, body = get(server.url("/__cserver__/"))
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Cache-Control"] == "no-store"
        assert "X-Cserver-Worker" not in headers  # the page is not a request of the project
        html = body.decode()
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert 'id="workers"' in html and "pool-" in html
        assert "tests-only-not-secret" not in html  # SECRET_KEY
        assert '<meta http-equiv="refresh"' not in html
        _, _, refreshing = get(server.url("/__cserver__/?refresh=2"))
        assert b'<meta http-equiv="refresh" content="2">' in refreshing

        status, _, body = get(server.url("/__cserver__/nope"))
        assert status == 404 and b"/__cserver__/stats" in body
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("POST", "/__cserver__/stats", body=b"x")
            response = conn.getresponse()
            assert response.status == 405
            assert response.getheader("Allow") == "GET, HEAD"
            response.read()
            conn.request("HEAD", "/__cserver__/stats")
            response = conn.getresponse()
            assert response.status == 200
            assert int(response.getheader("Content-Length")) > 0
            assert response.read() == b""
        finally:
            conn.close()
        # None of the status requests is counted as a request of the project.
        data = stats(server)
        assert data["requests"] == 2
        # A request is recorded when its response is closed, after the client has read it:
        # in two pool workers the second may be recorded first.
        statuses = {r["path"]: r["status"] for r in data["recent"]}
        assert statuses == {"/<script>alert(1)</script>": 404, "/db": 200}
        out = server.output()
        assert "Not Found: /__cserver__" not in out  # Django never saw these paths


def test_off_by_default_no_headers_and_no_page() -> None:
    with start_server(["--mode", "thread"], env=project_env()) as server:
        status, headers, _ = get(server.url("/db"))
        assert status == 200
        assert not [name for name in headers if name.lower().startswith("x-cserver")]
        status, headers, _ = get(server.url("/__cserver__/stats"))
        assert status == 404  # Django's own 404: nothing answers there
        assert "X-Cserver-Worker" not in headers
        assert wait_until(lambda: "Not Found: /__cserver__/stats" in server.output(), timeout=5)


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["pool", "fork"])
def test_postgres_backend_pids_match_pg_stat_activity(pg: Any, pg_db: str, mode: str) -> None:
    env = project_env({"DATABASE_URL": pg.database_url(pg_db), "DJANGO_CONN_MAX_AGE": "None"})
    with start_server(["--mode", mode, "--workers", "2", "--diagnostics"], env=env) as server:
        header_pids = []
        for _ in range(6):
            status, headers, body = get(server.url("/db"))
            assert status == 200
            [(alias, pid, state)] = db_entries(headers)
            assert alias == "default"
            assert int(pid) == json.loads(body)["backend"]
            header_pids.append(int(pid))
            if mode == "pool":
                # The connection stays open with its worker: PostgreSQL still lists it.
                assert int(pid) in {s.pid for s in pg.sessions(pg_db)}
            else:
                assert state == "new"
        if mode == "pool":
            data = settled_stats(server, 6)
            assert data["connections"]["opened"] == len(set(header_pids)) <= 2
            assert {s.pid for s in pg.sessions(pg_db)} == set(header_pids)
            listed = {c["backend_pid"] for w in data["workers"] for c in w["connections"]}
            assert listed == set(header_pids)
        else:
            assert len(set(header_pids)) == 6
            assert wait_until(lambda: not pg.sessions(pg_db), timeout=10)
            data = settled_stats(server, 6)
            assert data["connections"]["closed"] == data["connections"]["opened"] == 6
        assert data["connections"]["left_open"] == 0
        assert_arithmetic(data)


@pytest.mark.parametrize(("allow_remote", "expected"), [(False, "403"), (True, "200")])
def test_status_page_for_a_remote_client_only_when_allowed(
    allow_remote: bool, expected: str
) -> None:
    from cserver.diagnostics.middleware import DiagnosticsApp
    from cserver.diagnostics.registry import Registry

    seen: list[str] = []
    app = DiagnosticsApp(
        lambda environ, start_response: [], Registry("pool", 2), {}, allow_remote=allow_remote
    )
    environ = {
        "PATH_INFO": "/__cserver__/stats",
        "REQUEST_METHOD": "GET",
        "REMOTE_ADDR": "203.0.113.7",
        "QUERY_STRING": "",
    }
    body = b"".join(app(environ, lambda status, headers, exc_info=None: seen.append(status)))
    assert seen[0].startswith(expected)
    if not allow_remote:
        assert b"203.0.113.7" in body
        assert b"CSERVER_DIAGNOSTICS_ALLOW_REMOTE" in body
