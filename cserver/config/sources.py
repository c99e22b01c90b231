"""Where cserver configuration values come from, each value tagged with the name the user typed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource

from cserver.booleans import parse_bool

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

ENV_PREFIX = "CSERVER_"
DEFAULT_ENV_FILE = ".env"
ENV_FILE_VAR = "CSERVER_ENV_FILE"


class ConfigError(Exception):
    """Bad configuration; ``problems`` holds one user-facing line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def env_name(field: str) -> str:
    """The environment variable for a field, e.g. ``CSERVER_WORKERS``."""
    return f"{ENV_PREFIX}{field.upper()}"


@dataclass(frozen=True)
class Origin:
    """One source of one value, named the way the user wrote it."""

    kind: Literal["flag", "env", "dotenv", "settings", "default"]
    name: str = ""  # "--workers", "CSERVER_PORT", "settings.CSERVER['workers']"
    file: str = ""  # the .env file, for kind "dotenv"

    @property
    def label(self) -> str:
        """The value for ``ResolvedConfig.sources``, e.g. ``flag --workers``."""
        prefix = {"flag": "flag ", "env": "env ", "dotenv": ".env ", "settings": ""}
        return "default" if self.kind == "default" else prefix[self.kind] + self.name

    def where(self) -> str:
        """Short reference used inside messages, e.g. ``CSERVER_DELAY_MIN_MS in .env``."""
        if self.kind == "default":
            return "default"
        return f"{self.name} in {self.file}" if self.kind == "dotenv" else self.name

    def show(self, value: Any) -> str:
        """How the user wrote this value: ``--workers 0``, ``CSERVER_PORT='abc'``."""
        if self.kind == "flag":
            return f"{self.name} {value}"
        if self.kind == "dotenv":
            return f"{self.name}={value!r} in {self.file}"
        if self.kind == "default":
            return f"default {value!r}"
        return f"{self.name}={value!r}"


# field -> (raw value, where it came from)
Found = dict[str, tuple[Any, Origin]]


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env source reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # read by _load_env_vars during super().__init__
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        fold = (lambda k: k) if self.case_sensitive else str.lower
        return {
            fold(k): v for k, v in self._environ.items() if not (self.env_ignore_empty and v == "")
        }


def from_environ(settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> Found:
    """Values from CSERVER_* environment variables (case-insensitive, empty means unset)."""
    data = _MappingEnvSource(settings_cls, environ)()
    found: Found = {}
    for field, value in data.items():
        if field not in settings_cls.model_fields:
            continue
        # Report the spelling actually present; pydantic-settings lets the last one win.
        wanted = env_name(field).lower()
        typed = [k for k, v in environ.items() if k.lower() == wanted and v != ""]
        found[field] = (value, Origin("env", typed[-1] if typed else env_name(field)))
    return found


def from_dotenv(settings_cls: type[BaseSettings], path: str) -> tuple[Found, list[str]]:
    """Values from CSERVER_* lines of a .env file; other lines are ignored."""
    try:
        data = DotEnvSettingsSource(settings_cls, env_file=path)()
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"cannot read env file {path}: {exc}"]
    found: Found = {
        field: (value, Origin("dotenv", env_name(field), path))
        for field, value in data.items()
        if field in settings_cls.model_fields
    }
    return found, []


def _settings_object(settings: Any) -> Any:
    """``settings`` itself, or Django's when None and a settings module is configured."""
    if settings is not None:
        return settings
    from django.conf import settings as django_settings

    # `configured` stays False until first access even when DJANGO_SETTINGS_MODULE is set,
    # so that variable counts too; a broken settings module then raises Django's own error,
    # which is more useful than anything we could say about it.
    if django_settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE"):
        return django_settings
    return None


# Legacy names of the original package and of runserver: name -> field.
_LEGACY = (
    ("CONCURRENT_RANDOM_DELAY", "delay"),
    ("RUNSERVER_DEFAULT_ADDR", "addr"),
    ("RUNSERVER_DEFAULT_PORT", "port"),
)


