"""The compose stack on a real Docker engine: health, modes, connections, signals, reload."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.docker.conftest import (
    ROOT,
    TEST_IMAGE,
    ComposeStack,
    clean_environ,
    free_port,
    wait_for,
)

SLOW_MS = 300
CONCURRENT = 8
SEQUENTIAL_REQUESTS = 20
PERSISTENT = {"DJANGO_CONN_MAX_AGE": "None"}

# Lists the container's processes (pid, ppid, state, command line) from /proc: slim images
# have no ps.
PS = r"""
import os
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        stat = open(f"/proc/{pid}/stat").read()
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        continue
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    print(pid, ppid, state, " ".join(cmd.split()), sep="\t")
"""


def processes(stack: ComposeStack) -> list[tuple[int, int, str, str]]:
    """(pid, ppid, state, command line) of every process in the web container."""
    rows = []
    for line in stack.exec("web", ["python", "-c", PS]).splitlines():
        pid, ppid, state, cmd = [*line.split("\t"), ""][:4]
        rows.append((int(pid), int(ppid), state, cmd))
    return rows


def test_up_wait_reaches_healthy(stack: ComposeStack) -> None:
    assert stack.health("db") == "healthy"
    assert stack.health("web") == "healthy"
    migrate = stack.container("migrate").attrs["State"]
    assert (migrate["Status"], migrate["ExitCode"]) == ("exited", 0)
    web = stack.container("web").attrs
    assert web["HostConfig"]["Init"] is True
    # Published on loopback only; the database not at all.
    [binding] = web["NetworkSettings"]["Ports"]["8000/tcp"]
    assert binding == {"HostIp": "127.0.0.1", "HostPort": str(stack.port)}
    assert not any(stack.container("db").attrs["NetworkSettings"]["Ports"].values())
    # Not root: the UID/GID build arguments (default 1000).
    assert stack.exec("web", ["id", "-u"]).strip() == "1000"
    assert stack.exec("web", ["id", "-g"]).strip() == "1000"
    print(f"build {stack.build_seconds:.1f} s, up --wait {stack.up_seconds:.1f} s")


def test_demo_answers_through_published_port(stack: ComposeStack) -> None:
    stack.ensure_web()
    hello = stack.get("/hello")
    assert (hello.status_code, hello.text) == (200, "Hello, world!")
    whoami = stack.get("/whoami").json()
    assert (whoami["mode"], whoami["db_vendor"]) == ("thread", "postgresql")
    assert stack.get("/").status_code == 200


def test_diagnostics_reach_the_host(stack: ComposeStack) -> None:
    stack.ensure_web({"CSERVER_DIAGNOSTICS": "true"})
    hello = stack.get("/hello")
    assert hello.headers["X-Cserver-Worker"].startswith("thread/")
    assert stack.get("/__cserver__/stats").status_code == 200


def test_slow_requests_overlap_in_pool_mode(stack: ComposeStack) -> None:
    stack.ensure_web({"CSERVER_MODE": "pool", "CSERVER_WORKERS": str(CONCURRENT)})
    stack.get("/slow?ms=1")  # first request imports the view: keep it out of the timing
    barrier = threading.Barrier(CONCURRENT)

    def one(_: int) -> dict[str, Any]:
        barrier.wait(timeout=10)
        response = stack.get(f"/slow?ms={SLOW_MS}")
        assert response.status_code == 200
        return dict(response.json())

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(one, range(CONCURRENT)))
    elapsed = time.monotonic() - started
    assert {r["mode"] for r in results} == {"pool"}
    # The server's own clock: every request had started before the first one finished.
    assert max(r["started"] for r in results) < min(r["finished"] for r in results)
    assert elapsed < 2 * SLOW_MS / 1000, f"{CONCURRENT} x {SLOW_MS} ms took {elapsed:.3f} s"


@pytest.mark.parametrize("mode", ["pool", "thread", "fork"])
def test_database_sessions_after_sequential_requests(stack: ComposeStack, mode: str) -> None:
    """CONN_MAX_AGE=None, a new socket per request: the figures the in-process tests assert."""
    workers = 4
    stack.ensure_web({"CSERVER_MODE": mode, "CSERVER_WORKERS": str(workers), **PERSISTENT})
    for _ in range(SEQUENTIAL_REQUESTS):
        response = stack.get("/db")
        assert response.status_code == 200
    assert stack.get("/whoami").json()["mode"] == mode
    if mode == "pool":
        # Each pool thread keeps its own connection open for the next request.
        time.sleep(1)
        assert 1 <= stack.web_sessions() <= workers
    else:
        # A thread or child per connection: its connection closes when it ends.
        left = wait_for(lambda: stack.web_sessions() == 0, timeout=5)
        assert left, f"{stack.web_sessions()} sessions left open in {mode} mode"


def test_bad_variable_exits_with_the_in_process_message(
    stack: ComposeStack, tmp_path: Path
) -> None:
    env = {"CSERVER_WORKERS": "0"}
    local = subprocess.run(
        [sys.executable, "-m", "cserver", "runcserver", "127.0.0.1:0", "--noreload"],
        cwd=tmp_path,  # no .env here
        env={**clean_environ(), **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    [message] = [line for line in local.stderr.splitlines() if line.strip()]
    assert "CSERVER_WORKERS" in message and local.returncode == 2
    stack.recreate_web(env, wait=False)
    try:
        exited = wait_for(lambda: stack.container("web").status == "exited", timeout=30)
        assert exited, "web did not exit on CSERVER_WORKERS=0"
        assert stack.container("web").attrs["State"]["ExitCode"] == local.returncode
        logs = stack.logs("web")
        assert message in logs.splitlines(), logs
        assert "Traceback" not in logs
        assert message in stack.compose("logs", "--no-color", "web").stdout
    finally:
        stack.web_config = None


def test_stop_is_fast_and_finishes_the_request_in_flight(stack: ComposeStack) -> None:
    stack.ensure_web()
    result: dict[str, Any] = {}

    def slow() -> None:
        try:
            result["response"] = stack.get("/slow?ms=600", timeout=10)
        except requests.RequestException as exc:
            result["error"] = exc

    client = threading.Thread(target=slow)
    client.start()
    try:
        time.sleep(0.25)  # the request is being served (for another 0.35 s)
        stop_issued = time.time()
        started = time.monotonic()
        stack.compose("stop", "web")
        elapsed = time.monotonic() - started
    finally:
        client.join(timeout=15)
        stack.web_config = None
    assert "error" not in result, result.get("error")
    assert result["response"].status_code == 200
    # Same clock (the container's is the host's): the request was still running at the stop.
    assert result["response"].json()["finished"] > stop_issued
    # Well under Compose's 10 s before SIGKILL: the server drained and exited on SIGTERM
    # (a loaded machine stretches the drain, not the bound that matters).
    assert elapsed < 8.0, f"docker compose stop web took {elapsed:.2f} s"
    assert stack.container("web").attrs["State"]["ExitCode"] == 0


def test_fork_children_die_with_the_killed_server(stack: ComposeStack) -> None:
    stack.ensure_web({"CSERVER_MODE": "fork", "CSERVER_WORKERS": "4"})
    clients = ThreadPoolExecutor(3)
    try:
        # Three requests in flight, each in a forked child.
        for _ in range(3):
            clients.submit(stack.get, "/slow?ms=5000", 10)

        def tree() -> tuple[int, list[int]] | None:
            servers = {
                pid: ppid
                for pid, ppid, _, cmd in processes(stack)
                if pid != 1 and "runcserver" in cmd  # pid 1 is tini
            }
            # tini (1) -> reloader -> server -> one child per connection
            for server, parent in servers.items():
                children = [pid for pid, ppid in servers.items() if ppid == server]
                if parent in servers and len(children) == 3:
                    return server, children
            return None

        found = wait_for(tree, timeout=10)
        assert found, f"no server with 3 forked children: {processes(stack)}"
        server, children = found
        stack.exec("web", ["sh", "-c", f"kill -9 {server}"])  # no kill binary: sh's

        def orphans() -> list[tuple[int, int, str, str]]:
            return [p for p in processes(stack) if p[0] in children or p[2] == "Z"]

        assert wait_for(lambda: not orphans(), timeout=10), f"left behind: {orphans()}"
    finally:
        clients.shutdown(wait=True, cancel_futures=True)
        stack.web_config = None


def test_probe_prints_the_connection_table(stack: ComposeStack) -> None:
    stack.ensure_web()
    proc = stack.compose(
        "--profile", "probe", "run", "--rm", "probe", env={"CSERVER_PROBE_REQUESTS": "20"}
    )
    # Rows are "name<spaces>value"; names have single spaces, the gap has two or more.
    rows = [re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in proc.stdout.splitlines()]
    table = {row[0]: row[1] for row in rows if len(row) == 2}
    assert table["requests"] == "20"
    assert table["errors"] == "0"
    assert "pg_stat_database.sessions" in table["DB sessions opened"]
    # Thread mode, CONN_MAX_AGE=0: every connection is closed after its request.
    assert table["DB connections left open"].startswith("0 ")


def test_code_change_is_served_without_rebuild(stack: ComposeStack, tmp_path: Path) -> None:
    # A copy of the package is mounted over /app/cserver: the checkout stays untouched.
    source = tmp_path / "cserver"
    shutil.copytree(ROOT / "cserver", source, ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(tmp_path, 0o755)
    override = tmp_path / "compose.mount.yaml"
    override.write_text(
        "services:\n  web:\n    volumes:\n"
        f"      - {{type: bind, source: {source}, target: /app/cserver, read_only: true}}\n"
    )
    try:
        stack.ensure_web(files=[override])
        assert stack.get("/hello").text == "Hello, world!"
        views = source / "demo" / "views.py"
        text = views.read_text()
        assert '"Hello, world!"' in text
        views.write_text(text.replace('"Hello, world!"', '"Hello, edited!"'))

        assert wait_for(lambda: _served(stack) == "Hello, edited!", timeout=30), _served(stack)
    finally:
        stack.web_config = None


def test_compose_watch_syncs_code_edits(stack: ComposeStack, tmp_path: Path) -> None:
    # `docker compose watch` on a copy of the project: edits there never touch the checkout.
    project = tmp_path / "project"
    project.mkdir()
    for name in ("compose.yaml", "pyproject.toml", "README.md", "LICENSE", ".dockerignore"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, project / name)
    for name in ("cserver", "docker"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    argv = stack.argv("watch", main=project / "compose.yaml")
    watch = subprocess.Popen(
        argv,
        cwd=project,
        env=stack.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack.web_config = None  # web now runs from the copy
    try:
        assert wait_for(lambda: stack.health("web") == "healthy", timeout=60)
        assert wait_for(lambda: _served(stack) == "Hello, world!", timeout=30), _served(stack)
        views = project / "cserver" / "demo" / "views.py"
        text = views.read_text()
        # Watch only starts syncing once it has set up; keep editing until it lands.
        deadline = time.monotonic() + 60
        edits = 0
        while time.monotonic() < deadline and _served(stack) != "Hello, synced!":
            edits += 1
            views.write_text(text.replace('"Hello, world!"', '"Hello, synced!"') + f"# {edits}\n")
            wait_for(lambda: _served(stack) == "Hello, synced!", timeout=5)
        assert _served(stack) == "Hello, synced!", f"not synced after {edits} edits"
    finally:
        watch.terminate()
        try:
            output, _ = watch.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            watch.kill()
            output, _ = watch.communicate(timeout=20)
    assert "Syncing" in output, output


def _served(stack: ComposeStack) -> str:
    """Body of /hello, or "" while the server is reloading."""
    try:
        return stack.get("/hello", timeout=2).text
    except requests.RequestException:
        return ""


@contextmanager
def _healthy_container(stack: ComposeStack, *, init: bool) -> Iterator[tuple[Any, int]]:
    """`docker run IMAGE` on a free port, without compose, once healthy; removed after."""
    port = free_port()
    container = stack.client.containers.run(
        f"{TEST_IMAGE}:latest",
        detach=True,
        init=init,
        ports={"8000/tcp": ("127.0.0.1", port)},
        # Labelled with the project, so the session teardown removes it in any case.
        labels={"com.docker.compose.project": stack.project},
    )
    try:

        def health() -> str:
            container.reload()
            return str(container.attrs["State"].get("Health", {}).get("Status"))

        assert wait_for(lambda: health() == "healthy", timeout=90), container.logs()[-2000:]
        yield container, port
    finally:
        container.remove(force=True, v=True)


def test_image_alone_serves_the_demo_on_sqlite(stack: ComposeStack) -> None:
    """The image's default command migrates SQLite and serves."""
    with _healthy_container(stack, init=True) as (_, port):
        url = f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/hello", timeout=10).text == "Hello, world!"
        assert requests.get(f"{url}/counter/safe?sleep_ms=0", timeout=10).json()["safe"] == 1
        assert requests.get(f"{url}/db", timeout=10).json()["db_vendor"] == "sqlite"


def test_server_as_pid_1_drains_and_exits_zero_on_stop(stack: ComposeStack) -> None:
    """Without an init process the server itself is PID 1: SIGTERM must still drain."""
    with _healthy_container(stack, init=False) as (container, port):
        url = f"http://127.0.0.1:{port}/slow?ms=1500"
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(requests.get, url, timeout=20)
            time.sleep(0.4)
            started = time.monotonic()
            container.stop(timeout=10)
            stopped_in = time.monotonic() - started
            assert in_flight.result(timeout=20).status_code == 200
        assert container.wait(timeout=10)["StatusCode"] == 0, container.logs()[-2000:]
        assert stopped_in < 3, f"stop took {stopped_in:.2f} s"
