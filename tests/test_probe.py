"""`cserver probe` against real servers (runcserver, runserver, a tiny local one) and bench."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cserver.probe import ProbeOptions, run_probe
from testkit.serverproc import ROOT, ServerProcess, server_env, start_server

PROBE = [sys.executable, "-m", "cserver", "probe"]


def probe_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """Run `python -m cserver probe ARGS`; the CompletedProcess."""
    return subprocess.run(
        [*PROBE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env or server_env(),
        check=False,
    )


def probe_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the probe with --json and return the parsed report (exit status must be 0)."""
    proc = probe_cli(*args, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_sane(report: dict[str, Any], requests: int) -> None:
    """Every request answered, no errors, latency percentiles in order."""
    assert report["requests"] == requests
    assert report["errors"] == 0, report["error_kinds"]
    lat = report["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert report["requests_per_s"] > 0


# -- a tiny local server: exposes what runcserver's diagnostics would, under our control --


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real servers
    opened = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        if self.path == "/__cserver__/stats":
            with self.lock:
                body = json.dumps({"connections": {"opened": _Handler.opened, "left_open": 3}})
            return self._send(200, body.encode(), "application/json")
        if self.path.startswith("/sleep"):
            time.sleep(0.2)
        if self.path == "/fail":
            return self._send(500, b"boom", "text/plain")
        with self.lock:
            _Handler.opened += 1  # the "server" opens one DB session per request
        worker = f"thread/{threading.current_thread().name}"
        self._send(200, b"ok", "text/plain", {"X-Cserver-Worker": worker})

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tiny() -> Iterator[str]:
    """Base URL of a threaded local HTTP server, shut down after the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pool_server() -> Iterator[ServerProcess]:
    """runcserver in pool mode with 4 workers (SQLite demo, nothing migrated: not needed)."""
    with start_server(["--mode", "pool", "--workers", "4"]) as server:
        yield server


# -- against runcserver ------------------------------------------------------------------


@pytest.mark.parametrize("sockets", ["--new-socket", "--keepalive"])
def test_probe_runcserver_json(pool_server: ServerProcess, sockets: str) -> None:
    report = probe_json(pool_server.url("/whoami"), "-n", "20", "-c", "4", sockets)
    assert_sane(report, 20)
    assert report["keepalive"] is (sockets == "--keepalive")
    assert 1 <= report["workers_seen"] <= 4  # pool of 4: never more distinct workers
    assert report["workers_source"] in ("header", "json")


def test_probe_reads_runcserver_diagnostics() -> None:
    # No PostgreSQL: the counters come from /__cserver__/stats, workers from the header.
    with start_server(
        ["--mode", "pool", "--workers", "2"], env=server_env({"CSERVER_DIAGNOSTICS": "1"})
    ) as server:
        report = probe_json(server.url("/whoami"), "-n", "10", "-c", "2", "--settle", "0.2")
    assert_sane(report, 10)
    assert report["workers_source"] == "header"
    assert 1 <= report["workers_seen"] <= 2
    assert report["db_source"] == "diagnostics"
    # CONN_MAX_AGE=0 (the demo's default): Django opens and closes one per request.
    assert report["db_sessions_opened"] == 10
    assert report["db_left_open"] == 0


def test_probe_table_and_progress_bar_on_a_terminal(pool_server: ServerProcess) -> None:
    # stdout is a pseudo-terminal, so the probe draws its progress bar on stderr.
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*PROBE, pool_server.url("/whoami"), "-n", "20", "-c", "2"],
            stdout=slave,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=server_env(),
        )
        os.close(slave)
        slave = -1
        out = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
        assert proc.wait(10) == 0
        err = proc.stderr.read().decode() if proc.stderr else ""
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    table = out.decode().replace("\r\n", "\n")
    assert table.startswith("metric")
    rows = dict(line.split(None, 1) for line in table.splitlines()[2:] if line.strip())
    assert rows["requests"].strip() == "20"
    assert rows["errors"].strip() == "0"
    assert "20/20" in err and "[" in err


# -- against a tiny local server -----------------------------------------------------------


def test_probe_counts_errors_per_kind(tiny: str) -> None:
    report = run_probe(ProbeOptions(url=f"{tiny}/fail", requests=12, concurrency=3, settle=0))
    assert report["requests"] == 12
    assert report["errors"] == 12
    assert report["error_kinds"] == {"http 500": 12}
    assert report["requests_per_s"] == 0


def test_probe_reads_server_diagnostics_when_no_postgres(tiny: str) -> None:
    opts = ProbeOptions(url=f"{tiny}/hello", requests=15, concurrency=3, settle=0)
    report = run_probe(opts)
    assert_sane(report, 15)
    assert report["db_source"] == "diagnostics"
    assert report["db_sessions_opened"] == 15
    assert report["db_left_open"] == 3
    assert report["workers_source"] == "header"


def test_probe_duration_limit_stops_early(tiny: str) -> None:
    opts = ProbeOptions(
        url=f"{tiny}/sleep", requests=1000, concurrency=2, duration_limit=0.5, settle=0
    )
    started = time.monotonic()
    report = run_probe(opts)
    assert time.monotonic() - started < 10
    assert report["stopped_early"] is True
    assert 0 < report["requests"] < 1000


def test_probe_masks_database_password(tiny: str) -> None:
    db_url = f"postgresql://app:hunter2secret@127.0.0.1:{closed_port()}/app"
    proc = probe_cli(f"{tiny}/hello", "-n", "3", "--settle", "0", "--database-url", db_url)
    assert proc.returncode == 0, proc.stderr
    assert "hunter2secret" not in proc.stdout + proc.stderr
    assert "PostgreSQL not reachable" not in proc.stdout  # the diagnostics fallback answered
    report = probe_json(f"{tiny}/hello", "-n", "3", "--settle", "0", "--database-url", db_url)
    assert report["database_url"] == db_url.replace("hunter2secret", "***")
    assert report["db_source"] == "diagnostics"
    assert report["db_note"].startswith("PostgreSQL not reachable")


def test_probe_unreachable_server_is_one_line_exit_1() -> None:
    url = f"http://127.0.0.1:{closed_port()}/whoami"
    proc = probe_cli(url, "-n", "5")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"cannot connect to {url}: Connection refused"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-c", "0"], "-c 0"),
        (["-n", "many"], "-n many"),
        (["--timeout", "-1"], "--timeout -1"),
        (["--bogus"], "--bogus"),
        (["ftp://example.org/"], "ftp://example.org/"),
    ],
)
def test_probe_bad_arguments_one_line_exit_2(args: list[str], named: str) -> None:
    proc = probe_cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert named in lines[0]
    assert "expected" in lines[0] or "accepted" in lines[0]
    assert proc.stdout == ""


# -- PostgreSQL: sessions opened and left open, runserver next to runcserver -------------


@pytest.mark.postgres
def test_probe_reads_postgres_sessions(pg: Any, pg_db: str) -> None:
    db_url = pg.database_url(pg_db)
    env = server_env({"DATABASE_URL": db_url, "DJANGO_CONN_MAX_AGE": "None"})
    # Plain runserver: a new thread, hence a new connection, for every request.
    with start_server([], env=env, command="runserver") as server:
        report = probe_json(
            server.url("/whoami"),
            "-n",
            "12",
            "-c",
            "1",
            "--settle",
            "0.2",
            "--database-url",
            db_url,
            env=env,
        )
        assert_sane(report, 12)
        assert report["db_source"] == "postgresql"
        assert report["db_pids_seen"] == 12
        assert report["db_sessions_opened"] == 12
        assert 0 <= report["db_left_open"] <= 12
    pg.wait_for(lambda: not pg.sessions(pg_db), timeout=10)
    # runcserver's pool keeps one connection per worker thread.
    with start_server(["--mode", "pool", "--workers", "2"], env=env) as server:
        report = probe_json(
            server.url("/whoami"),
            "-n",
            "12",
            "-c",
            "2",
            "--settle",
            "0.2",
            "--database-url",
            db_url,
            env=env,
        )
        assert_sane(report, 12)
        assert 1 <= report["db_sessions_opened"] <= 2
        assert report["db_sessions_opened"] == report["db_pids_seen"]
        assert report["db_left_open"] == len(pg.sessions(pg_db))


# -- the benchmark script must keep working (no throughput assertions) --------------------


def _run_bench(script: str, tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """``script --quick --out FILE args``: (its report on stdout, the JSON it wrote)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, script, "--quick", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=server_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def _bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    stdout, results = _run_bench("bench/run.py", tmp_path, *args)
    assert "Targets:" in stdout
    return results


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_bench_quick_http(tmp_path: Path) -> None:
    results = _bench(tmp_path, "--only", "waitress,pool,a")
    runs = results["http"]["a"]
    assert set(runs) == {"waitress", "pool"}
    assert all(r[0]["requests"] > 0 for r in runs.values())
    assert results["summary"]["http"]["a"]["pool"]["vs_waitress"] is not None


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_bench_quick_transfer(tmp_path: Path) -> None:
    results = _bench(tmp_path, "--only", "runserver,pool,e,f")
    for key in ("e", "f"):
        runs = results["transfer"][key]
        assert set(runs) == {"runserver", "pool"}
        assert all(len(times) == 1 and times[0] > 0 for times in runs.values())
    assert results["summary"]["transfer"]["f"]["pool"]["vs_runserver"] is not None
    assert not results["failures"]


@pytest.mark.postgres
def test_bench_quick_db(pg: Any, tmp_path: Path) -> None:
    results = _bench(tmp_path, "--only", "pool,d", "--pg-url", pg.database_url("postgres"))
    run = results["db"]["pool"][0]
    assert run["requests"] == 20 and run["errors"] == 0
    assert run["sessions_opened"] is not None and run["left_open"] is not None


@pytest.mark.postgres
def test_bench_asgi_connections_quick(pg: Any, tmp_path: Path) -> None:
    args = ["--only", "asgi", "--requests", "5", "--pg-url", pg.database_url("postgres")]
    stdout, results = _run_bench("bench/asgi_connections.py", tmp_path, *args)
    assert "| runcserver --mode asgi | async `/db/async` | 5 / 0 |" in stdout
    runs = results["runs"]["asgi"]
    for view in ("sync", "async"):
        # Under ASGI no request reuses a session, whatever CONN_MAX_AGE says.
        assert [runs[view][age][0]["sessions_opened"] for age in ("0", "60", "None")] == [5] * 3
        assert runs[view]["0"][0]["left_open"] == 0
