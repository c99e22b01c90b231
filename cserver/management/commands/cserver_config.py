"""``manage.py cserver_config``: show the resolved cserver config and where each value came from."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cserver.config import (
    ConfigError,
    add_config_arguments,
    exit_on_config_error,
    flags_from_options,
    load_config,
)


class Command(BaseCommand):
    help = (
        "Show the cserver configuration a runcserver command line would get, with the source "
        "of each value (flag > environment > .env > Django settings > default)."
    )
    # Printing the config must work even when the project's checks do not pass yet.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_config_arguments(parser)
        parser.add_argument(
            "--json",
            action="store_true",
            help='Print {field: {"value", "source", "env"}} as JSON instead of a table.',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            resolved = load_config(flags_from_options(options))
        except ConfigError as err:
            exit_on_config_error(err, self.stderr)
        if options["json"]:
            self.stdout.write(json.dumps(resolved.as_json(), indent=2))
        else:
            self.stdout.write(resolved.format_table())
