"""cserver's typed configuration: one settings model, resolved once, each value's source known.

Precedence, highest first: command-line flags, process environment, the .env file
($CSERVER_ENV_FILE or ./.env), Django settings (``CSERVER`` dict, then legacy names), defaults;
sources.gather() is where it is applied, for load_config() and ServerConfig() alike.
The settings themselves are declared once, in model.ServerConfig.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import Secret, SecretBytes, SecretStr, ValidationError

from cserver.config.cli import (
    FLAG_NAMES,
    Flag,
    add_config_arguments,
    exit_on_config_error,
    flags_from_options,
    found_in_flags,
)
from cserver.config.model import (
    Mode,
    ServerConfig,
    delay_range_problem,
    processes_problem,
    validate_gathered,
)
from cserver.config.side import SHAPE as SIDE_SHAPE
from cserver.config.sources import ConfigError, Default, Gathered, Origin, env_name, gather

__all__ = [
    "FLAG_NAMES",
    "ConfigError",
    "Flag",
    "Mode",
    "ResolvedConfig",
    "ServerConfig",
    "add_config_arguments",
    "env_name",
    "exit_on_config_error",
    "flags_from_options",
    "load_config",
]

_FIELDS = ServerConfig.model_fields
_MASK = "********"


def _is_secret(value: Any) -> bool:
    return isinstance(value, SecretStr | SecretBytes | Secret)


def expected(name: str) -> str:
    """What a field accepts, in words: ``an integer from 1 to 1024``."""
    info = _FIELDS[name]
    annotation = info.annotation
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    if get_origin(annotation) in (Union, type(int | None)):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if annotation is bool:
        return "true or false (1/0, yes/no and on/off also work)"
    if get_origin(annotation) is dict:
        return SIDE_SHAPE
    if name == "bootstrap":
        return "a command line"
    if name == "debugpy":
        return "PORT or HOST:PORT (1024 to 65535), or true/false"
    if annotation is str:
        return "a host name or IP address (IPv6 without brackets)"
    if _is_secret_type(annotation):
        return "a non-empty secret"
    # annotated_types.Ge(ge=1) and friends: the attribute is the class name in lower case.
    bounds = {type(m).__name__: getattr(m, type(m).__name__.lower(), None) for m in info.metadata}
    kind = "an integer" if annotation is int else "a number"
    if "Gt" in bounds and "Le" in bounds:
        return f"{kind} above {bounds['Gt']} and up to {bounds['Le']}"
    if "Ge" in bounds and "Le" in bounds:
        return f"{kind} from {bounds['Ge']} to {bounds['Le']}"
    return kind


def _is_secret_type(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, SecretStr | SecretBytes | Secret)


def _display(value: Any) -> str:
    if _is_secret(value):
        return _MASK
    if isinstance(value, dict):  # side processes: name -> declaration, as JSON
        if not value:
            return "-"
        return json.dumps({k: v.model_dump(exclude_defaults=True) for k, v in value.items()})
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":  # unset, or off (debugpy)
        return "-"
    return str(value)


@dataclass(frozen=True)
class ResolvedConfig:
    """The validated config plus, for each field, the source that supplied it."""

    config: ServerConfig
    sources: Mapping[str, str]
    env_file: str | None = field(default=None)  # the .env file actually read, if any

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(setting, env var, value as shown, source) for every field, secrets masked."""
        return [
            (name, env_name(name), _display(getattr(self.config, name)), self.sources[name])
            for name in type(self.config).model_fields
        ]

    def format_table(self) -> str:
        """An aligned plain-text table: setting, env var, value, source."""
        rows = [("setting", "env var", "value", "source"), *self.rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        rule = tuple("-" * w for w in widths)
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [rows[0], rule, *rows[1:]]
        ]
        return "\n".join(lines)

    def as_json(self) -> dict[str, dict[str, Any]]:
        """{field: {"value", "source", "env"}}, JSON-ready, secrets masked."""
        result: dict[str, dict[str, Any]] = {}
        for name in type(self.config).model_fields:
            value = getattr(self.config, name)
            shown = _MASK if _is_secret(value) else value
            result[name] = {"value": shown, "source": self.sources[name], "env": env_name(name)}
        return result


def _side_problem(error: Any, shown: str) -> str:
    """A bad side-process declaration: which process, which key, what is accepted."""
    if error["type"].startswith("side_"):  # the whole value: not JSON, not a table, a bad name
        return f"{shown} is not valid: {error['msg']}"
    where = ".".join(str(part) for part in error["loc"][1:])
    return f"{shown} is not valid: side process {where}: {error['msg']}; expected {SIDE_SHAPE}"


def _problems(exc: ValidationError, gathered: Gathered) -> list[str]:
    """One line per bad value, naming it as the user wrote it; the delay range comes last."""
    values, origins = gathered.values, gathered.origins
    lines: list[str] = []
    ranges: list[str] = []
    seen: set[str] = set()
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "default_factory_not_called":
            continue  # addr's default waits for ipv6, or another field that failed before
        if error["type"] == "delay_range":
            low, high = error["ctx"]["low"], error["ctx"]["high"]
            where_low = origins.get("delay_min_ms", Origin("default")).where()
            where_high = origins.get("delay_max_ms", Origin("default")).where()
            ranges.append(delay_range_problem(low, where_low, high, where_high))
        elif error["type"] == "debug_address" and name in origins:
            # The address's own message says what was wrong: not an address, or the port.
            seen.add(name)
            detail = str(error["msg"]).split(": ", 1)[-1]
            lines.append(f"{origins[name].show(values[name])} is not valid: {detail}")
        elif error["type"] == "processes_mode":
            seen.add(name)
            both = [
                origins.get(field, Origin("default")).show(values.get(field))
                for field in ("processes", "mode")
            ]
            lines.append(processes_problem(*both))
        elif name == "side_processes" and name in origins and name not in seen:
            seen.add(name)
            lines.append(_side_problem(error, origins[name].show(values[name])))
        elif name in origins and name not in seen:
            seen.add(name)
            shown = origins[name].show(values[name])
            lines.append(f"{shown} is not valid: expected {expected(name)}")
        elif name not in seen:  # only a check added to the model without a message lands here
            lines.append(f"config is not valid: {error['msg']}")
    return lines + ranges


def load_config(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | Default | None = Default.ENV_FILE,
    django_settings: bool | Any = True,
) -> ResolvedConfig:
    """Resolve the config from all sources; raise ConfigError listing every problem.

    ``flags`` holds only what the user typed (field -> value, or a ``Flag``). ``environ``
    defaults to os.environ. ``env_file=None`` skips the .env file. ``django_settings`` may be
    False (skip), True (django.conf.settings when configured) or any object with settings
    attributes.
    """
    gathered = gather(
        ServerConfig,
        found_in_flags(flags or {}),
        environ=environ,
        env_file=env_file,
        django_settings=django_settings,
    )
    try:
        config = validate_gathered(gathered.values)
    except ValidationError as exc:
        raise ConfigError([*gathered.problems, *_problems(exc, gathered)]) from None
    if gathered.problems:
        raise ConfigError(gathered.problems)
    sources = {
        name: gathered.origins[name].label if name in gathered.origins else "default"
        for name in _FIELDS
    }
    return ResolvedConfig(config, MappingProxyType(sources), gathered.env_file)
