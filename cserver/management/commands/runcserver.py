"""``manage.py runcserver``: runserver's command line, served by cserver's concurrency modes."""

from __future__ import annotations

import errno
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import (
    Command as StaticfilesRunserverCommand,
)
from django.core.management.base import CommandError
from django.core.management.commands.runserver import Command as RunserverCommand
from django.db import DatabaseError

from cserver import generation
from cserver.asgi_app import announce_asgi, require_uvicorn
from cserver.compat import system_check_kwargs
from cserver.config import (
    ConfigError,
    ResolvedConfig,
    ServerConfig,
    add_config_arguments,
    exit_on_config_error,
    flags_from_options,
    load_config,
)
from cserver.config.command_defaults import with_command_defaults
from cserver.dbconn import close_all, django_lifecycle, first_line
from cserver.reload.errors import error_file
from cserver.reload.filewatch import report_dirs
from cserver.reload.supervisor import Supervisor
from cserver.server import ASGI_MODE, create_listener, make_server, network_warning

if TYPE_CHECKING:
    from cserver.server import Server

# runserver's wording, which users and scripts already know.
BIND_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


def bind_error_text(exc: OSError) -> str:
    return BIND_ERRORS.get(exc.errno or 0, str(exc))


def describe(config: ServerConfig, server: Server | None = None) -> str:
    """The banner line that says how this run behaves, including how to replay it."""
    mode = server.mode if server is not None else config.mode
    if mode == "single" or (server is not None and mode == ASGI_MODE and not config.threading):
        mode = f"{config.mode} (--nothreading: one request at a time)"
    workers = config.workers if config.mode in _POOLED and config.threading else "-"
    delay = server.delay if server is not None else None
    delay_text = "off seed=-"
    if delay is not None:
        # Each process draws its own delays: from seed+0, seed+1, ... (worker_config()).
        per_process = "+process" if config.processes > 1 else ""
        delay_text = f"{delay.min_ms}-{delay.max_ms}ms seed={delay.seed}{per_process}"
    return f"cserver: mode={mode} workers={workers} delay={delay_text} processes={config.processes}"


# Modes where --workers bounds something (see its description).
_POOLED = ("pool", "fork", ASGI_MODE)


