"""The compose stack with CSERVER_MODE=asgi and CSERVER_PROCESSES=2, from `up --wait` to
`down -v`: PostgreSQL behind every page, a streamed SSE response, two worker processes,
web's sessions in pg_stat_activity, and nothing left afterwards.

A stack of its own (its own project name, database volume and port), on the image the
other Docker tests build: `compose build` is a cache hit when they ran first.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.docker.conftest import (
    BUILD_TIMEOUT,
    ComposeStack,
    free_port,
    wait_for,
)

ASGI_ENV = {
    "CSERVER_MODE": "asgi",
    "CSERVER_PROCESSES": "2",
    "CSERVER_DIAGNOSTICS": "true",
}
EVENTS = 3
EVENT_INTERVAL_MS = 300
# Requests on new sockets until both worker processes have answered (bounded).
MAX_PID_REQUESTS = 200
HOLD_MS = 2000  # how long /counter/racy keeps its database session busy


@pytest.fixture
def asgi_stack(docker_engine: None, tmp_path: Path) -> Iterator[ComposeStack]:
    """A compose project of its own, built (cache) but not up; always removed afterwards."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    stack = ComposeStack(f"cserver-test-asgi-{secrets.token_hex(4)}", env_file, free_port())
    try:
        stack.compose("build", "web", timeout=BUILD_TIMEOUT)
        yield stack
    finally:
        stack.remove()


def leftovers(stack: ComposeStack) -> dict[str, list[str]]:
    """Containers, volumes and networks still labelled with the stack's project."""
    label = {"label": f"com.docker.compose.project={stack.project}"}
    client = stack.client
    return {
        "containers": [c.name for c in client.containers.list(all=True, filters=label)],
        "volumes": [v.name for v in client.volumes.list(filters=label)],
        "networks": [n.name for n in client.networks.list(filters=label)],
    }


def pids_of_workers(stack: ComposeStack) -> set[str]:
    """X-Cserver-Pid of requests on new sockets, until two processes have answered."""
    pids: set[str] = set()
    for _ in range(MAX_PID_REQUESTS):
        response = stack.get("/hello")
        assert response.status_code == 200
        pids.add(response.headers["X-Cserver-Pid"])
        if len(pids) >= 2:
            break
    return pids


def read_events(stack: ComposeStack) -> list[tuple[float, dict]]:
    """(arrival time, data) of each event of /events, read as the response streams."""
    url = stack.url(f"/events?count={EVENTS}&interval_ms={EVENT_INTERVAL_MS}")
    started = time.monotonic()
    arrived = []
    with requests.get(url, stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for line in response.iter_lines(chunk_size=1):
            if line.startswith(b"data: "):
                arrived.append((time.monotonic() - started, json.loads(line[6:])))
    return arrived


def sessions_while_requests_hold_them(stack: ComposeStack, count: int = 4) -> int:
    """The most client sessions from web seen in pg_stat_activity while ``count`` requests
    each keep one busy (/counter/racy sleeps between its read and its write)."""
    most = 0

    def hold(_: int) -> int:
        return stack.get(f"/counter/racy?sleep_ms={HOLD_MS}", timeout=20).status_code

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(hold, i) for i in range(count)]
        deadline = time.monotonic() + HOLD_MS / 1000
        while time.monotonic() < deadline:
            most = max(most, stack.web_sessions())
            time.sleep(0.1)
        assert [f.result(timeout=20) for f in futures] == [200] * count
    return most


def test_asgi_mode_with_two_processes_from_up_to_down(asgi_stack: ComposeStack) -> None:
    stack = asgi_stack
    up_seconds = stack.up(env=ASGI_ENV)
    assert stack.health("web") == "healthy"
    log = stack.logs("web")
    assert "Starting ASGI development server at http://0.0.0.0:8000/" in log
    assert "mode=asgi" in log and "processes=2" in log, log[-2000:]

    # Pages answer from PostgreSQL, sync and async views alike.
    for path in ("/whoami", "/db", "/db/async"):
        response = stack.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.json()["db_vendor"] == "postgresql", path
    assert stack.get("/").status_code == 200

    # Server-Sent Events are sent as they are produced, not buffered to the end.
    events = read_events(stack)
    assert [data["n"] for _, data in events] == list(range(1, EVENTS + 1))
    spread = events[-1][0] - events[0][0]
    assert spread >= (EVENTS - 1) * EVENT_INTERVAL_MS / 1000 * 0.8, events

    pids = pids_of_workers(stack)
    assert len(pids) == 2, f"one worker process answered {MAX_PID_REQUESTS} requests: {pids}"

    sessions = sessions_while_requests_hold_them(stack)
    assert sessions >= 1, "no session of web in pg_stat_activity while requests held them"

    # The probe reports an asgi server too: every request, both processes, PostgreSQL's count.
    proc = stack.compose(
        "--profile",
        "probe",
        "run",
        "--rm",
        "probe",
        env={**ASGI_ENV, "CSERVER_PROBE_REQUESTS": "20"},
    )
    rows = [re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in proc.stdout.splitlines()]
    table = {row[0]: row[1] for row in rows if len(row) == 2}
    assert (table["requests"], table["errors"]) == ("20", "0"), proc.stdout
    assert "pg_stat_database.sessions" in table["DB sessions opened"], proc.stdout
    # CONN_MAX_AGE=0 (the stack's default): each request's session closed with it.
    assert table["DB connections left open"].startswith("0 "), proc.stdout

    stack.down(volumes=True)
    left = wait_for(lambda: not any(leftovers(stack).values()), timeout=10)
    assert left, leftovers(stack)
    print(
        f"up --wait {up_seconds:.1f} s; worker pids {sorted(pids)}; "
        f"sessions while held {sessions}; events at {[round(t, 2) for t, _ in events]} s"
    )
