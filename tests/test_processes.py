"""--processes N: real servers whose worker processes each serve the shared socket."""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.procs import alive, children, generations
from testkit.serverproc import (
    ROOT,
    ServerProcess,
    get,
    project_env,
    start_server,
    started_once,
    wait_until,
)
from tests.test_probe import probe_cli, probe_json
from tests.test_reloader import Poller, make_project, start_reloading, write_views

STARTED = re.compile(r"cserver: worker process (\d+)/(\d+) started, pid (\d+)")


@pytest.fixture(scope="module")
def servers() -> Iterator:
    with started_once(
        lambda *args: start_server(list(args), env=project_env(), timeout=40)
    ) as get_server:
        yield get_server


def shared(servers, *extra: str) -> ServerProcess:
    """The module's two-process pool server with diagnostics (plus ``extra`` flags)."""
    return servers("--processes", "2", "--mode", "pool", "--workers", "4", "--diagnostics", *extra)


def worker_pids(server: ServerProcess, count: int = 2, timeout: float = 10) -> list[int]:
    """The pids of the latest ``count`` worker starts the server logged."""
    assert wait_until(lambda: len(STARTED.findall(server.output())) >= count, timeout)
    latest: dict[str, int] = {}
    for number, _total, pid in STARTED.findall(server.output()):
        latest[number] = int(pid)
    return sorted(latest.values())


def json_get(server: ServerProcess, path: str) -> tuple[dict, dict]:
    status, headers, body = get(server.url(path))
    assert status == 200, body[:300]
    return json.loads(body), headers


def until_both(server: ServerProcess, path: str, pids: int = 2, limit: int = 400) -> list[dict]:
    """Requests on new sockets until ``pids`` distinct processes answered (bounded)."""
    answers: list[dict] = []
    for _ in range(limit):
        data, headers = json_get(server, path)
        data["header_pid"] = int(headers["X-Cserver-Pid"]) if "X-Cserver-Pid" in headers else None
        answers.append(data)
        if len({a["pid"] for a in answers}) >= pids:
            return answers
    raise AssertionError(f"only {len({a['pid'] for a in answers})} processes answered")


@pytest.mark.parametrize("mode", ["pool", "thread"])
def test_distinct_worker_processes_serve_and_say_so(servers, mode: str) -> None:
    # The last --mode wins; pool is the shared server itself.
    server = shared(servers, *(("--mode", mode) if mode != "pool" else ()))
    assert "processes=2" in server.wait_for_output("processes=2")
    pids = worker_pids(server)
    answers = until_both(server, "/counter?key=pids")
    served = {a["pid"] for a in answers}
    assert served == set(pids)
    assert server.proc.pid not in served  # the parent only supervises
    # X-Cserver-Pid names the worker process that ran the view.
    assert all(a["header_pid"] == a["pid"] for a in answers)


def test_module_globals_and_locmem_cache_are_per_process(servers) -> None:
    server = shared(servers)
    answers = until_both(server, "/counter?key=state")
    for _ in range(20):
        answers.append(json_get(server, "/counter?key=state")[0])
    by_pid: dict[int, list[dict]] = {}
    for answer in answers:
        by_pid.setdefault(answer["pid"], []).append(answer)
    assert len(by_pid) == 2
    for seen in by_pid.values():
        # Each process counts from 1 on its own, in its global and its LocMemCache alike.
        assert [a["global"] for a in seen] == list(range(1, len(seen) + 1))
        assert [a["cache"] for a in seen] == list(range(1, len(seen) + 1))


def test_status_page_adds_up_every_process(servers) -> None:
    server = shared(servers)
    before, _ = json_get(server, "/__cserver__/stats")
    answers = until_both(server, "/counter?key=status")
    stats, _ = json_get(server, "/__cserver__/stats")
    assert stats["processes"] == 2
    assert stats["shared_across_processes"] is True
    assert set(stats["worker_pids"]) >= {a["pid"] for a in answers}
    assert stats["requests"] - before["requests"] >= len(answers)
    status, _, page = get(server.url("/__cserver__/"))
    assert status == 200
    for pid in {a["pid"] for a in answers}:
        assert f">{pid}</td>" in page.decode()  # its row in the workers table


