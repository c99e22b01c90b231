"""Start runcserver's reloader even when the project does not load, as runserver does.

Django special-cases the name "runserver": when ``django.setup()`` fails for it, Django
pretends no app is installed and starts the reloader anyway, whose child shows the error
and waits for a fix. For any other command the exception ends ``manage.py``, before
runcserver's code is even found. So when Django loads this app for a ``runcserver``
command line, an exception hook is installed: if setup then fails, the hook does what
Django does for runserver and runs the supervisor, which keeps the port, answers every
request with the error and starts the server again on the next save.

Only apps listed before ``cserver`` in INSTALLED_APPS can fail before the hook is in
place, and only in their package or ``apps.py`` (models are imported after every app).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from types import TracebackType


def starts_a_supervisor(argv: Sequence[str]) -> bool:
    """True for a runcserver command line that would start the reloader's supervisor."""
    if argv[1:2] not in (["runcserver"], ["runconcurrentserver"]) or "--noreload" in argv:
        return False
    # Imported only now: apps.py imports this module in every process that loads cserver.
    from cserver import generation

    return not generation.is_child()


def start_warm_early(argv: Sequence[str]) -> None:
    """For a command line that starts a supervisor (runcserver, or `cserver demo`), start
    the warm process that generations fork from now, while the project loads."""
    if any(flag in argv for flag in ("--print-config", "--help", "-h")):
        return
    demo = argv[1:2] == ["demo"] and "--noreload" not in argv
    if demo or starts_a_supervisor(argv):
        from cserver import generation
        from cserver.reload import warm

        if not generation.is_child():
            warm.start_early()


def run_despite(error: BaseException, argv: Sequence[str]) -> None:
    """Pretend no app is installed and run the runcserver command (it exits on its own).

    The supervisor needs no app: the generations it starts load the project themselves,
    fail with the same error (shown to every request) until a save fixes it.
    """
    from django.apps import apps

    apps.all_models = defaultdict(dict)
    apps.app_configs = {}
    apps.apps_ready = apps.models_ready = apps.ready = True
    apps.loading = False

    from cserver.management.commands.runcserver import Command

    command = Command()
    command.startup_error = error
    command.run_from_argv(list(argv))


def install_hook() -> None:
    """Called when Django imports this app: arm the hook for a runcserver command line."""
    if not starts_a_supervisor(sys.argv):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        from django.apps import apps

        # Only an exception raised while the apps were loading; anything else is a crash.
        if apps.ready or not issubclass(kind, Exception):
            previous(kind, value, tb)
            return
        try:
            run_despite(value, sys.argv)  # the supervisor's SystemExit passes through
        except Exception:
            # The command could not even start (settings it needs, say): the original error.
            previous(kind, value, tb)
            sys.exit(1)
        sys.exit(0)

    sys.excepthook = hook
