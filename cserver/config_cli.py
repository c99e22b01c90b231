"""Command-line side of the config: the flags, what the user typed, and how bad config exits."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, NamedTuple, NoReturn, Protocol

from cserver.addrport import AddrportError, parse_addrport
from cserver.config_sources import ConfigError, env_name

# field -> the flag as the user types it (the error messages and sources use these).
FLAG_NAMES: dict[str, str] = {
    "mode": "--mode",
    "workers": "--workers",
    "addr": "addrport",
    "port": "addrport",
    "ipv6": "--ipv6",
    "reload": "--noreload",
    "threading": "--nothreading",
    "delay": "--delay",
    "delay_min_ms": "--delay-min",
    "delay_max_ms": "--delay-max",
    "seed": "--seed",
    "keepalive_timeout": "--keepalive-timeout",
    "backlog": "--backlog",
    "grace_period": "--grace-period",
    "diagnostics": "--diagnostics",
    "connection_limit": "--connection-limit",
    "header_timeout": "--header-timeout",
    "max_body_bytes": "--max-body-bytes",
    "diagnostics_allow_remote": "--diagnostics-allow-remote",
}


class Flag(NamedTuple):
    """A flag value typed under another name than FLAG_NAMES says (e.g. ipv6 from addrport)."""

    value: Any
    typed: str


# Flags whose value is checked by the config model, not argparse, so every bad value gets
# the same one-line message naming the flag. dest == field name.
_VALUE_FLAGS: dict[str, tuple[str, str]] = {
    "mode": ("{thread,pool,fork}", "concurrency model"),
    "workers": ("N", "pool size; in fork mode the cap on live children"),
    "delay_min_ms": ("MS", "shortest random delay in milliseconds"),
    "delay_max_ms": ("MS", "longest random delay in milliseconds"),
    "seed": ("N", "seed of the random delays (default: picked and printed)"),
    "keepalive_timeout": ("SECONDS", "close idle keep-alive connections after this"),
    "backlog": ("N", "listen() backlog"),
    "grace_period": ("SECONDS", "how long shutdown waits for requests in flight"),
    "connection_limit": ("N", "open connections before new ones get a 503"),
    "header_timeout": ("SECONDS", "time allowed from a request's first byte to its whole head"),
    "max_body_bytes": ("BYTES", "largest request body accepted (413 beyond)"),
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the config flags to a parser, skipping those it already has (e.g. runserver's)."""
    # runserver's parser already defines addrport, --ipv6, --nothreading and --noreload with
    # the same dests; argparse has no public lookup by dest, hence _actions.
    existing = {action.dest for action in parser._actions}

    def add(*names: str, **kwargs: Any) -> None:
        if kwargs.get("dest", names[0]) not in existing:
            parser.add_argument(*names, **kwargs)

    def switch(field: str, names: tuple[str, ...], action: Any, dest: str, text: str) -> None:
        help_text = f"{text} [{env_name(field)}]"
        add(*names, action=action, dest=dest, default=None, help=help_text)

    add("addrport", nargs="?", default=None, help="Optional port number, or ipaddr:port.")
    switch("ipv6", ("--ipv6", "-6"), "store_true", "use_ipv6", "Use an IPv6 address.")
    switch("threading", ("--nothreading",), "store_false", "use_threading", "Single thread.")
    switch("reload", ("--noreload",), "store_false", "use_reloader", "No autoreloader.")
    for field, (metavar, text) in _VALUE_FLAGS.items():
        help_text = f"{text[0].upper()}{text[1:]}. [{env_name(field)}]"
        add(FLAG_NAMES[field], dest=field, metavar=metavar, default=None, help=help_text)
    delay_action = argparse.BooleanOptionalAction
    switch("delay", ("--delay",), delay_action, "delay", "Random delay before each response.")
    switch("diagnostics", ("--diagnostics",), "store_true", "diagnostics", "Diagnostic headers.")
    switch(
        "diagnostics_allow_remote",
        ("--diagnostics-allow-remote",),
        "store_true",
        "diagnostics_allow_remote",
        "Serve diagnostics to non-loopback clients too.",
    )


def flags_from_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The config flags the user actually typed, from parsed command options."""
    flags: dict[str, Any] = {}
    for field in (*_VALUE_FLAGS, "delay"):
        if options.get(field) is not None:
            flags[field] = options[field]
    # runserver's own parser defaults these switches to False/True/True, so only a value
    # that differs from its default can have been typed.
    if options.get("use_ipv6"):
        flags["ipv6"] = True
    if options.get("use_threading") is False:
        flags["threading"] = False
    if options.get("use_reloader") is False:
        flags["reload"] = False
    if options.get("diagnostics"):
        flags["diagnostics"] = True
    if options.get("diagnostics_allow_remote"):
        flags["diagnostics_allow_remote"] = True
    if addrport := options.get("addrport"):
        try:
            addr, port, forced_ipv6 = parse_addrport(addrport, bool(options.get("use_ipv6")))
        except AddrportError as exc:
            raise ConfigError([str(exc)]) from None
        if addr:
            flags["addr"] = addr
        flags["port"] = port
        if forced_ipv6 and "ipv6" not in flags:
            flags["ipv6"] = Flag(True, "addrport")
    return flags


class _Writer(Protocol):
    def write(self, msg: str, /) -> Any: ...


def exit_on_config_error(err: ConfigError, stderr: _Writer) -> NoReturn:
    """Print each problem as an ``Error:`` line and exit with status 2, no traceback."""
    for problem in err.problems:
        stderr.write(f"Error: {problem}\n")
    raise SystemExit(2)