def from_django_settings(
    settings_cls: type[BaseSettings], settings: Any = None
) -> tuple[Found, list[str]]:
    """Values from Django settings: ``settings.CSERVER`` first, then the legacy names.

    ``settings`` is any object with settings attributes; None means django.conf.settings
    when a settings module is configured.
    """
    settings = _settings_object(settings)
    found: Found = {}
    problems: list[str] = []
    if settings is None:
        return found, problems

    def legacy(name: str) -> Any:
        return getattr(settings, name, None)

    if (threading := legacy("CONCURRENT_THREADING")) is not None:
        as_bool = parse_bool(threading)
        if as_bool is None:
            problems.append(
                f"settings.CONCURRENT_THREADING={threading!r} is not valid: expected True or False"
            )
        else:
            mode = "thread" if as_bool else "fork"
            found["mode"] = (mode, Origin("settings", "settings.CONCURRENT_THREADING"))
    for name, field in _LEGACY:
        if (value := legacy(name)) is not None:
            found[field] = (value, Origin("settings", f"settings.{name}"))

    table = legacy("CSERVER")
    if table is None:
        return found, problems
    if not isinstance(table, Mapping):
        problems.append(
            f"settings.CSERVER={table!r} is not valid: expected a dict such as "
            "{'mode': 'pool', 'workers': 8}"
        )
        return found, problems
    fields = settings_cls.model_fields
    for key, value in table.items():
        field = key.lower() if isinstance(key, str) else ""
        if field not in fields:
            problems.append(
                f"settings.CSERVER[{key!r}] is not a known setting: expected one of "
                + ", ".join(fields)
            )
            continue
        found[field] = (value, Origin("settings", f"settings.CSERVER[{key!r}]"))
    return found, problems


class Default(Enum):
    """Sentinels for arguments whose default is worked out at call time."""

    ENV_FILE = "$CSERVER_ENV_FILE or ./.env"


def _dotenv_layer(
    settings_cls: type[BaseSettings],
    env_file: str | os.PathLike[str] | Default | None,
    environ: Mapping[str, str],
) -> tuple[str | None, Found, list[str]]:
    if env_file is None:
        return None, {}, []
    if isinstance(env_file, Default):
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
    found, problems = from_dotenv(settings_cls, path)
    return path, found, problems


@dataclass(frozen=True)
class Gathered:
    """The raw value of every setting some source gave, and which source gave it."""

    values: Mapping[str, Any]
    origins: Mapping[str, Origin]
    env_file: str | None  # the .env file actually read, if any
    problems: list[str]  # how sources are written (not their values, which the model checks)


def gather(
    settings_cls: type[BaseSettings],
    flags: Found,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | Default | None = Default.ENV_FILE,
    django_settings: bool | Any = True,
) -> Gathered:
    """Read every source and merge them; the one place that says which source wins.

    Highest first: ``flags``, the environment (``environ``, default os.environ), the .env
    file (``env_file``; None skips it), Django settings (``django_settings``: False skips
    them, True means django.conf.settings when configured, or any object with settings
    attributes). A setting no source gives is left to the model's default.
    """
    environ = os.environ if environ is None else environ
    env_path, dotenv_found, problems = _dotenv_layer(settings_cls, env_file, environ)
    settings_found: Found = {}
    if django_settings is not False:
        settings_obj = None if django_settings is True else django_settings
        settings_found, settings_problems = from_django_settings(settings_cls, settings_obj)
        problems += settings_problems
    env_found = from_environ(settings_cls, environ)
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    # Lowest first, so each higher layer overwrites value and origin together.
    for layer in (settings_found, dotenv_found, env_found, flags):
        for name, (value, origin) in layer.items():
            values[name] = value
            origins[name] = origin
    return Gathered(values, origins, env_path, problems)
