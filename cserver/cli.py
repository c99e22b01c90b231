"""The `cserver` console command: the demo, cserver's own commands, and any manage.py command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from difflib import get_close_matches

from cserver import __version__
from cserver.database_override import DatabaseOverrideError, apply_database_override

DEMO_SETTINGS = "cserver.demo.settings"
PROG = "cserver"

# Short names for cserver's management commands.
# Commands about the compose stack: they read a project's files, not its settings.
STACK_COMMANDS = frozenset({"init", "doctor"})

ALIASES = {
    "config": "cserver_config",
    "probe": "cserver_probe",
    "bootstrap": "cserver_bootstrap",
    "dev": "cserver_dev",
}

# Server commands skip the up-front django.setup(): Django's autoreloader must be the one
# to import the project, so that a broken app module waits for a fix instead of crashing.
SERVER_COMMANDS = frozenset({"runcserver", "runconcurrentserver", "runserver"})

# Options after which `cserver demo` only prints something, so migrating first is pointless.
_NO_MIGRATE = frozenset({"-h", "--help", "--version", "--print-config"})

USAGE = f"""\
usage: {PROG} <command> [arguments]

Commands:
  demo [runcserver args]   run the built-in demo project (SQLite unless DATABASE_URL is set):
                           migrates its database, then starts runcserver
  runcserver [addrport]    the concurrent development server, a drop-in for runserver
  dev [runcserver args]    runcserver plus the side processes (Celery worker and beat, npm
                           watch, CSERVER_SIDE_PROCESSES) in one prefixed stream
  config [args]            show cserver's resolved configuration and where each value comes from
  probe [args]             probe a running server's concurrency and database connection reuse
  bootstrap [--again]      run CSERVER_BOOTSTRAP once per database (the stack runs it after migrate)
  init [PATH]              write the compose dev environment (PostgreSQL) into a Django project
  doctor [PATH]            check Docker, Compose, the port, .env and the settings before `up`
  <manage.py command>      any Django management command: migrate, runserver, shell, check, ...
                           ('{PROG} help' lists them, '{PROG} help <command>' explains one)

Without DJANGO_SETTINGS_MODULE (or --settings), commands use the demo project's settings.

Options:
  -h, --help               show this message
  --version                show the versions of cserver, Django and Python
"""


def _error(message: str, status: int = 2) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def _exit_status(exc: SystemExit) -> int:
    """Map SystemExit.code the way the interpreter would."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _apply_default_options(args: list[str]) -> None:
    """Honour --settings/--pythonpath now: settings get loaded before Django parses them."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    try:
        options, _ = parser.parse_known_args(args)
    except SystemExit:  # e.g. "--settings" without a value: let Django's parser report it
        return
    if options.settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = options.settings
    if options.pythonpath:
        sys.path.insert(0, options.pythonpath)


def _settings_problem() -> str | None:
    """Load the settings; a one-line description of what is wrong, or None."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    try:
        settings.INSTALLED_APPS  # noqa: B018 - the access is what loads the settings
    except ImproperlyConfigured as exc:
        return " ".join(str(exc).split())
    except ImportError as exc:
        return f"cannot import settings module {module!r} (DJANGO_SETTINGS_MODULE): {exc}"
    return None


def _ensure_cserver_app() -> None:
    """Make runcserver and cserver's commands available to a project that does not list the app.

    A project set up with `cserver init` runs `python -m cserver runcserver` without editing
    its settings; the app is added for commands run through `cserver` only.
    """
    from django.conf import settings

    apps = list(settings.INSTALLED_APPS)
    if not any(app == "cserver" or app.startswith("cserver.apps.") for app in apps):
        settings.INSTALLED_APPS = [*apps, "cserver"]


