"""The generated stack on a remote Docker engine (DOCKER_HOST over TCP with TLS).

The second engine (tests/docker/remote_engine.py) has its own disk and its own loopback, as a
bigger machine reached with `DOCKER_HOST=ssh://...` would: the image is built there from the
build context, code edits reach web by `docker compose watch`'s sync, and web's published
port is on the engine's loopback, which doctor says and this machine cannot reach.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit.cli import run_cserver
from tests.docker.conftest import clean_environ, wait_for
from tests.docker.remote_engine import RemoteEngine, remote_engine
from tests.docker.test_init_projects import (
    HELLO_V1,
    HELLO_V2,
    ProjectStack,
    requirements_project,
    share_with_containers,
)

# What the generated stack of a Python 3.13 project pulls: its base image and PostgreSQL.
STACK_IMAGES = ["python:3.13-slim", "postgres:17"]


@pytest.fixture(scope="module")
def second_engine(
    docker_engine: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RemoteEngine]:
    with remote_engine(tmp_path_factory.mktemp("engine"), STACK_IMAGES) as engine:
        yield engine


def _remote_project(engine: RemoteEngine, base: Path) -> ProjectStack:
    """An initialised project whose Compose commands go to the engine."""
    project = requirements_project(base)
    init = run_cserver(project.root, "init", timeout=120)
    assert init.returncode == 0, init.stderr
    share_with_containers(base)
    stack = ProjectStack(project)
    stack.env = engine.environ(stack.env)
    return stack


def _doctor(root: Path, env: dict[str, str]) -> str:
    doctor = run_cserver(root, "doctor", env=env)
    assert "Traceback" not in doctor.stderr, doctor.stderr
    return doctor.stdout


def _served_inside(stack: ProjectStack, path: str) -> str:
    """What web answers on its own loopback, asked through the engine (as `ssh -L` would)."""
    fetch = (
        "import urllib.request as u; "
        f"print(u.urlopen('http://127.0.0.1:8000{path}', timeout=5).read().decode())"
    )
    proc = subprocess.run(
        stack.argv("exec", "-T", "web", "python", "-c", fetch),
        cwd=stack.project.root,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


def test_stack_runs_and_syncs_on_a_remote_engine(
    second_engine: RemoteEngine, tmp_path: Path
) -> None:
    stack = _remote_project(second_engine, tmp_path)
    root = stack.project.root
    port = stack.port
    try:
        report = _doctor(root, stack.env)
        assert (
            f"endpoint {second_engine.url} (context default, set by DOCKER_HOST, TLS verified)"
            in report
        )
        assert "engine is remote" in report, report
        assert f"ssh -N -L {port}:127.0.0.1:{port}" in report, report
        assert "compose.yaml: no service bind-mounts a path of this machine" in report, report
        # The dev container's override mounts the checkout: fine locally, wrong over there.
        assert (
            "warning compose.yaml + .devcontainer/compose.devcontainer.yaml: web bind-mounts"
            in report
        )
        assert "is free for web" not in report  # this machine's port is beside the point

        started = time.monotonic()
        stack.compose("build", timeout=900)  # on the engine, from the build context sent
        built = time.monotonic()
        stack.compose("up", "--wait", timeout=300)
        print(
            f"remote engine: build {built - started:.1f} s (cold), "
            f"up --wait {time.monotonic() - built:.1f} s"
        )
        page = json.loads(_served_inside(stack, "/polls/"))
        assert page["vendor"] == "postgresql", page
        # Published on the engine's loopback, so not on this machine's: doctor's warning holds.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/polls/", timeout=3)

        with stack.watching():
            views = stack.project.code_root / "polls" / "views.py"
            text = views.read_text()
            # Watch syncs once it has set up; keep saving (new content each time) until served.
            edits = 0
            saved = time.monotonic()
            deadline = saved + 90
            while time.monotonic() < deadline:
                edits += 1
                saved = time.monotonic()
                views.write_text(text.replace(HELLO_V1, HELLO_V2) + f"# edit {edits}\n")
                if wait_for(lambda: _served_inside(stack, "/polls/hello") == HELLO_V2, timeout=8):
                    break
            assert _served_inside(stack, "/polls/hello") == HELLO_V2, "no edit was synced"
            print(
                f"remote engine: save to new code {time.monotonic() - saved:.1f} s "
                f"({edits} save(s))"
            )
    finally:
        stack.remove()


def test_doctor_warns_about_a_bind_mount_on_a_remote_engine(
    second_engine: RemoteEngine, tmp_path: Path
) -> None:
    stack = _remote_project(second_engine, tmp_path)
    root = stack.project.root
    (root / "compose.override.yaml").write_text(
        "services:\n  web:\n    volumes:\n      - ./media:/app/media\n"
    )
    report = _doctor(root, stack.env)
    assert (
        f"warning compose.yaml + compose.override.yaml: web bind-mounts {root / 'media'} at "
        "/app/media; on the remote engine that names a path on its machine"
    ) in report, report
    assert "use `docker compose watch`" in report

    # The same project against this machine's engine: local, no warning about mounts.
    local = _doctor(root, clean_environ() | {"COMPOSE_PROJECT_NAME": stack.name})
    assert "engine is local" in local, local
    assert "bind-mounts" not in local, local
