"""`cserver init`: detection, overrides, dry run, no overwrite, idempotence (no Docker needed)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cserver.stack.detect import DetectError, Overrides, detect
from cserver.stack.render import render
from cserver.stack.wheel import build_wheel
from cserver.stack.write_plan import merged_ignore_file
from testkit.cli import run_cserver

ROOT = Path(__file__).resolve().parents[1]
HOST_LINE = f"{sys.version_info.major}.{sys.version_info.minor}"


def startproject(where: Path, name: str = "mysite") -> Path:
    """`django-admin startproject NAME DIR` plus a requirements.txt; returns DIR."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", name, str(where)],
        check=True,
        timeout=60,
    )
    (where / "requirements.txt").write_text("Django>=5.2\n")
    return where


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root, by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_demo_stack_is_what_init_writes_for_the_checkout() -> None:
    """One source of truth: the committed demo stack is init's output for cserver's checkout."""
    files = render(detect(ROOT))
    assert set(files) == {
        "compose.yaml",
        "docker/Dockerfile",
        ".dockerignore",
        ".gitignore",
        ".env.example",
        ".devcontainer/devcontainer.json",
        ".devcontainer/compose.devcontainer.yaml",
    }
    for name, data in files.items():
        current = (ROOT / name).read_bytes()
        if name == ".gitignore":
            # The checkout's own .gitignore: init would only add what it lacks.
            assert merged_ignore_file(current, data) == current, f"{name} lacks init's lines"
            continue
        assert current == data, (
            f"{name} differs from what `cserver init` writes: run `python -m cserver init "
            "--force` in the checkout and commit the result"
        )


def test_startproject_is_detected(tmp_path: Path) -> None:
    project = detect(startproject(tmp_path / "p"))
    assert project.settings_module == "mysite.settings"
    assert project.sources["settings"] == "manage.py"
    assert (project.deps.kind, project.deps.files) == ("requirements", ("requirements.txt",))
    assert project.deps.has_driver is False
    assert project.python_line == HOST_LINE
    assert project.database == "cserver"  # startproject's settings name a SQLite file
    assert project.staticfiles is True
    assert (project.media_dir, project.static_root, project.source_root) == (None, None, "")


