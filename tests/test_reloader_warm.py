"""The fast path: generations forked from a warm process, each reload's phases logged."""

from __future__ import annotations

import os
import re
import signal
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from testkit.procs import direct_children, generations
from testkit.serverproc import wait_until
from tests.test_reloader import _safe_body, make_project, start_reloading, write_views

TIMING = re.compile(
    r"cserver: reloaded in \d+ ms \(detect \d+ ms, start \d+ ms, ready \d+ ms, (forked|exec)\)"
    r" after (\S+)"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def warm_process(supervisor: int) -> int | None:
    warm = set(direct_children(supervisor)) - generations(supervisor)
    return warm.pop() if warm else None


def reload_to(server, project: Path, version: int) -> None:
    write_views(project, version)
    assert wait_until(lambda: _safe_body(server).startswith(f"version {version} "), 20, 0.05), (
        server.output()
    )


@pytest.mark.parametrize("mode", ["thread", "fork"])
def test_a_reload_is_forked_and_logs_its_phases(project: Path, mode: str) -> None:
    with start_reloading(project, "--mode", mode) as server:
        reload_to(server, project, 2)
        assert wait_until(lambda: TIMING.search(server.output()), 10), server.output()
        how, path = TIMING.search(server.output()).groups()
        assert how == "forked"
        assert path.endswith("views.py")


def test_a_killed_warm_process_is_replaced_and_reloads_go_on(project: Path) -> None:
    with start_reloading(project) as server:
        warm = warm_process(server.proc.pid)
        assert warm is not None
        os.kill(warm, signal.SIGKILL)
        assert wait_until(lambda: warm_process(server.proc.pid) not in (None, warm), 10)
        reload_to(server, project, 2)
        # While the new warm process imports, reloads exec; once it is warm, they fork again.
        deadline = time.monotonic() + 30
        version = 3
        while time.monotonic() < deadline:
            time.sleep(1)
            reload_to(server, project, version)
            assert wait_until(lambda v=version: len(TIMING.findall(server.output())) >= v - 1, 10)
            if TIMING.findall(server.output())[-1][0] == "forked":
                break
            version += 1
        assert TIMING.findall(server.output())[-1][0] == "forked", server.output()


def test_installing_a_package_restarts_the_warm_process(project: Path) -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    with start_reloading(project) as server:
        warm = warm_process(server.proc.pid)
        # What pip does to site-packages: a new *.dist-info directory.
        with tempfile.TemporaryDirectory(prefix="cserver_test-0.dist-info-", dir=site):
            assert wait_until(lambda: "installed packages changed" in server.output(), 10)
        assert wait_until(lambda: warm_process(server.proc.pid) not in (None, warm), 10)
        reload_to(server, project, 2)
