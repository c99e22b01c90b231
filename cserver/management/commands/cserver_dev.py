"""``cserver dev``: runcserver and the project's side processes, together, without Docker."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    handle_default_options,
)

from cserver.config import ConfigError, exit_on_config_error, load_config
from cserver.devrun.brokers import redis_warnings
from cserver.devrun.output import Output, use_colour
from cserver.devrun.plan import NoSuchProcess, child_environment, code_watch, dev_specs
from cserver.devrun.runner import DevRunner

DESCRIPTION = """\
Run the development server and the project's side processes (Celery worker and beat, an npm
watch script, anything declared in CSERVER_SIDE_PROCESSES) in one terminal, as `docker
compose up` runs them in the stack: each line prefixed with the name of its process.

Arguments cserver dev does not know go to runcserver: `cserver dev 0.0.0.0:8001 --mode pool`.
A side process that exits is reported with its status and last lines, then restarted after
1, 2, 4 ... 30 s; one declared with "reload": true restarts when a Python file of the
project changes. Ctrl-C or SIGTERM stops every process within the grace period (SIGKILL
after it); a second Ctrl-C kills at once. When runcserver exits, everything stops with its
exit status. Nothing is left running even after `kill -9` of cserver dev."""


class Command(BaseCommand):
    help = "Run runcserver and the side processes together (runcserver's arguments pass through)."
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.description = DESCRIPTION
        parser.usage = f"{prog_name} {subcommand} [options] [runcserver arguments]"
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            type=float,
            default=10.0,
            metavar="SECONDS",
            help="how long the processes get to stop before SIGKILL (default 10)",
        )
        parser.add_argument(
            "--without",
            default="",
            metavar="NAMES",
            help="side processes not to run, comma-separated (e.g. --without beat,assets)",
        )
        parser.add_argument(
            "--only",
            default="",
            metavar="NAMES",
            help="run these side processes alone, without web (e.g. --only worker: how a "
            "stack's worker restarts on code changes through cserver's watcher)",
        )
        parser.add_argument(
            "--only-web",
            action="store_true",
            help="run runcserver alone, as `cserver runcserver` would",
        )

    def run_from_argv(self, argv: list[str]) -> None:
        # Django's parse_args would refuse runcserver's options; what is not ours is theirs.
        parser = self.create_parser(argv[0], argv[1])
        options, passthrough = parser.parse_known_args(argv[2:])
        handle_default_options(options)
        try:
            self.execute(*passthrough, **vars(options))
        except CommandError as exc:
            self.stderr.write(f"{exc.__class__.__name__}: {exc}")
            sys.exit(exc.returncode)

    def handle(self, *args: str, **options: Any) -> None:
        from django.conf import settings

        if options["grace"] < 0:
            raise CommandError(f"--grace {options['grace']:g}: expected 0 or more seconds")
        try:
            config = load_config({}).config
        except ConfigError as err:
            exit_on_config_error(err, self.stderr)
        cwd = Path.cwd()
        without = _names(options["without"])
        only = _names(options["only"])
        if only and (options["only_web"] or args):
            raise CommandError("--only runs side processes without web: no runcserver arguments")
        try:
            specs, sides = dev_specs(
                config, cwd, list(args), without, only_web=options["only_web"], only=only
            )
        except NoSuchProcess as exc:
            raise CommandError(str(exc)) from None
        colour = use_colour(sys.stdout, options["no_color"])
        output = Output([s.name for s in specs], colour=colour)
        if any("redis" in side.needs for side in sides.values()):
            for line in redis_warnings(settings):
                output.say(line)
        env = child_environment(os.environ)
        runner = DevRunner(
            specs, output, grace=options["grace"], env=env, cwd=cwd, watch=code_watch(cwd)
        )
        status = runner.run()
        if status:
            raise SystemExit(status)


def _names(value: str) -> set[str]:
    return {n.strip() for n in value.split(",") if n.strip()}
