"""Where Django's runserver differs between the supported releases, 4.2 LTS to 6.x.

runcserver inherits everything else from the installed Django's runserver (and from
staticfiles' runserver), so the behaviour people rely on follows their Django version:
- the banner: ``on_bind()``; from 5.2 it adds the "development server" warning, which
  ``DJANGO_RUNSERVER_HIDE_WARNING=true`` hides;
- ``--skip-checks``: runserver adds it itself before 5.2 (``requires_system_checks = []``);
  from 5.2 BaseCommand does, and ``execute()`` runs no check before ``handle()``;
- the migration warning: ``check_migrations()``; runcserver always closes the connections
  it opened afterwards, as Django does from 5.1;
- static files: staticfiles' runserver ``get_handler()`` and its ``--nostatic``/``--insecure``;
- the autoreloader's hooks (``autoreload_started``, ``file_changed``, the reloader classes)
  have one API in every supported release.
What does differ in an API runcserver calls is below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import django

if TYPE_CHECKING:
    from django.core.management.base import BaseCommand

# OPTIONS of Django's SQLite backend and the release that added them; older ones refuse
# an unknown key with a TypeError when they connect.
_SQLITE_OPTIONS_SINCE = {"init_command": (5, 1), "transaction_mode": (5, 1)}


def supported_sqlite_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The SQLite OPTIONS the installed Django accepts (older ones lose WAL/IMMEDIATE)."""
    installed = tuple(django.VERSION[:2])
    return {
        key: value
        for key, value in options.items()
        if installed >= _SQLITE_OPTIONS_SINCE.get(key, (0, 0))
    }


# Django's own PostgreSQL connection pool (DATABASES OPTIONS "pool").
HAS_DB_POOL = django.VERSION[:2] >= (5, 1)


def sqlite_wal_before_5_1() -> None:
    """Put SQLite databases in WAL mode where Django cannot be told to (before 5.1).

    From 5.1 OPTIONS' init_command does it; earlier releases get the same PRAGMA from a
    connection_created receiver. (BEGIN IMMEDIATE has no such stand-in: writers there may
    wait on the busy timeout instead.)
    """
    if django.VERSION[:2] >= _SQLITE_OPTIONS_SINCE["init_command"]:
        return
    from django.db.backends.signals import connection_created

    def wal(sender: Any, connection: Any, **kwargs: Any) -> None:
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode=WAL;")

    connection_created.connect(wal, weak=False, dispatch_uid="cserver_sqlite_wal")


def system_check_kwargs(command: BaseCommand, options: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of the system check runserver runs once per server generation.

    Django 5.2 added ``BaseCommand.get_check_kwargs()``: runserver overrides it to run no
    check in ``execute()`` and asks BaseCommand's for the command's full set in
    ``inner_run()``, which honours a subclass's ``requires_system_checks``. Before 5.2
    ``inner_run()`` ran every check whatever that attribute said.
    """
    from django.core.management.base import BaseCommand

    base_kwargs = getattr(BaseCommand, "get_check_kwargs", None)
    kwargs: dict[str, Any] = dict(base_kwargs(command, options)) if base_kwargs else {}
    kwargs["display_num_errors"] = True
    return kwargs
