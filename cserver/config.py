"""cserver's typed configuration: one settings model, resolved once, each value's source known.

Precedence, highest first: command-line flags, process environment, the .env file
($CSERVER_ENV_FILE or ./.env), Django settings (``CSERVER`` dict, then legacy names), defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from types import MappingProxyType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BeforeValidator,
    Field,
    Secret,
    SecretBytes,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cserver.config_cli import (
    FLAG_NAMES,
    Flag,
    add_config_arguments,
    exit_on_config_error,
    flags_from_options,
)
from cserver.config_sources import (
    DEFAULT_ENV_FILE,
    ENV_FILE_VAR,
    ENV_PREFIX,
    ConfigError,
    DjangoSettingsSource,
    Found,
    Origin,
    env_name,
    from_dotenv,
    from_environ,
)

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

Mode = Literal["thread", "pool", "fork"]

# Set while load_config validates its already-merged values, so the model reads no source again.
_MERGED_ONLY: ContextVar[bool] = ContextVar("cserver_config_merged_only", default=False)


def _strip_brackets(value: Any) -> Any:
    # "[::1]" is how people write IPv6 next to a port; accept it and store the bare address.
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        return value[1:-1]
    return value


Addr = Annotated[
    str,
    StringConstraints(min_length=1, pattern=r"^[^\s\[\]/]+$"),
    BeforeValidator(_strip_brackets),
]


def _default_addr(data: dict[str, Any]) -> str:
    # Like runserver -6: the IPv6 loopback, unless some source named an address.
    return "::1" if data.get("ipv6") else "127.0.0.1"


class ServerConfig(BaseSettings):
    """Everything runcserver needs to know, validated; ServerConfig() alone reads all sources."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        # compose passes `CSERVER_SEED=${CSERVER_SEED:-}` as an empty string: that means unset.
        env_ignore_empty=True,
        # .env files also hold DATABASE_URL, DJANGO_* and the like.
        extra="ignore",
        frozen=True,
    )

    mode: Mode = "thread"
    workers: int = Field(8, ge=1, le=1024)
    ipv6: bool = False  # declared before addr: addr's default depends on it
    addr: Addr = Field(default_factory=_default_addr)
    port: int = Field(8000, ge=0, le=65535)
    reload: bool = True
    threading: bool = True
    delay: bool = False
    delay_min_ms: int = Field(0, ge=0, le=60000)
    delay_max_ms: int = Field(300, ge=0, le=60000)
    seed: int | None = None
    keepalive_timeout: float = Field(5.0, gt=0, le=3600, allow_inf_nan=False)
    backlog: int = Field(128, ge=1, le=65535)
    grace_period: float = Field(5.0, ge=0, le=3600, allow_inf_nan=False)
    diagnostics: bool = False
    # Open client connections (pool/fork: watched plus busy; thread: threads) before new
    # ones get an immediate 503; bounds threads and descriptors under any load.
    connection_limit: int = Field(1000, ge=1, le=1_000_000)
    # Seconds from a request's first byte to its complete head (slow clients get a 408).
    header_timeout: float = Field(10.0, gt=0, le=3600, allow_inf_nan=False)
    # Largest request body accepted (413 beyond); 0 refuses every body.
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=0, le=1 << 40)
    # Serve the diagnostics pages and headers to non-loopback clients too.
    diagnostics_allow_remote: bool = False

    @model_validator(mode="after")
    def _delay_range(self) -> ServerConfig:
        if self.delay_min_ms > self.delay_max_ms:
            raise ValueError(
                f"delay_min_ms {self.delay_min_ms} is above delay_max_ms {self.delay_max_ms}: "
                "min must be <= max"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init kwargs > env > .env ($CSERVER_ENV_FILE or ./.env) > Django settings."""
        if _MERGED_ONLY.get():
            return (init_settings,)
        from pydantic_settings import DotEnvSettingsSource

        env_file = os.environ.get(ENV_FILE_VAR) or DEFAULT_ENV_FILE
        return (
            init_settings,
            env_settings,
            DotEnvSettingsSource(settings_cls, env_file=env_file),
            DjangoSettingsSource(settings_cls),
        )


_FIELDS = ServerConfig.model_fields
_MASK = "********"


def _is_secret(value: Any) -> bool:
    return isinstance(value, SecretStr | SecretBytes | Secret)


@cache
def _adapter(name: str) -> TypeAdapter[Any]:
    # The field's own type and constraints, so one value can be checked on its own.
    info = _FIELDS[name]
    # Typed as Any: a runtime-built type form, which type checkers cannot follow.
    form: Any = info.annotation
    if info.metadata:
        params = (form, *info.metadata)
        form = Annotated[params]
    return TypeAdapter(form)


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
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
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


class _Default(Enum):
    ENV_FILE = "$CSERVER_ENV_FILE or ./.env"


def _flag_layer(flags: Mapping[str, Any]) -> Found:
    found: Found = {}
    for name, raw in flags.items():
        if name not in _FIELDS:
            raise TypeError(f"load_config() got an unknown flag field {name!r}")
        if raw is None:
            continue
        if isinstance(raw, Flag):
            found[name] = (raw.value, Origin("flag", raw.typed))
        elif name == "delay" and raw is False:
            found[name] = (raw, Origin("flag", "--no-delay"))
        else:
            found[name] = (raw, Origin("flag", FLAG_NAMES[name]))
    return found


def _dotenv_layer(
    env_file: str | os.PathLike[str] | _Default | None, environ: Mapping[str, str]
) -> tuple[str | None, Found, list[str]]:
    if env_file is None:
        return None, {}, []
    if isinstance(env_file, _Default):
        named = environ.get(ENV_FILE_VAR, "")
        if named and not os.path.isfile(named):
            # The user asked for this file explicitly; silently ignoring it would hide a typo.
            problem = f"{ENV_FILE_VAR}={named!r} is not valid: expected an existing file"
            return None, {}, [problem]
        path = named or DEFAULT_ENV_FILE
    else:
        path = os.fspath(env_file)
    if not os.path.isfile(path):
        return None, {}, []
    found, problems = from_dotenv(ServerConfig, path)
    return path, found, problems


def load_config(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | _Default | None = _Default.ENV_FILE,
    django_settings: bool | Any = True,
) -> ResolvedConfig:
    """Resolve the config from all sources; raise ConfigError listing every problem.

    ``flags`` holds only what the user typed (field -> value, or a ``Flag``). ``environ``
    defaults to os.environ. ``env_file=None`` skips the .env file. ``django_settings`` may be
    False (skip), True (django.conf.settings when configured) or any object with settings
    attributes.
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    env_path, dotenv_found, dotenv_problems = _dotenv_layer(env_file, environ)
    problems += dotenv_problems
    settings_found: Found = {}
    if django_settings is not False:
        settings_obj = None if django_settings is True else django_settings
        source = DjangoSettingsSource(ServerConfig, settings_obj)
        settings_found, settings_problems = source.collect()
        problems += settings_problems

    # Lowest precedence first, so each higher layer overwrites value and origin together.
    merged: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    env_found = from_environ(ServerConfig, environ)
    for layer in (settings_found, dotenv_found, env_found, _flag_layer(flags or {})):
        for name, (value, origin) in layer.items():
            merged[name] = value
            origins[name] = origin

    # Check each value alone first: every bad value gets its own line naming its source.
    valid: dict[str, Any] = {}
    for name in (name for name in _FIELDS if name in merged):
        value = merged[name]
        try:
            valid[name] = _adapter(name).validate_python(value)
        except ValidationError:
            problems.append(f"{origins[name].show(value)} is not valid: expected {expected(name)}")
    low, high = "delay_min_ms", "delay_max_ms"
    if not {low, high} & (merged.keys() - valid.keys()):  # both usable
        lo = valid.get(low, _FIELDS[low].default)
        hi = valid.get(high, _FIELDS[high].default)
        if lo > hi:
            where_lo = origins.get(low, Origin("default")).where()
            where_hi = origins.get(high, Origin("default")).where()
            problems.append(
                f"delay min {lo} ({where_lo}) is above delay max {hi} ({where_hi}): "
                "min must be <= max"
            )
    if problems:
        raise ConfigError(problems)

    token = _MERGED_ONLY.set(True)
    try:
        config = ServerConfig(**valid)
    except ValidationError as exc:  # only a check added to the model but not above lands here
        raise ConfigError([f"config is not valid: {e['msg']}" for e in exc.errors()]) from None
    finally:
        _MERGED_ONLY.reset(token)
    sources = {name: origins[name].label if name in origins else "default" for name in _FIELDS}
    return ResolvedConfig(config, MappingProxyType(sources), env_path)
