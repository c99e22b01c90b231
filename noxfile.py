"""Development sessions: the pinned toolchain and the Python x Django matrix.

    python -m nox -s lock      # re-pin every dependency in constraints.txt
    python -m nox -s tests     # a fast subset on each supported Python x Django pair
    python -m nox -s "tests(3.10-django4.2)"  # one pair (python -m nox -l lists them)

Every session installs with ``-c constraints.txt``, so a new machine gets the same tools
as CI. The matrix sessions drop Django's pin and install the Django of their pair.
Interpreters are looked up on PATH, then in pyenv's versions (~/.pyenv, or $PYENV_ROOT).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ROOT / "constraints.txt"

# uv builds each session's environment in seconds where pip takes a minute; it comes with
# the dev extra, so nox finds it next to itself.
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
# A pair whose interpreter is missing fails instead of being skipped, here as in CI.
nox.options.error_on_missing_interpreters = True

# Each Django release with a Python it supports; together they cover 3.10 to 3.13.
MATRIX = [
    ("3.10", "4.2"),
    ("3.11", "5.0"),
    ("3.11", "5.1"),
    ("3.11", "5.2"),
    ("3.12", "6.0"),
    ("3.13", "6.1"),
]

# The fast subset each pair runs (the whole suite runs once, on the main pair, in CI):
# config, the command line, Django's own runserver tests, one real server per mode, the
# reloader's basics, the demo database on SQLite and one PostgreSQL connection test.
SUBSET = [
    "tests/test_config.py",
    "tests/test_command_defaults.py",
    # runserver's behaviour with a real server: banner and checks, --skip-checks, the
    # migration warning, static files, the port-in-use message (parsing is in-process in
    # Django's own tests above).
    "tests/test_runcserver.py::test_banner_request_log_and_checks",
    "tests/test_runcserver.py::test_skip_checks",
    "tests/test_runcserver.py::test_unapplied_migrations_warning",
    "tests/test_runcserver.py::test_static_files_like_runserver",
    "tests/test_runcserver.py::test_port_in_use_is_runservers_message_and_exit_1",
    "tests/test_django_runserver_tests.py",
    "tests/server/test_concurrency.py::test_eight_slow_requests_overlap",
    "tests/test_reloader.py::test_import_error_is_served_as_500_then_fixed_without_action",
    "tests/test_reloader.py::test_template_edit_needs_no_restart",
    "tests/test_reloader.py::test_sighup_starts_a_new_generation",
    "tests/test_cli.py::test_migrate_uses_the_demo_settings_and_sqlite_in_wal_mode",
    "tests/test_connections_pg.py::test_sessions_per_mode_and_conn_max_age[pool-None]",
    # asgi mode: the project through uvicorn (banner, log, static files), SSE streaming,
    # and the one-line error without uvicorn.
    "tests/test_asgi.py::test_serves_the_project_static_files_banner_and_log",
    "tests/test_asgi.py::test_sse_events_arrive_before_the_stream_ends",
    "tests/test_asgi.py::test_without_uvicorn_one_line_error_and_nonzero_exit",
]


def find_pyenv_interpreters() -> None:
    """Let nox find pyenv's interpreters (python3.X) after whatever PATH already has."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    bins = [str(path) for path in sorted(root.glob("3.*/bin"), reverse=True)]
    os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *bins])
    # Never fetch an interpreter: a missing one should fail the session, not download.
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


find_pyenv_interpreters()


def oldest_python() -> str:
    """The lower bound of pyproject's requires-python, e.g. "3.10"."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^requires-python\s*=\s*">=\s*(\d+\.\d+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError('pyproject.toml has no requires-python = ">=X.Y"')
    return match.group(1)


@nox.session(python=False)
def lock(session: nox.Session) -> None:
    """Resolve the newest allowed versions for every supported Python into constraints.txt."""
    # uv's universal lock starts from the interpreter it runs on unless told the oldest
    # supported one; it only needs the version to resolve markers, never to download it.
    session.run(
        sys.executable,  # nox's own interpreter, where the dev extra put uv
        "-m",
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--all-extras",
        "--universal",
        "--upgrade",
        "--python-version",
        oldest_python(),
        "--quiet",
        "--output-file",
        str(CONSTRAINTS),
        "--custom-compile-command",
        "python -m nox -s lock",
        env={"UV_PYTHON_DOWNLOADS": "never"},
    )


def constraints_without_django(session: nox.Session) -> str:
    """constraints.txt minus its Django pins, in the session's temporary directory."""
    kept = [
        line
        for line in CONSTRAINTS.read_text().splitlines()
        if not re.match(r"django\s*==", line, re.IGNORECASE)
    ]
    path = Path(session.create_tmp()) / "constraints-without-django.txt"
    path.write_text("\n".join(kept) + "\n")
    return str(path)


@nox.session(venv_params=["--seed"])  # pip too: the suite downloads Django's sdist with it
@nox.parametrize(("python", "django"), MATRIX, ids=[f"{py}-django{dj}" for py, dj in MATRIX])
def tests(session: nox.Session, django: str) -> None:
    """The fast subset and Django's own runserver tests on one Python x Django pair."""
    session.install(
        "-e", ".[dev]", "-c", constraints_without_django(session), f"django~={django}.0"
    )
    major, minor = django.split(".")
    session.run(
        "python",
        "-c",
        f"import django, sys; print('Django', django.get_version()); "
        f"sys.exit(django.VERSION[:2] != ({major}, {minor}))",
    )
    session.run("python", "-m", "pytest", "-q", "-p", "no:randomly", *SUBSET, *session.posargs)
