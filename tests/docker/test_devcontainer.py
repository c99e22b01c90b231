"""The generated dev container, brought up by the specification's reference CLI.

`@devcontainers/cli` (`devcontainer up`, `devcontainer exec`) reads .devcontainer/devcontainer.json
exactly as VS Code and Codespaces do, so a stack it brings up and a command it runs inside show
that the JSON, the compose files and the image agree. .ci/run installs the pinned CLI under
.ci/node; CSERVER_DEVCONTAINER_CLI names another one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from testkit.cli import run_cserver
from tests.docker.conftest import ROOT, wait_for
from tests.docker.test_init_projects import (
    HELLO_V1,
    HELLO_V2,
    ProjectStack,
    requirements_project,
    share_with_containers,
)

CLI_TIMEOUT = 900  # the first `up` builds the image (pip install from the index)


def devcontainer_cli() -> str:
    """The devcontainer CLI; skipped without one, failed when CI demands it."""
    for candidate in (
        os.environ.get("CSERVER_DEVCONTAINER_CLI", ""),
        str(ROOT / ".ci" / "node" / "node_modules" / ".bin" / "devcontainer"),
        shutil.which("devcontainer") or "",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    reason = (
        "no devcontainer CLI: npm install --prefix .ci/node @devcontainers/cli@0.89.0 "
        "(or set CSERVER_DEVCONTAINER_CLI)"
    )
    if os.environ.get("CSERVER_REQUIRE_DEVCONTAINER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _images(reference: str) -> set[str]:
    proc = subprocess.run(
        ["docker", "images", "-q", "--filter", f"reference={reference}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return set(proc.stdout.split())


def _init(root: Path) -> None:
    init = run_cserver(root, "init", timeout=120)
    assert init.returncode == 0, init.stderr


def test_devcontainer_cli_brings_up_the_stack_and_runs_commands_in_it(
    docker_engine: None, tmp_path: Path
) -> None:
    cli = devcontainer_cli()
    project = requirements_project(tmp_path)
    _init(project.root)
    share_with_containers(tmp_path)
    stack = ProjectStack(project)
    # The CLI tags the image it derives for the editor's user vsc-<folder>-<hash>.
    before = _images("vsc-*")

    def devcontainer(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, *args, "--workspace-folder", str(project.root)],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )

    def run_inside(*argv: str) -> str:
        proc = subprocess.run(
            [cli, "exec", "--workspace-folder", str(project.root), *argv],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    try:
        doctor = run_cserver(project.root, "doctor", env=stack.env)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert ".devcontainer/devcontainer.json agrees with its compose files" in doctor.stdout

        timings = []
        for _ in range(2):  # the second `up` finds the running container
            started = time.monotonic()
            up = devcontainer("up")
            timings.append(time.monotonic() - started)
            assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
            outcome = json.loads(up.stdout.strip().splitlines()[-1])
            assert outcome["outcome"] == "success", outcome
            assert outcome["remoteWorkspaceFolder"] == "/app"
        print(f"devcontainer up: first {timings[0]:.1f} s, second {timings[1]:.1f} s")

        assert "System check identified no issues" in run_inside("python", "manage.py", "check")
        assert run_inside("id", "-un").strip() == "app"
        fetch = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/polls/').read().decode())"
        inside = json.loads(run_inside("python", "-c", fetch))
        assert inside["vendor"] == "postgresql", inside
        # The port devcontainer.json forwards is published on this machine's loopback too.
        assert stack.get("/polls/").json()["vendor"] == "postgresql"

        # The workspace is the checkout itself: an edit is served without watch or rebuild.
        views = project.code_root / "polls" / "views.py"
        saved = time.monotonic()
        views.write_text(views.read_text().replace(HELLO_V1, HELLO_V2))
        assert wait_for(lambda: stack.served("/polls/hello") == HELLO_V2, timeout=60), (
            "an edit in the workspace was not served within 60 s"
        )
        print(f"devcontainer: edit served after {time.monotonic() - saved:.1f} s")
    finally:
        stack.remove()
        for image in _images("vsc-*") - before:
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True, timeout=120)


def test_doctor_names_each_disagreement_of_devcontainer_json(
    docker_engine: None, tmp_path: Path
) -> None:
    project = requirements_project(tmp_path)
    _init(project.root)
    path = project.root / ".devcontainer" / "devcontainer.json"
    config = json.loads(path.read_text())
    config.update(
        runServices=["db", "web", "worker"],
        workspaceFolder="/workspace",
        forwardPorts=[9000],
    )
    path.write_text(json.dumps(config))
    stack = ProjectStack(project)
    doctor = run_cserver(project.root, "doctor", env=stack.env)
    assert doctor.returncode == 1, doctor.stdout
    lines = [line for line in doctor.stdout.splitlines() if "devcontainer.json" in line]
    assert any("runServices names worker" in line for line in lines), lines
    assert any("workspaceFolder /workspace is not where the checkout" in line for line in lines)
    assert any("forwardPorts lacks 8000" in line for line in lines), lines
    assert all(line.startswith("problem") for line in lines), lines

    config.update(service="app", dockerComposeFile=["../compose.yaml", "missing.yaml"])
    path.write_text(json.dumps(config))
    doctor = run_cserver(project.root, "doctor", env=stack.env)
    assert doctor.returncode == 1
    assert "dockerComposeFile .devcontainer/missing.yaml not found" in doctor.stdout

    config.update(dockerComposeFile=["../compose.yaml"])
    path.write_text(json.dumps(config))
    doctor = run_cserver(project.root, "doctor", env=stack.env)
    assert "service 'app' is not in its compose files" in doctor.stdout, doctor.stdout