def test_probe_counts_requests_per_process(servers) -> None:
    server = shared(servers)
    pids = {str(pid) for pid in worker_pids(server)}
    url = server.url("/counter?key=probe")
    report = probe_json(url, "-n", "60", "-c", "4", "--new-socket", "--settle", "0")
    per_process = report["requests_per_process"]
    assert set(per_process) <= pids and sum(per_process.values()) == 60
    # Pool threads have the same names in both processes: counted apart by their pid.
    assert report["workers_seen"] <= 8
    table = probe_cli(url, "-n", "10", "-c", "2", "--settle", "0").stdout
    assert "per-process requests" in table and "pid " in table


class Held:
    """Keep-alive connections that each served one request and stay open."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.conns: list[http.client.HTTPConnection] = []

    def open(self) -> tuple[int, int | None]:
        """(status, worker pid) of a request on a new connection that is kept open."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        conn.request("GET", "/hello")
        response = conn.getresponse()
        response.read()
        self.conns.append(conn)
        pid = response.getheader("X-Cserver-Pid")
        return response.status, int(pid) if pid else None

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def test_connection_limit_counts_every_process(servers) -> None:
    limit = 12
    server = shared(servers, "--connection-limit", str(limit), "--keepalive-timeout", "60")
    held = Held(server)
    try:
        first = [held.open() for _ in range(limit)]
        assert all(status == 200 for status, _ in first)
        # Not one process reaching a limit of its own: the total is what counts.
        assert {pid for _, pid in first} == set(worker_pids(server))
        for _ in range(4):
            assert held.open()[0] == 503
        held.conns.pop(0).close()
        # Closing one makes room again, whichever process is asked next.
        assert wait_until(lambda: held.open()[0] == 200, 5, 0.2)
    finally:
        held.close()


def test_keepalive_clients_connecting_at_once_are_spread_over_the_processes(servers) -> None:
    """16 clients at once: each process takes 8, none sits idle beside a crowded one."""
    server = shared(servers, "--keepalive-timeout", "60")
    worker_pids(server)  # both serve: a process that has not started yet takes nothing
    held = Held(server)
    barrier = threading.Barrier(16)
    pids: list[int | None] = []
    lock = threading.Lock()

    def connect() -> None:
        barrier.wait(10)
        _, pid = held.open()
        with lock:
            pids.append(pid)

    threads = [threading.Thread(target=connect) for _ in range(16)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    finally:
        held.close()
    counts = sorted(collections.Counter(pids).values())
    # Without balancing, 2/14 and 3/13 were common; allow a little slack for a busy machine.
    assert len(counts) == 2 and counts[0] >= 6, counts


def test_dead_worker_is_replaced_and_logged(servers) -> None:
    server = shared(servers, "--grace-period", "1")
    victim, other = worker_pids(server)
    os.kill(victim, signal.SIGKILL)
    line = f"(pid {victim}) was killed by signal 9 (SIGKILL); starting a new one"
    assert wait_until(lambda: line in server.output(), 10), server.output()[-2000:]
    assert wait_until(lambda: victim not in worker_pids(server), 10)
    new_pids = worker_pids(server)
    assert other in new_pids and len(new_pids) == 2
    answers = until_both(server, "/counter?key=replaced")
    assert {a["pid"] for a in answers} == set(new_pids)


CRASHING_GROUP = """
import signal, sys, time
from cserver.server.processes import ProcessGroup

def crash(index):
    raise RuntimeError("cannot start")

group = ProcessGroup(crash, 1, ("127.0.0.1", 0), "pool", grace_period=1, connection_limit=10)
signal.signal(signal.SIGALRM, lambda *_: group.request_shutdown())
signal.alarm(3)
group.serve_forever()
print("stopped")
"""


def test_worker_that_keeps_dying_is_restarted_with_growing_pauses() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_GROUP],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stopped" in proc.stdout
    deaths = re.findall(r"exited with status 1; starting a new one (now|in [\d.]+ s)", proc.stderr)
    # Pauses of 0.1, 0.2, 0.4, 0.8, 1.6 s: a handful of attempts in 3 s, not a fork storm.
    assert 3 <= len(deaths) <= 7, proc.stderr[-2000:]
    pauses = [float(d.split()[1]) for d in deaths if d != "now"]
    assert pauses == sorted(pauses) and pauses[-1] >= 0.8


