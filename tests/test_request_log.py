"""The request log on a real server: every line arrives, in order, in runserver's shape,
none is lost at shutdown, and a user's LOGGING config for django.server still gets them."""

from __future__ import annotations

import http.client
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from testkit.serverproc import ServerProcess, project_env, server_env, start_server

# runserver's line with Django's ServerFormatter: [06/Dec/2026 21:40:00] "GET ... HTTP/1.1" 200 5
RUNSERVER_LINE = re.compile(
    r'^\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\] "GET (\S+) HTTP/1\.1" (\d{3}) (\d+)$'
)


def _requests_on_one_connection(server: ServerProcess, paths: list[str]) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        for path in paths:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.status in (200, 404)
    finally:
        conn.close()


def _stop_at_once(server: ServerProcess) -> None:
    # SIGTERM right after the last response: lines still queued must be written on the way out.
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0
    server.stop()


@pytest.mark.parametrize("mode", ["pool", "thread", "fork"])
def test_every_line_in_order_and_none_lost_at_shutdown(mode: str, tmp_path: Path) -> None:
    sequences = [[f"/hello?c={c}&n={n}" for n in range(60)] for c in range(6)]
    # The demo settings: runserver's own formatter (django.utils.log.ServerFormatter).
    server = start_server(["--mode", mode, "--workers", "4"], env=server_env(tmp=tmp_path))
    try:
        with ThreadPoolExecutor(len(sequences)) as pool:
            list(pool.map(lambda paths: _requests_on_one_connection(server, paths), sequences))
        _requests_on_one_connection(server, ["/missing"])
    finally:
        _stop_at_once(server)
    logged = []
    for line in server.output().splitlines():
        match = RUNSERVER_LINE.match(line)
        if match:
            logged.append(match.groups())
    assert logged[-1] == ("/missing", "404", logged[-1][2])
    for paths in sequences:
        # Each connection's requests were sequential: their lines keep that order.
        mine = [entry for entry in logged if entry[0] in set(paths)]
        assert mine == [(path, "200", "13") for path in paths]
    assert len(logged) == sum(map(len, sequences)) + 1


def test_users_logging_config_receives_the_lines(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.log"
    env = project_env(
        {
            "DJANGO_SETTINGS_MODULE": "tests.project.filelog_settings",
            "TEST_REQUEST_LOG": str(log_file),
        }
    )
    paths = [f"/hello?n={n}" for n in range(40)]
    server = start_server(["--mode", "pool", "--workers", "2"], env=env)
    try:
        _requests_on_one_connection(server, [*paths, "/missing"])
    finally:
        _stop_at_once(server)
    lines = log_file.read_text().splitlines()
    assert len(lines) == len(paths) + 1
    for line, path in zip(lines, [*paths, "/missing"], strict=True):
        level, thread, filter_thread, message = line.split("|")
        assert message.startswith(f'"GET {path} HTTP/1.1" ')
        assert level == ("WARNING" if path == "/missing" else "INFO")
        # The record and the logger's filters belong to the request's thread, not the writer.
        assert thread == filter_thread
        assert "request-log" not in thread
    # Nothing went to the console: the user's handler replaced runserver's.
    assert not [line for line in server.output().splitlines() if '"GET /hello' in line]
