"""`cserver dev`: runcserver and the side processes together, with real processes throughout.

A team project (tests/teamproj.py) with a real redis-server: a view enqueues a task, the
detected Celery worker runs it, the view reads the result; an edit of the task body is the code
that runs next; `kill -9` of cserver dev leaves none of its processes. A side process that keeps
crashing is reported and restarted with back-off while web answers; SIGTERM stops everything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.cli import run_cserver
from testkit.ports import free_port
from testkit.procs import session_members
from testkit.serverproc import ROOT, ServerProcess, get, server_env, wait_until
from tests.teamproj import set_task_value, write_teamproj

STARTED = re.compile(r"^cserver \| (\S+) started \(pid (\d+)\)", re.M)
START_TIMEOUT = 60


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server of the test's own, on a free port, without persistence."""
    server = shutil.which("redis-server")
    if server is None:
        reason = "redis-server is not installed (Debian package redis-server)"
        if os.environ.get("CSERVER_REQUIRE_REDIS", "") == "1":
            pytest.fail(f"{reason} (CSERVER_REQUIRE_REDIS=1)", pytrace=False)
        pytest.skip(reason)
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import socket

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        assert wait_until(answers, 15), "redis-server did not answer PING within 15 s"
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(10)


def pids_started(server: ServerProcess) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for name, pid in STARTED.findall(server.output()):
        found.setdefault(name, []).append(int(pid))
    return found


def start_dev(args: list[str], env: dict[str, str], cwd: Path) -> ServerProcess:
    argv = [sys.executable, "-m", "cserver", "dev", "127.0.0.1:0", "--noreload", *args]
    server = ServerProcess(argv, env, cwd)
    server.wait_bound(START_TIMEOUT)
    return server


def get_json(server: ServerProcess, path: str) -> dict:
    status, _headers, body = get(server.url(path), timeout=10)
    assert status == 200, (path, status, body[:300], server.output()[-3000:])
    return json.loads(body)


def test_a_task_runs_end_to_end_and_kill_9_leaves_nothing(tmp_path: Path, redis_url: str) -> None:
    root = write_teamproj(tmp_path)
    env = server_env({"DJANGO_SETTINGS_MODULE": "teamproj.settings", "REDIS_URL": redis_url})
    env["TEAMPROJ_SQLITE"] = str(tmp_path / "team.sqlite3")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=root,
        env=env,
        check=True,
        timeout=120,
    )
    server = start_dev(["--without", "beat,assets", "--grace", "5"], env, root)
    try:
        assert wait_until(
            lambda: "celery@" in server.output() and " ready." in server.output(), 60
        ), server.output()[-3000:]
        assert get_json(server, "/cache") == {"cache": "cached"}  # Redis as Django's cache
        get_json(server, "/enqueue?key=before")
        assert wait_until(lambda: get_json(server, "/result?key=before")["value"] == "first", 30)

        ready_before = server.output().count(" ready.")
        set_task_value(root, "second")
        assert wait_until(lambda: server.output().count(" ready.") > ready_before, 30), (
            server.output()[-3000:]
        )
        assert "worker: jobs/tasks.py changed, restarting" in server.output()
        get_json(server, "/enqueue?key=after")
        assert wait_until(lambda: get_json(server, "/result?key=after")["value"] == "second", 30)

        started = pids_started(server)
        assert set(started) == {"web", "worker"}, started
        sessions = [pid for pids in started.values() for pid in pids]
        live = [pid for pid in sessions if session_members(pid)]
        assert live, "no child session to watch"
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        # The guard stops every group: SIGTERM, then SIGKILL after the grace (5 s).
        gone = wait_until(lambda: not any(session_members(pid) for pid in sessions), 20)
        left = {pid: session_members(pid) for pid in sessions if session_members(pid)}
        assert gone, f"processes left after kill -9 of cserver dev: {left}"
        # The guard leaves once its work is done (at most the grace after its SIGTERM).
        guard_gone = wait_until(lambda: not session_members(server.proc.pid), 10)
        assert guard_gone, "the guard itself outlived its work"
    finally:
        server.stop()
        for pids in pids_started(server).values():
            for pid in pids:
                for member in session_members(pid):
                    os.kill(member, signal.SIGKILL)