def test_init_writes_the_stack_and_says_what_it_found(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p")
    before = snapshot(root)
    proc = run_cserver(root, "init")
    assert proc.returncode == 0, proc.stderr
    written = set(snapshot(root)) - set(before)
    wheel = f"docker/cserver-{__import__('cserver').__version__}-py3-none-any.whl"
    assert written == {
        "compose.yaml",
        "docker/Dockerfile",
        ".dockerignore",
        ".gitignore",
        ".env.example",
        ".devcontainer/devcontainer.json",
        ".devcontainer/compose.devcontainer.yaml",
        wheel,
    }
    assert {k: v for k, v in snapshot(root).items() if k in before} == before
    for expected in (
        "mysite.settings",
        "requirements.txt",
        "psycopg[binary]",
        "cserver.project_settings",
    ):
        assert expected in proc.stdout
    assert "docker compose up" in proc.stdout.splitlines()[-1]
    dockerfile = (root / "docker/Dockerfile").read_text()
    assert f"FROM python:{HOST_LINE}-slim\n" in dockerfile
    assert '"psycopg[binary]"' in dockerfile
    compose = (root / "compose.yaml").read_text()
    assert "CSERVER_DATABASE_URL: postgres://" in compose


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p")
    before = snapshot(root)
    proc = run_cserver(root, "init", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert snapshot(root) == before
    assert "would write  compose.yaml" in proc.stdout
    assert "nothing was written" in proc.stdout


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p")
    assert run_cserver(tmp_path, "init", str(root)).returncode == 0
    after_first = snapshot(root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    second = run_cserver(tmp_path, "init", str(root))
    assert second.returncode == 0, second.stderr
    assert snapshot(root) == after_first
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes
    assert second.stdout.count("unchanged") == 8


def test_existing_files_are_merged_or_kept_and_never_lost(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p")
    (root / "compose.yaml").write_text("services: {}\n")
    (root / ".dockerignore").write_text("mine\n")
    before = snapshot(root)
    dry = run_cserver(root, "init", "--dry-run")
    assert dry.returncode == 0, dry.stderr  # a dry run always shows the whole plan
    assert "would merge  .dockerignore (+ .git, .env" in dry.stdout
    assert "differs      compose.yaml" in dry.stdout
    assert "      -services: {}" in dry.stdout  # the diff, from theirs to init's
    assert "would write  docker/Dockerfile" in dry.stdout
    assert snapshot(root) == before
    proc = run_cserver(root, "init")
    assert proc.returncode == 1
    [error] = proc.stderr.strip().splitlines()
    assert error.startswith("cserver init: error: compose.yaml differs from what init writes")
    assert "--force replaces, keeping NAME.orig" in error and "Traceback" not in proc.stderr
    assert snapshot(root) == before, "a conflict must leave every file as it was"
    forced = run_cserver(root, "init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "replaced     compose.yaml (yours kept as compose.yaml.orig)" in forced.stdout
    assert (root / "compose.yaml").read_text().startswith("# Development stack")
    assert (root / "compose.yaml.orig").read_text() == "services: {}\n"
    ignored = (root / ".dockerignore").read_text().splitlines()
    assert ignored[0] == "mine" and ".env" in ignored and "# Added by cserver init" in ignored
    again = run_cserver(root, "init")
    assert again.returncode == 0 and "unchanged    .dockerignore" in again.stdout


def test_detection_of_a_configured_project(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p", "shop")
    settings = root / "shop" / "settings.py"
    settings.write_text(
        "import dj_database_url\n"
        + settings.read_text()
        + "\nDATABASES = {'default': dj_database_url.config()}\n"
        + "MEDIA_ROOT = BASE_DIR / 'uploads'\nSTATIC_ROOT = BASE_DIR / 'collected'\n"
    )
    (root / "requirements.txt").write_text("-r requirements/base.txt\npytest\n")
    (root / "requirements").mkdir()
    (root / "requirements" / "base.txt").write_text("Django==5.1.4\npsycopg2-binary>=2.9\n")
    (root / ".python-version").write_text("3.11.9\n")
    project = detect(root)
    assert project.deps.files == ("requirements.txt", "requirements/base.txt")
    assert project.deps.has_driver is True
    assert (project.python_line, project.sources["python"]) == ("3.11", ".python-version")
    assert project.database == "url"
    assert (project.media_dir, project.static_root) == ("uploads", "collected")
    files = render(project)
    assert "python:3.11-slim" in files["docker/Dockerfile"].decode()
    assert "target=/tmp/deps/requirements/base.txt" in files["docker/Dockerfile"].decode()
    compose = files["compose.yaml"].decode()
    assert "      DATABASE_URL: postgres://" not in compose  # only the probe's copy is absent
    assert "  DATABASE_URL: postgres://" in compose
    assert "media:/app/uploads" in compose
    assert "collected" in files[".dockerignore"].decode()
    # Every detected value yields to its flag.
    overridden = detect(
        root,
        Overrides(
            settings="shop.settings",
            deps="requirements/base.txt",
            python="3.13",
            database="cserver",
            media_dir="",
            static_root="",
        ),
    )
    assert overridden.deps.files == ("requirements/base.txt",)
    assert overridden.python_line == "3.13"
    assert overridden.database == "cserver"
    assert (overridden.media_dir, overridden.static_root) == (None, None)


def test_python_line_from_an_existing_dockerfile(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p")
    (root / "Dockerfile").write_text("FROM python:3.12-slim-bookworm AS builder\nRUN true\n")
    project = detect(root)
    assert (project.python_line, project.sources["python"]) == ("3.12", "FROM in ./Dockerfile")
    (root / ".python-version").write_text("3.13\n")  # an explicit pin wins
    assert detect(root).python_line == "3.13"


def test_pyproject_src_layout_and_uv_lock(tmp_path: Path) -> None:
    root = tmp_path / "p"
    startproject(root / "src", "shop")
    (root / "src" / "manage.py").rename(root / "manage.py")
    (root / "src" / "requirements.txt").unlink()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "Shop-App"\nversion = "1"\nrequires-python = ">=3.11,<3.13"\n'
        'dependencies = ["django>=5.2", "psycopg[binary]"]\n'
    )
    project = detect(root)
    assert (project.settings_module, project.source_root) == ("shop.settings", "src")
    assert (project.deps.kind, project.deps.has_driver) == ("pyproject", True)
    assert project.python_line == "3.12"  # the newest supported line requires-python allows
    assert project.name == "shopapp"
    dockerfile = render(project)["docker/Dockerfile"].decode()
    assert "PYTHONPATH=/app/src" in dockerfile
    (root / "uv.lock").write_text("version = 1\n")
    locked = detect(root)
    assert (locked.deps.kind, locked.deps.files) == ("uv", ("pyproject.toml", "uv.lock"))
    assert "uv export" in render(locked)["docker/Dockerfile"].decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--python", "2.7"], "--python '2.7' is not valid: cserver needs Python 3.10 or newer"),
        (["--python", "three"], "--python 'three' is not valid: expected a version like 3.12"),
        (["--settings", "a b"], "--settings 'a b' is not valid"),
        (["--settings", "nowhere.settings"], "settings module 'nowhere.settings' not found"),
        (["--deps", "missing.txt"], "--deps 'missing.txt' is not a file"),
        (["--media-dir", "../x"], "--media-dir '../x' is not valid"),
    ],
)
def test_bad_overrides_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    root = startproject(tmp_path / "p")
    before = snapshot(root)
    proc = run_cserver(root, "init", *args)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("cserver init: error: ") and message in line
    assert snapshot(root) == before


def test_no_project_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DetectError, match=r"no manage\.py"):
        detect(tmp_path)
    proc = run_cserver(tmp_path, "init", str(tmp_path))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1


def test_wheel_is_reproducible_and_complete(tmp_path: Path) -> None:
    data = build_wheel()
    assert build_wheel() == data
    path = tmp_path / "w.whl"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert "cserver/__init__.py" in names
        assert "cserver/stack/templates/compose.yaml.tmpl" in names
        assert not any("__pycache__" in n for n in names)
        [record] = [n for n in names if n.endswith(".dist-info/RECORD")]
        for line in archive.read(record).decode().splitlines():
            name, digest, _ = line.rsplit(",", 2)
            if digest:
                raw = hashlib.sha256(archive.read(name)).digest()
                assert digest == "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_cserver_commands_run_in_a_project_without_the_app(tmp_path: Path) -> None:
    """runcserver through `cserver` needs no change to INSTALLED_APPS; CSERVER_DATABASE_URL
    replaces DATABASES['default'] there and keeps the project's connection settings."""
    root = startproject(tmp_path / "p")
    settings = root / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + "\nDATABASES['default']['CONN_MAX_AGE'] = 30\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CSERVER_", "DJANGO_"))},
        "DJANGO_SETTINGS_MODULE": "mysite.settings",
    }
    helped = subprocess.run(
        [sys.executable, "-m", "cserver", "runcserver", "--help"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0, helped.stderr
    show = "from django.db import connection as c; s = c.settings_dict; "
    show += "print(s['ENGINE'], s['NAME'], s['HOST'], s['CONN_MAX_AGE']); "
    show += "from django.apps import apps; print(apps.is_installed('django.contrib.postgres'))"
    url = "postgres://u:secret@db.example:5432/shop"
    proc = subprocess.run(
        [sys.executable, "-m", "cserver", "shell", "-c", show],
        cwd=root,
        env={**env, "CSERVER_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    *_, location, postgres_app = proc.stdout.splitlines()
    assert location.split() == ["django.db.backends.postgresql", "shop", "db.example", "30"]
    assert postgres_app == "True"  # what apps that detect PostgreSQL need
    plain = subprocess.run(
        [sys.executable, "-m", "cserver", "shell", "-c", show],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.stdout.splitlines()[-2].split()[0] == "django.db.backends.sqlite3"
    assert plain.stdout.splitlines()[-1] == "False"
    bad = subprocess.run(
        [sys.executable, "-m", "cserver", "check"],
        cwd=root,
        env={**env, "CSERVER_DATABASE_URL": "mysql://u:secret@h/x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    [line] = bad.stderr.strip().splitlines()
    assert line.startswith("cserver: error: CSERVER_DATABASE_URL='mysql://u:***@h/x' is not valid")
    assert "secret" not in bad.stderr


def test_doctor_reports_a_bad_env_value_like_runcserver(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p")
    assert run_cserver(root, "init").returncode == 0
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    (root / ".env").write_text(f"CSERVER_WORKERS=0\nCSERVER_HOST_PORT={port}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSERVER_", "DJANGO_"))}
    doctor = subprocess.run(
        [sys.executable, "-m", "cserver", "doctor"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert doctor.returncode == 1
    assert "Traceback" not in doctor.stdout + doctor.stderr
    runcserver = subprocess.run(
        [sys.executable, "-m", "cserver", "runcserver", "--noreload"],
        cwd=root,
        env={**env, "DJANGO_SETTINGS_MODULE": "mysite.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    busy.close()
    [message] = [line for line in runcserver.stderr.splitlines() if "CSERVER_WORKERS" in line]
    assert message.startswith("Error: ")
    lines = doctor.stdout.splitlines()
    assert f"problem {message.removeprefix('Error: ')}" in lines, lines
    assert any(line.startswith(f"problem 127.0.0.1:{port} is not free") for line in lines), lines
    assert any(line.startswith("ok      settings mysite.settings import") for line in lines)


def test_devcontainer_json_is_written_for_the_stack(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p")
    proc = run_cserver(root, "init")
    assert proc.returncode == 0, proc.stderr
    config = json.loads((root / ".devcontainer/devcontainer.json").read_text())
    assert config["dockerComposeFile"] == ["../compose.yaml", "compose.devcontainer.yaml"]
    assert (config["service"], config["workspaceFolder"], config["remoteUser"]) == (
        "web",
        "/app",
        "app",
    )
    assert config["runServices"] == ["db", "migrate", "bootstrap", "web"]
    assert config["forwardPorts"] == [8000]
    override = (root / ".devcontainer/compose.devcontainer.yaml").read_text()
    assert "source: .\n" in override and "target: /app\n" in override


def test_devcontainer_json_is_merged_keeping_every_user_key(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p")
    mine = root / ".devcontainer/devcontainer.json"
    mine.parent.mkdir()
    original = (
        "{\n"
        "  // the team's own container name, kept\n"
        '  "name": "team box",\n'
        '  "forwardPorts": [5678], /* a debugger */\n'
        '  "features": {"ghcr.io/devcontainers/features/git:1": {}},\n'
        '  "customizations": {"vscode": {"extensions": ["charliermarsh.ruff"]}},\n'
        '  "url": "http://example.com/a//b",\n'
        "}\n"
    )
    mine.write_text(original)
    proc = run_cserver(root, "init")
    assert proc.returncode == 0, proc.stderr
    assert "merged       .devcontainer/devcontainer.json (yours, with its comments, kept as " in (
        proc.stdout
    )
    merged = json.loads(mine.read_text())
    assert merged["name"] == "team box"
    assert merged["forwardPorts"] == [5678, 8000]
    assert merged["features"] == {"ghcr.io/devcontainers/features/git:1": {}}
    assert merged["url"] == "http://example.com/a//b"  # a // inside a string is no comment
    extensions = merged["customizations"]["vscode"]["extensions"]
    assert extensions[0] == "charliermarsh.ruff" and "ms-python.python" in extensions
    assert merged["service"] == "web" and merged["workspaceFolder"] == "/app"
    assert (mine.parent / "devcontainer.json.orig").read_text() == original
    again = run_cserver(root, "init")
    assert again.returncode == 0 and "unchanged    .devcontainer/devcontainer.json" in again.stdout


def test_a_devcontainer_json_that_is_not_json_is_kept_unless_forced(tmp_path: Path) -> None:
    root = startproject(tmp_path / "p")
    mine = root / ".devcontainer/devcontainer.json"
    mine.parent.mkdir()
    mine.write_text("{ not json\n")
    proc = run_cserver(root, "init")
    assert proc.returncode == 1
    assert "devcontainer.json differs" in proc.stderr
    assert mine.read_text() == "{ not json\n"
