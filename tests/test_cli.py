"""The `cserver` command line, run as `python -m cserver` in subprocesses."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import django
import requests

from cserver import __version__
from testkit.serverproc import server_env, start_server

TIMEOUT = 10


def cserver(
    *args: str, tmp: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m cserver args` in tmp with the demo's default settings (none preset)."""
    full_env = server_env(env, tmp=tmp)
    del full_env["DJANGO_SETTINGS_MODULE"]  # the CLI must pick the demo settings itself
    return subprocess.run(
        [sys.executable, "-m", "cserver", *args],
        env=full_env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cserver: error: ")
    return lines[0]


def test_help_lists_the_commands(tmp_path: Path) -> None:
    for args in [(), ("--help",), ("-h",)]:
        result = cserver(*args, tmp=tmp_path)
        assert result.returncode == 0, result
        assert result.stdout.startswith("usage: cserver <command>")
        for word in ["demo", "config", "probe", "runcserver", "manage.py command"]:
            assert word in result.stdout


def test_version(tmp_path: Path) -> None:
    result = cserver("--version", tmp=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(f"cserver {__version__} (Django {django.get_version()}, ")


def test_unknown_command_or_option_is_a_usage_error(tmp_path: Path) -> None:
    line = assert_one_line_error(cserver("frobnicate", tmp=tmp_path), 2)
    assert "unknown command 'frobnicate'" in line
    assert "demo, config, probe, runcserver" in line
    line = assert_one_line_error(cserver("migrat", tmp=tmp_path), 2)
    assert "did you mean 'migrate'?" in line
    line = assert_one_line_error(cserver("--frob", tmp=tmp_path), 2)
    assert "'--frob'" in line


def test_migrate_uses_the_demo_settings_and_sqlite_in_wal_mode(tmp_path: Path) -> None:
    result = cserver("migrate", "--noinput", tmp=tmp_path)
    assert result.returncode == 0, result
    assert "Applying cserver_demo.0001_initial... OK" in result.stdout
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "cserver_demo_counter" in tables
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_management_command_exit_status_propagates(tmp_path: Path) -> None:
    result = cserver("migrate", "nosuchapp", tmp=tmp_path)
    assert result.returncode == 1
    assert "No installed app with label 'nosuchapp'" in result.stderr


def test_django_help_names_cserver_as_the_program(tmp_path: Path) -> None:
    result = cserver("help", tmp=tmp_path)
    assert result.returncode == 0, result
    assert "Type 'cserver help <subcommand>'" in result.stdout
    assert "runcserver" in result.stdout


def test_config_and_probe_are_short_for_the_cserver_commands(tmp_path: Path) -> None:
    for short, command in [("config", "cserver_config"), ("probe", "cserver_probe")]:
        result = cserver(short, "--help", tmp=tmp_path)
        assert result.returncode == 0, result
        assert f"usage: cserver {command}" in result.stdout


def test_bad_database_url_is_one_line_without_the_password(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgres://app:hunter2@db:54x2/shop"}
    line = assert_one_line_error(cserver("check", tmp=tmp_path, env=env), 2)
    assert "DATABASE_URL='postgres://app:***@db:54x2/shop' is not valid" in line
    assert "hunter2" not in line


def test_bad_settings_module_is_one_line(tmp_path: Path) -> None:
    # --settings must take effect before the CLI loads settings for its own checks.
    result = cserver("check", "--settings=no_such_pkg.settings", tmp=tmp_path)
    line = assert_one_line_error(result, 2)
    assert "'no_such_pkg.settings'" in line


def test_demo_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    # Port 1 on loopback refuses at once; the migrate step fails before any server starts.
    env = {"DATABASE_URL": "postgres://app:hunter2@127.0.0.1:1/shop?connect_timeout=5"}
    line = assert_one_line_error(cserver("demo", "--noreload", tmp=tmp_path, env=env), 1)
    assert "cannot migrate the postgresql database 'shop'" in line
    assert "hunter2" not in line


def test_demo_migrates_then_serves_with_the_reloader(tmp_path: Path) -> None:
    env = server_env({"DJANGO_CONN_MAX_AGE": "None"}, tmp=tmp_path)
    del env["DJANGO_SETTINGS_MODULE"]
    args = ["--mode", "pool", "--workers", "1"]
    with start_server(args, env=env, command="demo", noreload=False, cwd=tmp_path) as server:
        # The counter table exists: `demo` migrated the fresh database before serving.
        counter = requests.get(server.url("/counter"), timeout=TIMEOUT)
        assert (counter.status_code, counter.json()) == (200, {"racy": 0, "safe": 0})
        first, second = (
            requests.get(server.url("/whoami"), timeout=TIMEOUT).json() for _ in range(2)
        )
    assert (first["mode"], first["worker"]) == ("pool", "pool-1")
    # One pool worker with CONN_MAX_AGE=None keeps its connection between requests.
    assert second["conn"] == "reused"
    assert second["db_backend_pid"] == first["db_backend_pid"]
    assert (tmp_path / "demo.sqlite3").is_file()
    banner = f"cserver demo: SQLite database {tmp_path / 'demo.sqlite3'} (CONN_MAX_AGE=None)"
    assert server.output().count(banner) == 1  # printed by the supervisor, not each generation