def _unknown_command(command: str) -> str | None:
    """Set Django up and return a one-line error if command is not a management command."""
    import django
    from django.core.management import get_commands

    django.setup()
    commands = get_commands()
    if command in commands or command == "help":
        return None
    names = ["demo", *STACK_COMMANDS, *ALIASES, *commands]
    close = get_close_matches(command, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"unknown command {command!r}{hint}: expected demo, config, probe, runcserver "
        f"or a manage.py command ('{PROG} help' lists them)"
    )


def run_management_command(args: list[str]) -> int:
    """Run a Django management command as `cserver <args>`; return its exit status."""
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line([PROG, *args])
    except SystemExit as exc:
        return _exit_status(exc)
    return 0


def _describe_database(db: dict) -> str:
    """Where the demo keeps its data, for the startup line (never the password)."""
    if db["ENGINE"].endswith("sqlite3"):
        where = f"SQLite database {db['NAME']}"
    else:
        host = db.get("HOST") or "local socket"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        where = f"{db['ENGINE'].rsplit('.', 1)[-1]} database {db['NAME']!r} on {host}{port}"
    pool = ", pool" if db.get("OPTIONS", {}).get("pool") else ""
    return f"{where} (CONN_MAX_AGE={db.get('CONN_MAX_AGE', 0)}{pool})"


def _demo(args: list[str]) -> int:
    """Migrate the demo database quietly, then serve it with runcserver."""
    from django.utils.autoreload import DJANGO_AUTORELOAD_ENV

    from cserver.generation import is_child

    # A reloader re-runs `cserver demo` in every server generation; the supervisor already
    # migrated, so the generations (cserver's or Django's reloader) go straight to serving.
    reloaded_child = is_child() or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"
    if not reloaded_child and not _NO_MIGRATE.intersection(args):
        import django
        from django.core.management import call_command
        from django.db import DatabaseError, connection

        from cserver.dbconn import first_line

        django.setup()
        try:
            call_command("migrate", interactive=False, verbosity=0)
        except DatabaseError as exc:
            where = f"{connection.vendor} database {connection.settings_dict['NAME']!r}"
            return _error(f"cannot migrate the {where}: {first_line(exc)}", 1)
        finally:
            connection.close()  # don't hand a connection made here to the server's workers
        print(f"cserver demo: {_describe_database(connection.settings_dict)}", flush=True)
    return run_management_command(["runcserver", *args])


def _stack_command(name: str, args: list[str]) -> int:
    """init and doctor work on a project's files, before (or without) its settings loading."""
    if name == "init":
        from cserver.stack.init_command import main as init_main

        return _run_argparse(init_main, args)
    from cserver.stack.doctor import main as doctor_main

    return _run_argparse(doctor_main, args)


def _run_argparse(command: Callable[[list[str]], int], args: list[str]) -> int:
    try:
        return command(args)
    except SystemExit as exc:  # argparse: --help, or a usage error already printed
        return _exit_status(exc)
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cserver` console script and `python -m cserver`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if args[0] == "--version":
        import platform

        import django

        versions = f"Django {django.get_version()}, Python {platform.python_version()}"
        print(f"{PROG} {__version__} ({versions})")
        return 0
    if args[0].startswith("-"):
        return _error(
            f"unrecognized option {args[0]!r}: expected a command first "
            f"(demo, config, probe, runcserver, a manage.py command) or --help / --version"
        )
    if args[0] in STACK_COMMANDS:
        return _stack_command(args[0], args[1:])
    command, rest = ALIASES.get(args[0], args[0]), args[1:]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEMO_SETTINGS)
    _apply_default_options(rest)
    problem = _settings_problem()
    if problem is not None:
        return _error(problem)
    _ensure_cserver_app()
    try:
        apply_database_override()
    except DatabaseOverrideError as exc:
        return _error(str(exc))
    try:
        if command == "demo":
            return _demo(rest)
        if command not in SERVER_COMMANDS:
            unknown = _unknown_command(command)
            if unknown is not None:
                return _error(unknown)
        return run_management_command([command, *rest])
    except KeyboardInterrupt:
        return 130