CRASHER = "import sys; print('boom: the broker is gone', flush=True); sys.exit(3)"


def test_a_crashing_side_process_is_restarted_with_backoff_while_web_answers(
    tmp_path: Path, demo_env: dict[str, str]
) -> None:
    sides = {"flaky": f'{sys.executable} -c "{CRASHER}"', "steady": "sleep 600"}
    env = {**demo_env, "CSERVER_SIDE_PROCESSES": json.dumps(sides), "PYTHONPATH": str(ROOT)}
    server = start_dev(["--grace", "3"], env, tmp_path)
    try:
        assert wait_until(lambda: "restarting in 4 s" in server.output(), 30), server.output()
        out = server.output()
        assert "flaky exited with status 3 after" in out
        for delay in ("1", "2", "4"):
            assert f"restarting in {delay} s; last lines:" in out
        assert "cserver |   flaky: boom: the broker is gone" in out
        # web and the steady process kept running throughout
        status, _h, _b = get(server.url("/"), timeout=10)
        assert status == 200
        started = pids_started(server)
        assert len(started["steady"]) == 1 and len(started["web"]) == 1
        assert len(started["flaky"]) >= 3

        t0 = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
        assert time.monotonic() - t0 < 3 + 5
        sessions = [pid for pids in started.values() for pid in pids]
        assert wait_until(lambda: not any(session_members(pid) for pid in sessions), 5)
        assert "SIGTERM received: stopping every process" in server.output()
    finally:
        server.stop()


def test_web_exiting_stops_everything_with_its_status(
    tmp_path: Path, demo_env: dict[str, str]
) -> None:
    env = {**demo_env, "CSERVER_SIDE_PROCESSES": '{"steady": "sleep 600"}', "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "cserver", "dev", "not-an-address"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, result.stdout
    assert "web exited with status" in result.stdout and ": stopping" in result.stdout
    started = dict(STARTED.findall(result.stdout))
    assert not session_members(int(started["steady"]))


def test_help_and_bad_names(tmp_path: Path, demo_env: dict[str, str]) -> None:
    def dev(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return run_cserver(tmp_path, "dev", *args, env=env, timeout=60)

    help_ = dev("--help", env=demo_env)
    assert help_.returncode == 0
    for words in ("runcserver", "--without", "--grace", "kill -9", "CSERVER_SIDE_PROCESSES"):
        assert words in help_.stdout, words
    env = {**demo_env, "CSERVER_SIDE_PROCESSES": '{"steady": "sleep 600"}'}
    bad = dev("--without", "wroker", env=env)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        "CommandError: --without wroker: no such side process "
        "(this project has: steady; declare more in CSERVER_SIDE_PROCESSES)"
    ]
    only = dev("--only", "beat", env=env)
    assert only.returncode != 0
    assert only.stderr.strip().splitlines() == [
        "CommandError: --only beat: no such side process "
        "(this project has: steady; declare more in CSERVER_SIDE_PROCESSES)"
    ]


def test_an_unreachable_redis_is_one_line_naming_url_and_setting(
    tmp_path: Path, demo_env: dict[str, str]
) -> None:
    port = free_port()
    sides = {"rq": {"command": "sleep 600", "needs": ["redis"]}}
    env = {
        **demo_env,
        "CSERVER_SIDE_PROCESSES": json.dumps(sides),
        "REDIS_URL": f"redis://:secret@127.0.0.1:{port}/0",
        "PYTHONPATH": str(ROOT),
    }
    server = start_dev([], env, tmp_path)
    try:
        out = server.output()
        line = next(line for line in out.splitlines() if "is not reachable" in line)
        assert f"127.0.0.1:{port}/0" in line and "REDIS_URL" in line and "redis-server" in line
        assert "secret" not in out
    finally:
        server.stop()
