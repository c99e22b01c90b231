"""Command-line side of the config: flags generated from the model, what the user typed, exits."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, NamedTuple, NoReturn, Protocol

from cserver.config.model import NO_FLAG, Cli, ServerConfig, cli_of
from cserver.config.sources import ConfigError, Found, Origin, env_name

_CLI: dict[str, Cli] = {
    name: cli
    for name, info in ServerConfig.model_fields.items()
    if (cli := cli_of(info)).flag != NO_FLAG
}
_ADDRPORT = "addrport"

# field -> the flag as the user types it (the error messages and sources use these).
FLAG_NAMES: dict[str, str] = {name: cli.flag for name, cli in _CLI.items()}


class Flag(NamedTuple):
    """A flag value typed under another name than FLAG_NAMES says (e.g. ipv6 from addrport)."""

    value: Any
    typed: str


def _help(field: str, cli: Cli) -> str:
    text = cli.help or ServerConfig.model_fields[field].description or ""
    return f"{text[:1].upper()}{text[1:]}. [{env_name(field)}]"


_SWITCH_ACTIONS: dict[str, Any] = {
    "on": "store_true",
    "off": "store_false",
    "both": argparse.BooleanOptionalAction,
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the config flags to a parser, skipping those it already has (e.g. runserver's)."""
    # runserver's parser already defines addrport, --ipv6, --nothreading and --noreload with
    # the same dests; argparse has no public lookup by dest, hence _actions.
    existing = {action.dest for action in parser._actions}
    if _ADDRPORT not in existing:
        parser.add_argument(
            _ADDRPORT, nargs="?", default=None, help="Optional port number, or ipaddr:port."
        )
    for field, cli in _CLI.items():
        dest = cli.dest or field
        if cli.flag == _ADDRPORT or dest in existing:
            continue
        names = (cli.flag, *cli.aliases)
        # Values are checked by the model, not argparse, so every bad value gets the same
        # one-line message naming the flag.
        kind: dict[str, Any] = (
            {"action": _SWITCH_ACTIONS[cli.switch]} if cli.switch else {"metavar": cli.metavar}
        )
        if cli.bare:
            kind.update(nargs="?", const=cli.bare)
        parser.add_argument(*names, dest=dest, default=None, help=_help(field, cli), **kind)


def _was_typed(cli: Cli, value: Any) -> bool:
    # runserver's own parser defaults its switches to False/True/True rather than None, so
    # for a switch only the value it sets can have been typed.
    if cli.switch == "on":
        return value is True
    if cli.switch == "off":
        return value is False
    return value is not None


def flags_from_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The config flags the user actually typed, from parsed command options."""
    flags: dict[str, Any] = {}
    for field, cli in _CLI.items():
        value = options.get(cli.dest or field)
        if cli.flag != _ADDRPORT and _was_typed(cli, value):
            flags[field] = value
    if addrport := options.get(_ADDRPORT):
        # Imported here: it loads Django's runserver, which `import cserver.config` need not.
        from cserver.addrport import AddrportError, parse_addrport

        try:
            addr, port, forced_ipv6 = parse_addrport(addrport, bool(options.get("use_ipv6")))
        except AddrportError as exc:
            raise ConfigError([str(exc)]) from None
        if addr:
            flags["addr"] = addr
        flags["port"] = port
        if forced_ipv6 and "ipv6" not in flags:
            flags["ipv6"] = Flag(True, _ADDRPORT)
    return flags


def found_in_flags(flags: Mapping[str, Any]) -> Found:
    """Typed flags (field -> value, or a Flag) as a source, each named as the user typed it."""
    found: Found = {}
    for name, raw in flags.items():
        if name not in _CLI:
            raise TypeError(f"load_config() got an unknown flag field {name!r}")
        if raw is None:
            continue
        if isinstance(raw, Flag):
            found[name] = (raw.value, Origin("flag", raw.typed))
        elif _CLI[name].switch == "both" and raw is False:
            found[name] = (raw, Origin("flag", "--no-" + FLAG_NAMES[name].removeprefix("--")))
        else:
            found[name] = (raw, Origin("flag", FLAG_NAMES[name]))
    return found


class _Writer(Protocol):
    def write(self, msg: str, /) -> Any: ...


def exit_on_config_error(err: ConfigError, stderr: _Writer) -> NoReturn:
    """Print each problem as an ``Error:`` line and exit with status 2, no traceback."""
    for problem in err.problems:
        stderr.write(f"Error: {problem}\n")
    raise SystemExit(2)
