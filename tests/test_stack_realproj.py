"""`cserver init` on a project laid out like a real one (tests/realproj.py), without Docker.

The settings in use (not a sibling module), absolute paths, the variables the settings read,
the bootstrap command, recorded choices, and the settings shim every process of the image
imports: a plain `manage.py` process sees the stack's database.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cserver.stack.detect import Overrides, detect
from cserver.stack.render import render
from cserver.stack_overrides import apply_stack_values
from tests.realproj import API_TOKEN_VAR, MEDIA_ROOT, OWN_DOCKERIGNORE, write_realproj

BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("CSERVER_", "DJANGO_"))}
STACK_URL = "postgres://stack:s3cret@db:5432/realproj"


def run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env={**BASE_ENV, **env}, capture_output=True, text=True, timeout=120
    )


def cserver(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # `python` in a bootstrap command is this interpreter, as the image's venv is there.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return run([sys.executable, "-m", "cserver", *args], root, PATH=path, **env)


@pytest.fixture
def realproj(tmp_path: Path) -> Path:
    root = write_realproj(tmp_path)
    (root / "uv.lock").write_text("version = 1\n")  # detection only: never installed here
    return root


def test_detection_reads_the_settings_in_use_only(realproj: Path) -> None:
    project = detect(realproj)
    assert project.settings_module == "realproj.settings.dev"
    # base.py (imported by dev.py) sets MEDIA_ROOT absolute; ci.py, a sibling, is never read.
    assert project.media_dir == MEDIA_ROOT and project.media_mount == MEDIA_ROOT
    assert project.static_root is None
    reads = {read.name: read.required for read in project.env_reads}
    assert reads == {
        "DJANGO_SECRET_KEY": False,
        API_TOKEN_VAR: True,
        "DJANGO_DB_ENGINE": True,
        "DJANGO_DB_NAME": False,
    }
    assert project.bootstrap == "python -m django loaddata categories"
    files = render(project)
    compose = files["compose.yaml"].decode()
    assert "- media:/home/app/media\n" in compose
    assert "home/app/media" not in compose.replace("/home/app/media", "")
    # What the settings read about the database gets the stack's values, fixed.
    assert "  DJANGO_DB_ENGINE: django.db.backends.postgresql\n" in compose
    assert "  DJANGO_DB_NAME: ${POSTGRES_DB:-realproj}\n" in compose
    assert (
        "CSERVER_BOOTSTRAP: ${CSERVER_BOOTSTRAP:-python -m django loaddata categories}" in compose
    )
    assert f"#{API_TOKEN_VAR}=" in files[".env.example"].decode()
    # Another settings module: the one given wins, and its own paths follow.
    ci = detect(
        realproj,
        __import__("cserver.stack.detect").stack.detect.Overrides(settings="realproj.settings.ci"),
    )
    assert (ci.media_dir, ci.static_root) == ("ci-media", "ci-static")


def test_dockerfile_keeps_the_dependency_layer_apart_from_the_settings(realproj: Path) -> None:
    dev = render(detect(realproj))["docker/Dockerfile"].decode()
    ci = render(detect(realproj, Overrides(settings="realproj.settings.ci")))["docker/Dockerfile"]
    export = dev.index("&& uv export")
    # Everything up to the end of the dependency layers is the same for both modules.
    installed = dev.index("# Below the dependencies")
    assert dev[:installed].count("realproj.settings") == 0
    assert ci.decode()[:installed] == dev[:installed]
    assert dev.index("ENV DJANGO_SETTINGS_MODULE=cserver.project_settings") > export
    assert "--no-default-groups" in dev[export : dev.index("\n", export)]
    with_dev = render(detect(realproj, Overrides(dev_deps=True)))["docker/Dockerfile"].decode()
    assert "--no-default-groups" not in with_dev


def test_choices_are_recorded_and_a_rerun_keeps_them(realproj: Path) -> None:
    first = cserver(realproj, "init", "--settings", "realproj.settings.ci", "--bootstrap", "")
    assert first.returncode == 0, first.stderr
    compose = (realproj / "compose.yaml").read_text()
    assert 'x-cserver: {"bootstrap": "", "settings": "realproj.settings.ci"}' in compose
    assert "media:/app/ci-media" in compose
    again = cserver(realproj, "init")
    assert again.returncode == 0, again.stderr
    assert "unchanged    compose.yaml" in again.stdout
    assert (realproj / ".dockerignore").read_text().startswith(OWN_DOCKERIGNORE)
    assert "ci-media" in (realproj / ".dockerignore").read_text()


def test_every_process_sees_the_stack_database_through_the_shim(realproj: Path) -> None:
    show = (
        "from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['ENGINE'], d['HOST'], d['NAME'], 'cserver' in s.INSTALLED_APPS)"
    )
    stack = {
        "DJANGO_SETTINGS_MODULE": "cserver.project_settings",
        "CSERVER_PROJECT_SETTINGS": "realproj.settings.dev",
        "CSERVER_DATABASE_URL": STACK_URL,
        "DJANGO_DB_ENGINE": "django.db.backends.sqlite3",
    }
    # A plain manage.py process, not `python -m cserver`: what a worker or `exec` runs.
    shell = run(
        [sys.executable, "manage.py", "shell", "-c", show],
        realproj,
        **stack,
        **{API_TOKEN_VAR: "t"},
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines()[-1] == "django.db.backends.postgresql db realproj True"
    # Without the shim the same command gets the settings' own database.
    plain = run(
        [sys.executable, "manage.py", "shell", "-c", show],
        realproj,
        DJANGO_DB_ENGINE="django.db.backends.sqlite3",
        **{API_TOKEN_VAR: "t"},
    )
    assert plain.stdout.splitlines()[-1].startswith("django.db.backends.sqlite3  ")
    missing = run([sys.executable, "manage.py", "check"], realproj, **stack)
    assert missing.returncode != 0
    assert f"need the environment variable {API_TOKEN_VAR}, which is not set" in missing.stderr
    assert "s3cret" not in missing.stderr


def test_local_redis_urls_point_at_the_stack() -> None:
    settings = {
        "CELERY_BROKER_URL": "redis://localhost:6379/1",
        "CELERY_RESULT_BACKEND": "redis://127.0.0.1/2",
        "REDIS_URL": "redis://cache.example.com:6379/0",  # somewhere else: left alone
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": ["redis://localhost:6379/3", "redis://replica.example:6379/3"],
            },
            "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        },
        "CHANNEL_LAYERS": {"default": {"CONFIG": {"hosts": ["redis://localhost:6379/4"]}}},
        "INSTALLED_APPS": ["django.contrib.contenttypes"],
    }
    changed = apply_stack_values(settings, {"CSERVER_REDIS_URL": "redis://redis:6379/0"})
    assert settings["CELERY_BROKER_URL"] == "redis://redis:6379/1"
    assert settings["CELERY_RESULT_BACKEND"] == "redis://redis:6379/2"
    assert settings["REDIS_URL"] == "redis://cache.example.com:6379/0"
    caches = settings["CACHES"]
    assert caches["default"]["LOCATION"] == [
        "redis://redis:6379/3",
        "redis://replica.example:6379/3",
    ]
    assert settings["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == ["redis://redis:6379/4"]
    assert changed == [
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "CACHES['default']",
        "CHANNEL_LAYERS['default']",
    ]
    assert settings["INSTALLED_APPS"][-1] == "cserver"


def test_bootstrap_runs_once_per_database(realproj: Path) -> None:
    env = {
        "DJANGO_SETTINGS_MODULE": "realproj.settings.dev",
        "DJANGO_DB_ENGINE": "django.db.backends.sqlite3",
        API_TOKEN_VAR: "t",
        "CSERVER_BOOTSTRAP": "python manage.py loaddata categories",
    }
    assert cserver(realproj, "migrate", "--noinput", **env).returncode == 0
    first = cserver(realproj, "bootstrap", **env)
    assert first.returncode == 0, first.stderr
    assert "bootstrap: running python manage.py loaddata categories" in first.stdout
    assert "Installed 1 object(s)" in first.stdout
    database = sqlite3.connect(realproj / "db.sqlite3")
    try:
        database.execute("DELETE FROM catalog_category")
        database.commit()
        second = cserver(realproj, "bootstrap", **env)
        assert second.returncode == 0, second.stderr
        assert "bootstrap: already done for this database" in second.stdout
        assert database.execute("SELECT count(*) FROM catalog_category").fetchone() == (0,)
        again = cserver(realproj, "bootstrap", "--again", **env)
        assert again.returncode == 0 and "Installed 1 object(s)" in again.stdout
        failing = {**env, "CSERVER_BOOTSTRAP": "python manage.py loaddata nosuchfixture"}
        failed = cserver(realproj, "bootstrap", **failing)
        assert failed.returncode == 1
        assert re.search(r"bootstrap command exited with status 1: .*nosuchfixture", failed.stderr)
        rows = database.execute("SELECT command FROM cserver_bootstrap").fetchall()
        assert rows == [("python manage.py loaddata categories",)]  # no marker for a failure
    finally:
        database.close()


def test_doctor_names_the_variable_the_settings_need(realproj: Path) -> None:
    assert cserver(realproj, "init").returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"CSERVER_IMAGE": "cserver-doctor-never-built", "CSERVER_HOST_PORT": str(port)}
    doctor = cserver(realproj, "doctor", **env)
    assert doctor.returncode == 1
    [line] = [line for line in doctor.stdout.splitlines() if API_TOKEN_VAR in line]
    assert line.startswith(f"problem not ready: the settings need {API_TOKEN_VAR}")
    assert "realproj/settings/base.py:6" in line
    (realproj / ".env").write_text(f"{API_TOKEN_VAR}=from-dotenv\n")
    fixed = cserver(realproj, "doctor", **env)
    # .env reaches the settings, and so do the values compose sets (DJANGO_DB_ENGINE).
    assert API_TOKEN_VAR not in fixed.stdout, fixed.stdout
    assert "ok      settings realproj.settings.dev import" in fixed.stdout
