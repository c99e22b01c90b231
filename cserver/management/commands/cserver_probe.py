"""`cserver probe`: drive requests at a running server and print one table of what it saw."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cserver.probe import DEFAULT_URL, ProbeConnectError, ProbeOptions, run_probe
from cserver.probe.client import TargetError, parse_target
from cserver.probe.report import ProgressBar, format_table
from cserver.redact import redact_url

_FLAGS = (
    "-n/--requests, -c/--concurrency, --new-socket, --keepalive, --timeout, "
    "--duration-limit, --settle, --database-url, --json"
)


def _number(
    flag: str, raw: str, kind: Callable[[str], Any], low: float, high: float, *, low_open: bool
) -> Any:
    """Parse one numeric flag value or raise the one-line usage error for it."""
    noun = "an integer" if kind is int else "a number of seconds"
    above = f"above {low:g}" if low_open else f"from {low:g}"
    shown = raw if raw and raw.split() == [raw] else repr(raw)
    message = f"{flag} {shown} is not valid: expected {noun} {above} to {high:g}"
    try:
        value = kind(raw)
    except ValueError:
        raise CommandError(message, returncode=2) from None
    too_low = value <= low if low_open else value < low
    if too_low or value > high or value != value:  # value != value: NaN
        raise CommandError(message, returncode=2)
    return value


class Command(BaseCommand):
    help = (
        "Send N GET requests at concurrency C to a running server and print requests/s, "
        "latency percentiles, workers and DB backends seen, and database sessions opened "
        "and left open (PostgreSQL statistics or the server's /__cserver__/stats)."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if parser.called_from_command_line:
            # argparse would print the whole usage block; users get one line instead.
            def one_line_error(message: str) -> None:
                self.stderr.write(f"cserver probe: {message} (accepted flags: {_FLAGS})")
                sys.exit(2)

            setattr(parser, "error", one_line_error)  # noqa: B010 (mypy: no method assignment)
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "url", nargs="?", default=DEFAULT_URL, help=f"URL to request (default {DEFAULT_URL})"
        )
        # Numbers arrive as strings and are checked in handle(), for one-line errors.
        parser.add_argument("-n", "--requests", default="200", help="requests (default 200)")
        parser.add_argument(
            "-c", "--concurrency", default="8", help="requests in flight (default 8)"
        )
        sockets = parser.add_mutually_exclusive_group()
        sockets.add_argument(
            "--new-socket",
            dest="keepalive",
            action="store_false",
            help="open a new connection for every request (default)",
        )
        sockets.add_argument(
            "--keepalive",
            dest="keepalive",
            action="store_true",
            help="reuse one keep-alive connection per concurrent client",
        )
        parser.set_defaults(keepalive=False)
        parser.add_argument("--timeout", default="10", help="seconds per request (default 10)")
        parser.add_argument(
            "--duration-limit", default="60", help="stop sending after this many seconds (60)"
        )
        parser.add_argument(
            "--settle",
            default="1.0",
            help="seconds to wait after the load before counting connections left open (1.0)",
        )
        parser.add_argument(
            "--database-url",
            default=None,
            help="PostgreSQL URL to read session statistics from (default: $DATABASE_URL)",
        )
        parser.add_argument("--json", action="store_true", help="print the results as JSON")

    def options_from(self, options: dict[str, Any]) -> ProbeOptions:
        """Validate the raw flag values into ProbeOptions (CommandError, exit 2, if bad)."""
        url = options["url"]
        try:
            parse_target(url)
        except TargetError as exc:
            raise CommandError(
                f"URL {redact_url(url)!r} is not valid: {exc} (expected http://HOST[:PORT]/PATH)",
                returncode=2,
            ) from None
        database_url = options["database_url"] or os.environ.get("DATABASE_URL") or None
        return ProbeOptions(
            url=url,
            requests=_number("-n", options["requests"], int, 1, 1_000_000, low_open=False),
            concurrency=_number("-c", options["concurrency"], int, 1, 1024, low_open=False),
            keepalive=options["keepalive"],
            timeout=_number("--timeout", options["timeout"], float, 0, 3600, low_open=True),
            duration_limit=_number(
                "--duration-limit", options["duration_limit"], float, 0, 86400, low_open=True
            ),
            settle=_number("--settle", options["settle"], float, 0, 600, low_open=False),
            database_url=database_url,
        )

    def handle(self, *args: Any, **options: Any) -> None:
        opts = self.options_from(options)
        progress = ProgressBar(sys.stderr) if sys.stdout.isatty() else None
        try:
            report = run_probe(opts, on_progress=progress)
        except ProbeConnectError as exc:
            raise CommandError(str(exc), returncode=1) from None
        finally:
            if progress is not None:
                progress.clear()
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(format_table(report))

    def run_from_argv(self, argv: list[str]) -> None:
        """Like Django's, plus a quiet exit on Ctrl-C."""
        try:
            super().run_from_argv(argv)
        except KeyboardInterrupt:
            self.stderr.write("cserver probe: interrupted")
            sys.exit(130)

    def execute(self, *args: Any, **options: Any) -> Any:
        """Print a CommandError as its bare one-line message (no 'CommandError:' prefix)."""
        try:
            return super().execute(*args, **options)
        except CommandError as exc:
            if not getattr(self, "_called_from_command_line", False) or options.get("traceback"):
                raise
            self.stderr.write(str(exc))
            sys.exit(exc.returncode)