class Command(StaticfilesRunserverCommand):
    help = (
        "Starts a concurrent development server: a thread per connection, a bounded pool "
        "of worker threads, or a process per connection, with an optional random delay."
    )
    # Set when the project failed to load and only the supervisor may run (startup_errors).
    startup_error: BaseException | None = None

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        add_config_arguments(parser)
        parser.add_argument(
            "--print-config",
            action="store_true",
            help="Print every effective setting and where it came from, then exit.",
        )

    def get_handler(self, *args: Any, **options: Any) -> Any:
        if self.config.mode == ASGI_MODE:
            return self.get_asgi_application(**options)
        from django.apps import apps

        # staticfiles' runserver only replaces runserver when the app is installed; its
        # handler (which insists on STATIC_URL) should only apply in that case too.
        if apps.is_installed("django.contrib.staticfiles"):
            handler = super().get_handler(*args, **options)
        else:
            handler = RunserverCommand.get_handler(self, *args, **options)
        if self.config.diagnostics:
            from cserver.diagnostics import wrap_application

            handler = wrap_application(handler, self.config)
        return handler

    def get_asgi_application(self, **options: Any) -> Any:
        """The project's ASGI application, with static files and diagnostics as configured."""
        from cserver.asgi_app import project_asgi_application

        return project_asgi_application(self.config, options)

    def on_bind(self, server_port: int) -> None:
        # Django's own tests call on_bind() on a bare Command, before any config exists.
        resolved = getattr(self, "resolved", None)
        if resolved is None or resolved.config.mode != ASGI_MODE:
            super().on_bind(server_port)
            return
        # runserver's banner, saying which interface serves (as Django 6 does for WSGI).
        with announce_asgi(self):
            super().on_bind(server_port)

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not settings.ALLOWED_HOSTS:
            raise CommandError("You must set settings.ALLOWED_HOSTS if DEBUG is False.")
        try:
            flags = flags_from_options(options)
            resolved = load_config(flags)
            self.resolved: ResolvedConfig = with_command_defaults(self, flags, resolved)
        except ConfigError as err:
            exit_on_config_error(err, self.stderr)
        if options.get("print_config"):
            self.stdout.write(self.resolved.format_table())
            return
        config = self.config
        if config.mode == ASGI_MODE:
            require_uvicorn()
        if config.ipv6 and not socket.has_ipv6:
            raise CommandError("Your Python does not support IPv6.")
        # Attributes runserver's on_bind() reads for the banner.
        self.addr = config.addr
        self.port = str(config.port)
        self.use_ipv6 = config.ipv6
        # Brackets in the banner only for an IPv6 literal: `test.domain.local:7000 -6` is a
        # host name to resolve over IPv6, shown as typed (as runserver shows it).
        self._raw_ipv6 = config.ipv6 and ":" in config.addr
        self.run(**options)

    @property
    def config(self) -> ServerConfig:
        return self.resolved.config

    def run(self, **options: Any) -> None:
        if not self.config.reload or generation.is_child():
            if self.startup_error is not None:
                # Without a supervisor nothing would wait for a fix.
                raise self.startup_error
            self.inner_run(None, **options)
            return
        listener = self._bind_or_exit()
        debug_listener = self._bind_debug_port_or_exit()
        if self.startup_error is not None:
            supervisor = Supervisor(
                listener, self.config.grace_period, debug_listener=debug_listener
            )
            supervisor.watch_also(error_file(self.startup_error))
        else:
            # The project is loaded here already: the first generation forks from this
            # process and goes straight to its checks.
            supervisor = Supervisor(
                listener,
                self.config.grace_period,
                lambda: self.inner_run(None, **options),
                debug_listener=debug_listener,
            )
        sys.exit(supervisor.run())

    def _bind_or_exit(self) -> socket.socket:
        config = self.config
        try:
            return create_listener(config.addr, config.port, config.ipv6, config.backlog)
        except OSError as exc:
            self.stderr.write(f"Error: {bind_error_text(exc)}")
            sys.exit(1)

    def _bind_debug_port_or_exit(self) -> socket.socket | None:
        """The debugger's port, bound once for the whole run (cserver.debug.proxy)."""
        if not self.config.debugpy:
            return None
        import importlib.util

        from cserver.debug.address import format_address, parse_debug_address
        from cserver.debug.proxy import bind_debug_port
        from cserver.debug.session import MISSING

        if importlib.util.find_spec("debugpy") is None:
            raise CommandError(MISSING)
        address = parse_debug_address(self.config.debugpy)
        assert address is not None  # the setting is "" when off
        try:
            return bind_debug_port(*address)
        except OSError as exc:
            self.stderr.write(
                f"Error: the debugger port {format_address(*address)}: {bind_error_text(exc)}"
            )
            sys.exit(1)

    def inner_run(self, *args: Any, **options: Any) -> None:
        config = self.config
        listener = None
        if generation.is_child():
            generation.become_child()
            generation.report("loaded")
            listener = generation.inherited_listener()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(**system_check_kwargs(self, options))
        try:
            self.check_migrations()
        except DatabaseError as exc:
            # runserver dies here with a traceback; a database that is down (or not up yet)
            # should not stop the server, whose requests will say so themselves.
            self.stderr.write(f"Warning: could not check migrations: {first_line(exc)}")
        # Nothing opened by the checks may reach a worker, and above all not a forked child.
        close_all()
        # Before the server forks anything: its children join the debugger as sub-sessions.
        debugger = self._start_debugger(config)
        if listener is None:
            listener = self._bind_or_exit()
        handler = self.get_handler(*args, **options)
        server = make_server(config, handler, listener=listener, lifecycle=django_lifecycle())
        self.on_bind(server.server_address[1])
        warning = network_warning(server.server_address[0])
        if warning:
            self.stdout.write(self.style.WARNING(warning))
        self.stdout.write(describe(config, server))
        for line in debugger:
            self.stdout.write(line)
        self.stdout.flush()
        if config.debugpy_wait and debugger and generation.number() == 1:
            from cserver.debug.session import wait_for_client

            wait_for_client()  # the socket queues the first requests meanwhile
        if generation.is_child():
            generation.report("ready")
            server.follow_changes(report_dirs)
        self._serve(server)

    def _start_debugger(self, config: ServerConfig) -> list[str]:
        if not config.debugpy:
            return []
        from cserver.debug.session import DebugpyMissing, start_debugger

        try:
            return start_debugger(config.debugpy, generation.is_child(), config.debugpy_wait)
        except DebugpyMissing as exc:
            raise CommandError(str(exc)) from None

    def _serve(self, server: Server) -> None:
        def stop(signum: int, frame: object) -> None:
            server.request_shutdown()

        # In a generation the supervisor decides about reloads: it watches the files, and
        # SIGTERM is how it retires this generation (which then drains like any stop).
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.serve_forever()
        sys.stdout.flush()
        sys.stderr.flush()
        sys.exit(0)
