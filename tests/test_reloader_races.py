"""Signals that reach the reloader at awkward moments: each once lost or killed a generation."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from testkit.procs import children, generations
from testkit.serverproc import get, wait_until
from tests.test_reloader import _safe_body, body, make_project, start_reloading


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def wait_for_new_generation(supervisor: int, known: set[int], timeout: float) -> int | None:
    """Spin until a child that is not in ``known`` appears; its pid, as early as possible."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = generations(supervisor) - known
        if fresh:
            return fresh.pop()
    return None


def served_pid(server) -> str:
    text = _safe_body(server)
    return text.split("pid ")[-1] if text else ""


def test_sighup_while_a_generation_starts_does_not_kill_it(project: Path) -> None:
    with start_reloading(project) as server:
        first = served_pid(server)
        known = generations(server.proc.pid)
        server.signal(signal.SIGHUP)
        assert wait_for_new_generation(server.proc.pid, known, 10) is not None
        # This one lands while the new generation is still importing Django.
        server.signal(signal.SIGHUP)
        assert wait_until(lambda: served_pid(server) not in ("", first), 30, 0.1), server.output()
        assert "serving the error" not in server.output()
        # And the reloader still obeys SIGHUP afterwards.
        second = served_pid(server)
        server.signal(signal.SIGHUP)
        assert wait_until(lambda: served_pid(server) not in ("", second), 30, 0.1)


def test_sighup_to_the_process_group_in_fork_mode_reloads_once_and_loses_nothing(
    project: Path,
) -> None:
    with start_reloading(project, "--mode", "fork") as server:
        first = served_pid(server)
        result: dict = {}

        def hold() -> None:
            try:
                result["text"] = body(server, "/version?ms=1500", timeout=20)
            except (OSError, http.client.HTTPException, AssertionError) as exc:
                result["error"] = repr(exc)

        holder = threading.Thread(target=hold)
        holder.start()
        (generation,) = generations(server.proc.pid)
        assert wait_until(lambda: len(children(generation)) >= 1, 10, 0.01)
        # As a terminal's hang-up or `kill -HUP -<pgid>` does: every process of the group.
        os.killpg(server.proc.pid, signal.SIGHUP)
        holder.join(25)
        assert result.get("text", "").startswith("version 1 "), (result, server.output())
        assert wait_until(lambda: served_pid(server) not in ("", first), 30, 0.1)
        status, _, _ = get(server.url("/version"))
        assert status == 200
        assert "serving the error" not in server.output()


@pytest.mark.parametrize("attempt", range(4))
def test_sigterm_while_the_next_generation_spawns_stops_the_server(
    project: Path, attempt: int
) -> None:
    # A large environment makes each spawn slower, and so the window wider, as in a shell
    # with many variables exported.
    bulk = {f"CSERVER_TEST_BULK_{n}": "x" * 8000 for n in range(150)}
    server = start_reloading(project, env_extra=bulk)
    try:
        known = generations(server.proc.pid)
        server.signal(signal.SIGHUP)
        assert wait_for_new_generation(server.proc.pid, known, 10) is not None
        # The supervisor is between starting the process and recording it.
        server.signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            server.wait(15)
        assert server.proc.returncode == 0, server.output()
    finally:
        server.stop()
