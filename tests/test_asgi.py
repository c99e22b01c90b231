"""--mode asgi: the demo's ASGI application served by uvicorn in a real runcserver process."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from cserver.delay import RandomDelay
from testkit.serverproc import (
    ROOT,
    ServerProcess,
    concurrent_gets,
    get,
    server_env,
    start_server,
    wait_until,
)
from tests.hostile.wire import read_until_closed

ASGI = ("--mode", "asgi")


def log_lines(server: ServerProcess, path: str) -> list[str]:
    return [line for line in server.lines if f'"GET {path} HTTP/1.1"' in line]


def test_serves_the_project_static_files_banner_and_log(tmp_path) -> None:
    with start_server(ASGI, env=server_env(tmp=tmp_path)) as server:
        status, headers, body = get(server.url("/hello"))
        assert (status, body) == (200, b"Hello, world!")
        assert headers["server"].startswith("cserver/")
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(b"HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = read_until_closed(sock, 5)
        # The length a GET would have, and no body.
        assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n"), head
        assert b"\r\ncontent-length: 13\r\n" in head.lower()
        status, _, body = get(server.url("/whoami"))
        assert status == 200
        who = json.loads(body)
        assert who["mode"] == "asgi"
        assert who["worker"].startswith("Task-")
        status, headers, css = get(server.url("/static/cserver_demo/demo.css"))
        assert status == 200 and css
        assert {k.lower(): v for k, v in headers.items()}["content-type"].startswith("text/css")
        assert get(server.url("/nowhere"))[0] == 404
        out = server.wait_for_output('"GET /nowhere HTTP/1.1" 404')
    assert "Starting ASGI development server at http://127.0.0.1:" in out
    assert re.search(r"cserver: mode=asgi workers=8 delay=off seed=-", out)
    # The other modes' request log, on django.server; uvicorn's access log stays off.
    assert re.search(r'\] "GET /hello HTTP/1\.1" 200 13\n', out), out
    assert '"GET /static/cserver_demo/demo.css HTTP/1.1" 200' in out
    assert "uvicorn" not in out.lower()


def test_delay_is_seeded_and_does_not_block_the_loop(tmp_path) -> None:
    args = (*ASGI, "--delay", "--delay-min", "0", "--delay-max", "600", "--seed", "42")
    with start_server(args, env=server_env(tmp=tmp_path)) as server:
        assert "delay=0-600ms seed=42" in server.wait_for_output("seed=")
        expected = RandomDelay(0, 600, 42)
        draws = [expected.draw_ms() for _ in range(3)]
        for _ in draws:
            assert get(server.url("/hello"))[0] == 200
        server.wait_for_output("delay=", 5)
        assert wait_until(lambda: len(log_lines(server, "/hello")) == 3, 5)
        logged = [
            int(re.findall(r"delay=(\d+)ms", line)[0]) for line in log_lines(server, "/hello")
        ]
        assert logged == draws
    fixed = (*ASGI, "--delay", "--delay-min", "700", "--delay-max", "700", "--seed", "1")
    with start_server(fixed, env=server_env(tmp=tmp_path)) as server:
        elapsed, results = concurrent_gets(server.url("/hello"), 2)
        assert [r[0] for r in results] == [200, 200]
        # Awaited, not slept: two delayed requests overlap (about 0.7 s, not 1.4 s).
        assert 0.65 < elapsed < 1.25, elapsed


def migrated_env(tmp_path) -> dict[str, str]:
    """The demo's environment with its SQLite database migrated."""
    env = server_env(tmp=tmp_path)
    subprocess.run(
        [sys.executable, "-m", "cserver", "migrate", "--verbosity", "0"],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return env


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body, read whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def test_diagnostics_headers_and_status_page(tmp_path) -> None:
    with start_server((*ASGI, "--diagnostics"), env=migrated_env(tmp_path)) as server:
        status, headers, _ = get(server.url("/db"))
        assert status == 200
        assert re.fullmatch(r"asgi/Task-\d+", headers["x-cserver-worker"])
        # A synchronous view runs in a thread of its own request, not the event loop's.
        assert headers["x-cserver-thread"] != "MainThread"
        assert re.fullmatch(r"default pid=\d+ conn=(new|reused)", headers["x-cserver-db"])
        status, _, body = get(server.url("/__cserver__/stats"))
        assert status == 200
        stats = json.loads(body)
        assert stats["mode"] == "asgi"
        assert stats["requests"] >= 1
        assert stats["recent"][0]["path"] == "/db"
        assert any(w["name"] == "event-loop" for w in stats["workers"])
        status, _, page = get(server.url("/__cserver__/"))
        assert status == 200 and b"ASGI mode" in page


def test_sigterm_drains_a_request_in_flight_then_exits_0(tmp_path) -> None:
    with start_server((*ASGI, "--grace-period", "5"), env=server_env(tmp=tmp_path)) as server:
        idle = socket.create_connection((server.host, server.port), timeout=5)
        idle.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle).startswith(b"HTTP/1.1 200")
        result: list = []
        worker = threading.Thread(target=lambda: result.append(get(server.url("/slow?ms=1500"))))
        worker.start()
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        # The idle keep-alive connection closes at once, not after the request in flight.
        idle.settimeout(1.0)
        assert idle.recv(1) == b""
        idle.close()
        worker.join(10)
        assert result and result[0][0] == 200
        assert server.wait(10) == 0


