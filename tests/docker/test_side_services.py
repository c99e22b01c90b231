"""Side processes declared once become compose services; the team's override is kept apart.

`docker compose config` resolves what init wrote for tests/realproj.py with a worker (Redis,
reload), a beat-like process without reload and an npm watcher (Node.js image, output
shared with web); a name that clashes is a one-line error; compose.override.yaml is never
touched by init and doctor lists what it changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.docker.conftest import clean_environ
from tests.realproj import write_realproj

SIDES = {
    "worker": {
        "command": "celery -A realproj worker -l info",
        "reload": True,
        "needs": ["redis"],
        "healthcheck": "celery -A realproj inspect ping -d celery@$HOSTNAME",
    },
    "beat": {"command": "celery -A realproj beat -l info", "needs": ["redis"]},
    "assets": {"command": "npm run watch", "image": "node", "output": "static/dist"},
}


def init(root: Path, sides: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = {**clean_environ(), "CSERVER_SIDE_PROCESSES": json.dumps(sides)}
    return subprocess.run(
        [sys.executable, "-m", "cserver", "init", "--force"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def resolved(root: Path) -> dict[str, Any]:
    proc = subprocess.run(
        ["docker", "compose", "-f", "compose.yaml", "config", "--format", "json"],
        cwd=root,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    services: dict[str, Any] = json.loads(proc.stdout)["services"]
    return services


def test_side_processes_become_services(docker_engine: None, tmp_path: Path) -> None:
    root = write_realproj(tmp_path)
    (root / "package.json").write_text('{"name": "x", "scripts": {"watch": "node b.js"}}\n')
    proc = init(root, SIDES)
    assert proc.returncode == 0, proc.stderr
    services = resolved(root)
    assert set(services) == {"db", "migrate", "bootstrap", "web", "redis", *SIDES}
    worker, web = services["worker"], services["web"]
    assert worker["image"] == web["image"] and worker["command"][:3] == ["celery", "-A", "realproj"]
    assert worker["environment"]["CSERVER_REDIS_URL"] == "redis://redis:6379/0"
    assert worker["environment"]["DJANGO_SETTINGS_MODULE"] == "cserver.project_settings"
    # A literal dollar (the container expands it): compose prints it escaped, as written.
    assert worker["healthcheck"]["test"][-1].endswith("celery@$$HOSTNAME")
    assert {k: v["condition"] for k, v in worker["depends_on"].items()} == {
        "db": "service_healthy",
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    # A code edit restarts it. Only web rebuilds on a dependency change: two rebuild rules
    # on one image race each other under `compose watch`.
    assert [w["action"] for w in worker["develop"]["watch"]] == ["sync+restart"]
    assert "rebuild" in [w["action"] for w in web["develop"]["watch"]]
    assert "develop" not in services["beat"]  # no reload: restarted only by hand
    assert web["depends_on"]["redis"]["condition"] == "service_healthy"
    # The npm watcher: its own Node.js image, output on a volume web serves.
    assets = services["assets"]
    assert assets["build"]["dockerfile"] == "docker/assets.Dockerfile"
    assert "FROM node:20-slim" in (root / "docker" / "assets.Dockerfile").read_text()
    shared = {(m["source"], m["target"]) for m in web.get("volumes", [])}
    assert ("assets_static_dist", "/app/static/dist") in shared
    rebuilds = [w["path"] for w in assets["develop"]["watch"] if w["action"] == "rebuild"]
    assert [Path(p).name for p in rebuilds] == ["package.json", "package-lock.json"]
    assert services["redis"]["image"] == "redis:8" and "ports" not in services["redis"]


def test_a_clashing_name_is_a_one_line_error(tmp_path: Path) -> None:
    root = write_realproj(tmp_path)
    before = sorted(p.name for p in root.iterdir())
    proc = init(root, {"web": "python manage.py rqworker"})
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("cserver init: error: side process 'web' clashes with the generated")
    assert "CSERVER_SIDE_PROCESSES" in line
    assert sorted(p.name for p in root.iterdir()) == before


def test_the_override_is_the_teams_and_doctor_reports_it(
    docker_engine: None, tmp_path: Path
) -> None:
    root = write_realproj(tmp_path)
    assert init(root, {}).returncode == 0
    override = root / "compose.override.yaml"
    text = (
        "services:\n"
        "  web:\n"
        '    command: ["python", "-m", "cserver", "runcserver", "0.0.0.0:8000", "--mode", "pool"]\n'
        "  mail:\n"
        "    image: debian:trixie-slim\n"
    )
    override.write_text(text)
    again = init(root, {})
    assert again.returncode == 0, again.stderr
    assert override.read_text() == text and "compose.override.yaml" not in again.stdout
    env = {**clean_environ(), "CSERVER_IMAGE": "cserver-side-never-built"}
    env["CSERVER_HOST_PORT"] = os.environ.get("CSERVER_TEST_FREE_PORT", "58123")
    doctor = subprocess.run(
        [sys.executable, "-m", "cserver", "doctor"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = doctor.stdout.splitlines()
    assert "note    compose.override.yaml adds the service mail" in lines, lines
    assert "note    compose.override.yaml changes web.command" in lines, lines
    assert "ok      compose.override.yaml merges with compose.yaml (2 change(s))" in lines
