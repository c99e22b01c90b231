"""``cserver bootstrap``: run CSERVER_BOOTSTRAP once per database, after migrate.

The stack's one-shot `bootstrap` service runs this on every `docker compose up`. The command
(loaddata, a seed script, creating a dev superuser) runs the first time only: when it
succeeds, a row holding its SHA-256 goes into the table cserver_bootstrap of the default
database, so it runs again only once the database volume is deleted or the command changes.
A command that fails leaves no row and exits with its status, so `up` stops before `web`.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from cserver.config import ConfigError, exit_on_config_error, load_config
from cserver.redact import redact_url

TABLE = "cserver_bootstrap"


def shown(command: str) -> str:
    """The command as printed: a URL in it (a database to load from) without its password."""
    return " ".join(redact_url(word) if "://" in word else word for word in command.split())


def command_digest(command: str) -> str:
    """The marker of a command: the same text, the same marker."""
    return hashlib.sha256(command.strip().encode()).hexdigest()


def _ensure_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} "
            "(digest varchar(64) PRIMARY KEY, command text NOT NULL, finished_at varchar(40))"
        )


def already_ran(digest: str) -> bool:
    """True when the command with this digest has succeeded against this database."""
    _ensure_table()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {TABLE} WHERE digest = %s", [digest])
        return cursor.fetchone() is not None


def mark_done(digest: str, command: str) -> None:
    """Record that the command succeeded."""
    from django.utils import timezone

    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE digest = %s", [digest])
        cursor.execute(
            f"INSERT INTO {TABLE} (digest, command, finished_at) VALUES (%s, %s, %s)",
            [digest, command, timezone.now().isoformat()],
        )


class Command(BaseCommand):
    help = (
        "Run the bootstrap command (CSERVER_BOOTSTRAP, e.g. 'python manage.py loaddata "
        "initial') once per database: skipped when it has already succeeded against it."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--again", action="store_true", help="run it even if it already succeeded"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            command = (load_config({}).config.bootstrap or "").strip()
        except ConfigError as err:
            exit_on_config_error(err, self.stderr)
        if not command:
            self.stdout.write("bootstrap: nothing to run (CSERVER_BOOTSTRAP is not set)")
            return
        digest = command_digest(command)
        if already_ran(digest) and not options["again"]:
            self.stdout.write(
                f"bootstrap: already done for this database ({TABLE} {digest[:12]}); "
                "`cserver bootstrap --again` runs it once more"
            )
            return
        # The connection is not needed while the command runs (it opens its own).
        connection.close()
        self.stdout.write(f"bootstrap: running {shown(command)}")
        self.stdout.flush()
        status = subprocess.call(["sh", "-c", command], stdout=sys.stdout, stderr=sys.stderr)
        if status != 0:
            raise CommandError(
                f"bootstrap command exited with status {status}: {shown(command)} "
                "(nothing recorded; it runs again on the next `up`)",
                returncode=status if 0 < status < 256 else 1,
            )
        mark_done(digest, command)
        self.stdout.write(f"bootstrap: done ({TABLE} {digest[:12]})")