def test_sigterm_drains_a_slow_request_in_each_process() -> None:
    args = ["--processes", "2", "--mode", "pool", "--workers", "2", "--grace-period", "5"]
    with start_server(args, env=project_env(), timeout=40) as server:
        pids = worker_pids(server)
        results: list[tuple[int, dict]] = []
        lock = threading.Lock()

        def slow() -> None:
            status, _, body = get(server.url("/inflight?ms=1500"), timeout=15)
            with lock:
                results.append((status, json.loads(body)))

        # Four slow requests on two processes of two workers: both processes hold some.
        threads = [threading.Thread(target=slow) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.6)
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
        for thread in threads:
            thread.join(15)
        assert [status for status, _ in results] == [200] * 4
        assert {data["pid"] for _, data in results} == set(pids)
        assert not any(alive(pid) for pid in pids)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def pid_of(server: ServerProcess, path: str) -> tuple[int, str]:
    status, headers, body = get(server.url(path))
    assert status == 200, body[:300]
    return int(headers["X-Cserver-Pid"]), body.decode()


def answers_per_process(server: ServerProcess, path: str, want: str, timeout: float) -> bool:
    """Whether, within ``timeout``, two distinct processes answered ``want`` in a row each."""
    latest: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, AssertionError):
            pid, text = pid_of(server, path)
            latest[pid] = text
            ok = [p for p, t in latest.items() if t.startswith(want)]
            if len(ok) >= 2:
                return True
        time.sleep(0.02)
    return False


def test_reload_serves_new_code_from_every_process_refusing_nothing(project: Path) -> None:
    with start_reloading(project, "--processes", "2", "--mode", "pool", "--diagnostics") as server:
        assert answers_per_process(server, "/version", "version 1", 10)
        poller = Poller(server)
        try:
            write_views(project, 2)
            assert answers_per_process(server, "/version", "version 2", 30), server.output()
            assert wait_until(lambda: poller.ok >= 5, 10, 0.05)
        finally:
            poller.finish()
        assert poller.refused == 0
        assert poller.errors == 0


def test_template_change_reaches_every_process(project: Path) -> None:
    with start_reloading(project, "--processes", "2", "--mode", "pool", "--diagnostics") as server:
        assert answers_per_process(server, "/page", "template one", 10)
        generation_pids = generations(server.proc.pid)
        (project / "relproj" / "templates" / "page.html").write_text("template two")
        assert answers_per_process(server, "/page", "template two", 15), server.output()
        # Without a restart: the same generation and its same workers answer.
        assert generations(server.proc.pid) == generation_pids
        assert "reloaded in" not in server.output()


def test_kill_9_of_supervisor_leaves_no_worker(project: Path) -> None:
    server = start_reloading(project, "--processes", "2", "--mode", "pool")
    try:
        assert wait_until(lambda: len(generations(server.proc.pid)) == 1, 10)
        (parent,) = generations(server.proc.pid)
        assert wait_until(lambda: len(children(parent)) == 2, 10)
        family = [*children(server.proc.pid), parent, *children(parent)]
        server.proc.kill()
        server.proc.wait(5)
        assert wait_until(lambda: not any(alive(pid) for pid in family), 2.0), [
            pid for pid in family if alive(pid)
        ]
    finally:
        server.stop()


def test_kill_9_of_parent_without_reloader_leaves_no_worker() -> None:
    with start_server(["--processes", "2"], env=project_env(), timeout=40) as server:
        pids = worker_pids(server)
        server.proc.kill()
        server.proc.wait(5)
        assert wait_until(lambda: not any(alive(pid) for pid in pids), 2.0)


def test_nothreading_processes_with_a_replayable_delay() -> None:
    """gunicorn's sync workers: one request at a time per process; the delay's seed is
    picked once and each process draws from its own sequence."""
    args = ["--processes", "2", "--nothreading", "--delay", "--delay-min", "1"]
    with start_server([*args, "--delay-max", "3", "--seed", "7"], env=project_env()) as server:
        banner = server.wait_for_output("processes=2")
        assert "mode=thread (--nothreading: one request at a time)" in banner
        assert "delay=1-3ms seed=7+process processes=2" in banner
        answers = until_both(server, "/inflight?ms=1")
        assert all(1 <= a["delay_ms"] <= 3 for a in answers)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--processes", "2", "--mode", "fork"], "--processes 2 does not go with --mode fork"),
        (["--processes", "0"], "--processes 0 is not valid: expected an integer from 1 to 64"),
    ],
)
def test_processes_that_make_no_sense_are_one_line_errors(args: list[str], shown: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cserver", "runcserver", "--noreload", *args],
        env=project_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and shown in lines[0], proc.stderr
