"""Concurrency proven by overlap, against real servers on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import time

import pytest

from testkit.procs import alive, children
from testkit.serverproc import concurrent_gets, get, project_env, start_server, wait_until

SLOW_MS = 300


@pytest.mark.parametrize("mode", ["thread", "pool", "fork", "asgi"])
def test_eight_slow_requests_overlap(mode: str) -> None:
    with start_server(["--mode", mode, "--workers", "8"], env=project_env()) as server:
        elapsed, results = concurrent_gets(server.url(f"/inflight?ms={SLOW_MS}"), 8)
    assert all(status == 200 for status, _, _ in results)
    # Forking eight Django processes at once costs real time on two cores; overlap is
    # still unmistakable at half the serial time.
    limit = 2 if mode != "fork" else 4
    assert elapsed < limit * SLOW_MS / 1000, f"{mode}: 8 x {SLOW_MS} ms took {elapsed:.3f}s"
    workers = {json.loads(body)["worker"] for _, _, body in results}
    assert len(workers) == 8


def test_nothreading_serves_one_request_at_a_time() -> None:
    with start_server(["--nothreading"], env=project_env()) as server:
        elapsed, results = concurrent_gets(server.url(f"/inflight?ms={SLOW_MS}"), 8)
    assert all(status == 200 for status, _, _ in results)
    assert elapsed >= 8 * SLOW_MS / 1000
    assert max(json.loads(body)["max_inflight"] for _, _, body in results) == 1
    assert {json.loads(body)["worker"] for _, _, body in results} == {"single"}


def test_pool_never_runs_more_than_workers_at_once() -> None:
    with start_server(["--mode", "pool", "--workers", "3"], env=project_env()) as server:
        elapsed, results = concurrent_gets(server.url("/inflight?ms=200"), 12)
    bodies = [json.loads(body) for status, _, body in results if status == 200]
    # Every request is served (queued, not refused), at most three at a time.
    assert len(bodies) == 12
    assert max(body["max_inflight"] for body in bodies) == 3
    assert {body["worker"] for body in bodies} == {"pool-1", "pool-2", "pool-3"}
    assert elapsed >= 4 * 0.2


def test_fork_mode_caps_livechildren() -> None:
    with start_server(["--mode", "fork", "--workers", "3"], env=project_env()) as server:
        seen: list[int] = []
        import threading

        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen.append(len(children(server.proc.pid)))
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            elapsed, results = concurrent_gets(server.url("/inflight?ms=200"), 9)
        finally:
            done.set()
            watcher.join(5)
        assert all(status == 200 for status, _, _ in results)
        assert max(seen) <= 3
        assert max(seen) >= 2
        assert elapsed >= 3 * 0.2
        # Every child is reaped: no zombie stays behind.
        assert wait_until(lambda: not children(server.proc.pid), 5)
        assert len({json.loads(body)["pid"] for _, _, body in results}) == 9


def test_fork_child_never_outlives_a_killed_server() -> None:
    import socket
    import threading

    server = start_server(["--mode", "fork", "--workers", "4"], env=project_env())
    try:

        def hold() -> None:
            # The server is killed under this request: the client's error is expected.
            with contextlib.suppress(OSError):
                get(server.url("/inflight?ms=20000"), 30)

        for _ in range(3):
            threading.Thread(target=hold, daemon=True).start()
        assert wait_until(lambda: len(children(server.proc.pid)) == 3, 10)
        forked = children(server.proc.pid)
        port = server.port
        server.proc.kill()
        server.proc.wait(5)
        killed_at = time.monotonic()

        def gone() -> bool:
            return not any(alive(pid) for pid in forked)

        assert wait_until(gone, 1.0), "forked children outlived the server"

        def bindable() -> bool:
            probe = socket.socket()
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
                probe.listen()
                return True
            except OSError:
                return False
            finally:
                probe.close()

        assert wait_until(bindable, 1.0)
        assert time.monotonic() - killed_at < 1.5
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["thread", "pool", "fork", "asgi"])
def test_keep_alive_reuses_one_connection(mode: str) -> None:
    import http.client

    with start_server(["--mode", mode], env=project_env()) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            workers = set()
            for _ in range(5):
                conn.request("GET", "/inflight?ms=0")
                response = conn.getresponse()
                assert response.status == 200
                assert response.getheader("Connection") != "close"
                workers.add(json.loads(response.read())["pid"])
                sock = conn.sock
            # http.client reconnects silently when the server closes; the socket proves it did not.
            assert conn.sock is sock
        finally:
            conn.close()
        if mode == "fork":
            assert len(workers) == 1


def test_idle_keep_alive_connection_does_not_hold_a_pool_worker() -> None:
    import socket

    with start_server(["--mode", "pool", "--workers", "2"], env=project_env()) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(6)]
        try:
            status, _, _ = get(server.url("/hello"), timeout=5)
            assert status == 200
        finally:
            for sock in idle:
                sock.close()


def test_idle_keep_alive_connection_is_closed_after_timeout() -> None:
    import socket

    with start_server(
        ["--mode", "pool", "--keepalive-timeout", "0.5"], env=project_env()
    ) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
            start = time.monotonic()
            assert sock.recv(65536) == b""
            assert 0.3 < time.monotonic() - start < 3
        finally:
            sock.close()


def test_server_stays_up_when_workers_exceed_demand() -> None:
    # A sanity check that the pool answers from many workers under sequential load.
    with start_server(["--mode", "pool", "--workers", "4"], env=project_env()) as server:
        statuses = [get(server.url("/hello"))[0] for _ in range(20)]
    assert statuses == [200] * 20
    assert os.path.exists("/proc")