def test_sse_events_arrive_before_the_stream_ends(tmp_path) -> None:
    for mode in ("asgi", "thread"):
        with start_server(("--mode", mode), env=server_env(tmp=tmp_path)) as server:
            with socket.create_connection((server.host, server.port), timeout=5) as sock:
                sock.sendall(b"GET /events?count=3&interval_ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.settimeout(1.0)  # the stream lasts 3 s: the first event comes at once
                data = b""
                while not re.search(rb"data: [^\n]*\n\n", data):
                    chunk = sock.recv(65536)
                    assert chunk, data
                    data += chunk
            assert b"text/event-stream" in data, (mode, data)
            assert b"id: 1\nevent: tick\ndata: " in data, (mode, data)
            assert b"id: 2" not in data, (mode, data)
            # Django warns when it must buffer an iterator of the wrong kind.
            assert "must consume" not in server.output(), (mode, server.output())


def test_body_and_header_limits_and_connection_limit(tmp_path) -> None:
    args = (*ASGI, "--max-body-bytes", "10", "--header-timeout", "0.5", "--connection-limit", "2")
    with start_server(args, env=server_env(tmp=tmp_path)) as server:
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(
                b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
            )
            assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHo")
            started = time.monotonic()
            assert sock.recv(65536).startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - started < 3
        first = socket.create_connection((server.host, server.port), timeout=5)
        second = socket.create_connection((server.host, server.port), timeout=5)
        third = socket.create_connection((server.host, server.port), timeout=5)
        try:
            for sock in (first, second):
                sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(sock).startswith(b"HTTP/1.1 200 ")
            third.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(third).startswith(b"HTTP/1.1 503 ")
            # The connections admitted first go on being served.
            first.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(first).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in (first, second, third):
                sock.close()
        out = server.wait_for_output('"-" 408')
        assert '"POST /hello HTTP/1.1" 413' in out


def test_without_uvicorn_one_line_error_and_nonzero_exit(tmp_path) -> None:
    # None in sys.modules makes `import uvicorn` raise ImportError, as if it were absent.
    code = (
        "import sys; sys.modules['uvicorn'] = None; sys.argv = ['cserver', 'runcserver', "
        "'127.0.0.1:0', '--noreload', '--mode', 'asgi']; from cserver.cli import main; "
        "raise SystemExit(main())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=server_env(tmp=tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert 'pip install "cserver[asgi]"' in lines[0]


@pytest.mark.parametrize("setting", ["env", "flag"])
def test_mode_from_environment_or_flag(tmp_path, setting: str) -> None:
    env = server_env({"CSERVER_MODE": "asgi"} if setting == "env" else {}, tmp=tmp_path)
    args = () if setting == "env" else ASGI
    with start_server(args, env=env) as server:
        assert "cserver: mode=asgi" in server.wait_for_output("cserver: mode=")
        assert get(server.url("/hello"))[0] == 200


def test_grace_period_bounds_the_wait_for_a_stuck_request(tmp_path) -> None:
    args = (*ASGI, "--grace-period", "0.5")
    with start_server(args, env=server_env(tmp=tmp_path)) as server:

        def stuck() -> None:
            with contextlib.suppress(OSError):  # cut at the end of the grace period
                get(server.url("/slow?ms=10000"), timeout=15)

        threading.Thread(target=stuck, daemon=True).start()
        time.sleep(0.5)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
        assert time.monotonic() - started < 3
