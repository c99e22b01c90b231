"""What `cserver init` finds of workers, beat, Redis and assets, and the choices it records
(no Docker needed: the stack's services are checked in tests/docker/test_teamproj_stack.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cserver.stack.sides_detect import SidesError, chosen, find_sides, local_broker_problems
from testkit.cli import run_cserver
from tests.teamproj import PACKAGE_JSON, write_teamproj


def init(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cserver(root, "init", *args)


def settings_of(root: Path) -> list[Path]:
    return [root / "teamproj" / "settings.py"]


def test_the_team_project_is_found_with_its_evidence(tmp_path: Path) -> None:
    root = write_teamproj(tmp_path)
    found = {f.kind: f for f in find_sides(root, "", settings_of(root))}
    assert set(found) == {"worker", "beat", "redis", "assets"}
    worker, beat, assets = found["worker"].side, found["beat"].side, found["assets"].side
    assert worker is not None and beat is not None and assets is not None
    assert worker.command == "celery -A teamproj worker -l info --pool threads --without-mingle"
    assert worker.reload and worker.needs == ("redis",)
    assert found["worker"].evidence.startswith("teamproj/celery.py:7 ")
    assert beat.command == "celery -A teamproj beat -l info"
    assert beat.reload and beat.needs == ("redis",)
    assert found["beat"].evidence == "teamproj/settings.py:24 CELERY_BEAT_SCHEDULE"
    # The watch script wins over build; its --outdir is what web serves.
    assert (assets.command, assets.output, assets.image) == ("npm run watch", "static/dist", "node")
    # REDIS_URL reads the environment, localhost being the laptop's default: no problem.
    assert not [f for f in found.values() if f.problem]


def test_init_dry_run_prints_one_line_per_finding_and_writes_nothing(tmp_path: Path) -> None:
    root = write_teamproj(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    proc = init(root, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for kind, words in (
        ("worker", "--pool threads --without-mingle` (restarts on code changes; waits for"),
        ("beat", "`celery -A teamproj beat -l info`"),
        ("assets", "`npm run watch`"),
        ("redis", "[teamproj/settings.py:"),
    ):
        assert [line for line in lines if line.strip().startswith(kind) and words in line], kind
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_with_and_without_are_checked_and_recorded(tmp_path: Path) -> None:
    root = write_teamproj(tmp_path)
    bad = init(root, "--with", "wroker")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "cserver init: error: --with wroker: expected some of worker, beat, redis, assets"
    ]
    assert not (root / "compose.yaml").exists()
    first = init(root, "--without", "beat,assets")
    assert first.returncode == 0, first.stderr
    compose = (root / "compose.yaml").read_text()
    assert "\n  worker:\n" in compose and "\n  redis:\n" in compose
    assert "\n  beat:\n" not in compose and "\n  assets:\n" not in compose
    # A second run without the flags reads them from the stack and changes nothing.
    again = init(root, "--dry-run")
    assert again.returncode == 0, again.stderr
    assert "differs" not in again.stdout
    assert (root / "compose.yaml").read_text() == compose


def test_asking_for_what_is_not_there_names_what_was_found(tmp_path: Path) -> None:
    root = write_teamproj(tmp_path)
    (root / "teamproj" / "celery.py").write_text("# the app moved elsewhere\n")
    (root / "teamproj" / "__init__.py").write_text("")
    findings = find_sides(root, "", settings_of(root))
    worker = [f for f in findings if f.kind == "worker"]
    assert len(worker) == 1 and worker[0].problem
    assert "teamproj/settings.py:22 sets CELERY_BROKER_URL" in worker[0].problem
    assert "CSERVER_SIDE_PROCESSES" in worker[0].problem
    with pytest.raises(SidesError, match=r"^--with worker: teamproj/settings.py:22 sets"):
        chosen(findings, {"worker"}, set())
    proc = init(root, "--with", "worker")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "no Celery app (`Celery(...)`) was found" in proc.stderr


def test_a_literal_localhost_broker_is_a_problem_an_environment_default_is_not(
    tmp_path: Path,
) -> None:
    root = write_teamproj(tmp_path)
    settings = settings_of(root)
    assert local_broker_problems(root, settings) == []
    text = (
        settings[0]
        .read_text()
        .replace(
            'os.environ.get("REDIS_URL", "redis://localhost:6379/0")', '"redis://localhost:6379/0"'
        )
    )
    settings[0].write_text(text)
    (problem,) = local_broker_problems(root, settings)
    assert problem.problem is not None
    assert problem.problem.startswith("teamproj/settings.py:21 uses redis://localhost")
    assert "redis://redis:6379/0" in problem.problem


@pytest.mark.parametrize(
    ("script", "output"),
    [
        ("esbuild src/app.js --bundle --outdir=static/build", "static/build"),
        ("tailwindcss -i in.css -o ./static/css/site.css --watch", "static/css"),
        ("webpack --watch --output-path assets/dist", "assets/dist"),
        ("vite build --out-dir ../outside", None),
        ("node build.js", None),
    ],
)
def test_the_asset_output_comes_from_the_script(
    tmp_path: Path, script: str, output: str | None
) -> None:
    root = write_teamproj(tmp_path)
    (root / "package.json").write_text(json.dumps({**PACKAGE_JSON, "scripts": {"dev": script}}))
    (assets,) = [f for f in find_sides(root, "", settings_of(root)) if f.kind == "assets"]
    assert assets.side is not None
    assert (assets.side.command, assets.side.output) == ("npm run dev", output)


def test_a_package_json_that_is_not_json_is_one_problem(tmp_path: Path) -> None:
    root = write_teamproj(tmp_path)
    (root / "package.json").write_text("{ not json")
    (assets,) = [f for f in find_sides(root, "", settings_of(root)) if f.kind == "assets"]
    assert assets.problem == "package.json is not valid JSON"


def test_a_declared_npm_script_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    root = write_teamproj(tmp_path)
    declared = json.dumps({"css": "npm run watchh"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSERVER_", "DJANGO_"))}
    env["CSERVER_SIDE_PROCESSES"] = declared
    expected = (
        "side process 'css' runs `npm run watchh`, but package.json has no script 'watchh' "
        "(it has: build, watch): fix its command in CSERVER_SIDE_PROCESSES"
    )
    proc = run_cserver(root, "init", env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"cserver init: error: {expected}"]
    assert not (root / "compose.yaml").exists()
    # cserver dev refuses it the same way, before starting anything.
    env.update(DJANGO_SETTINGS_MODULE="teamproj.settings", PYTHONPATH=str(root))
    dev = run_cserver(root, "dev", env=env)
    assert dev.returncode == 1
    assert dev.stderr.strip().splitlines() == [f"CommandError: {expected}"]
