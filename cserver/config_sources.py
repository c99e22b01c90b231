"""Where cserver configuration values come from, each value tagged with the name the user typed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource, PydanticBaseSettingsSource

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


def _lax_bool(value: Any) -> bool | None:
    try:
        return TypeAdapter(bool).validate_python(value)
    except ValidationError:
        return None


class DjangoSettingsSource(PydanticBaseSettingsSource):
    """Values from Django settings: ``settings.CSERVER`` first, then the legacy names."""

    def __init__(self, settings_cls: type[BaseSettings], settings: Any = None) -> None:
        super().__init__(settings_cls)
        self._settings = settings

    def _django_settings(self) -> Any:
        if self._settings is not None:
            return self._settings
        from django.conf import settings

        # `configured` stays False until first access even when DJANGO_SETTINGS_MODULE is
        # set, so that variable counts too; a broken settings module then raises Django's
        # own error, which is more useful than anything we could say about it.
        if settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE"):
            return settings
        return None

    def collect(self) -> tuple[Found, list[str]]:
        """Values found in Django settings, and the problems in how they are written."""
        settings = self._django_settings()
        found: Found = {}
        problems: list[str] = []
        if settings is None:
            return found, problems

        def legacy(name: str) -> Any:
            return getattr(settings, name, None)

        if (threading := legacy("CONCURRENT_THREADING")) is not None:
            as_bool = _lax_bool(threading)
            if as_bool is None:
                problems.append(
                    f"settings.CONCURRENT_THREADING={threading!r} is not valid: "
                    "expected True or False"
                )
            else:
                mode = "thread" if as_bool else "fork"
                found["mode"] = (mode, Origin("settings", "settings.CONCURRENT_THREADING"))
        for name, field in (
            ("CONCURRENT_RANDOM_DELAY", "delay"),
            ("RUNSERVER_DEFAULT_ADDR", "addr"),
            ("RUNSERVER_DEFAULT_PORT", "port"),
        ):
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
        fields = self.settings_cls.model_fields
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

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Required by the base class; __call__ reads all fields at once."""
        found, _ = self.collect()
        return (found[field_name][0] if field_name in found else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        found, problems = self.collect()
        if problems:
            raise ConfigError(problems)
        return {field: value for field, (value, _) in found.items()}
