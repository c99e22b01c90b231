"""The demo's settings from environment variables: one pydantic-settings model, one-line errors.

DATABASE_URL is parsed by cserver.demo.dburl, not by dj-database-url: measured on the same URLs
(tests/test_demo.py), dj-database-url keeps isolation_level as text (Django's psycopg backend
then fails on it), leaves a relative SQLite path relative (a reloaded or forked process that
changed directory opens another file), turns `sqlite://` into an in-memory database and
`sqlite://host/x.db` into x.db without a word, accepts `?pool=true` past the pool checks below
and a name with '/', and reports a bad port as "not a valid url" without naming the port.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Annotated, Any, Literal

import django
from django.core.exceptions import ImproperlyConfigured
from pydantic import AliasChoices, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cserver.booleans import Bool
from cserver.compat import HAS_DB_POOL
from cserver.demo.dburl import SQLITE_OPTIONS, parse_database_url

DEFAULT_SQLITE = "cserver-demo.sqlite3"
INSECURE_KEY = "django-insecure-cserver-demo-only-for-local-use"


def _seconds_or_none(value: Any) -> Any:
    """DJANGO_CONN_MAX_AGE: 'None' (any case) keeps connections open; else whole seconds."""
    if not isinstance(value, str):
        return value
    if value.lower() == "none":
        return None
    if value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    raise ValueError("not a whole number of seconds")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _env(name: str) -> Any:
    # Exactly the name users type; AliasChoices keeps pydantic from accepting the field name.
    return AliasChoices(name)


class DemoEnv(BaseSettings):
    """Every variable the demo's settings read; DemoEnv() reads them from the environment."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,  # compose passes unset variables as "": that means the default
        extra="ignore",
        frozen=True,
    )

    debug: Bool = Field(True, validation_alias=_env("DJANGO_DEBUG"))
    allowed_hosts: str = Field("*", validation_alias=_env("DJANGO_ALLOWED_HOSTS"))
    secret_key: str = Field(INSECURE_KEY, validation_alias=_env("DJANGO_SECRET_KEY"), repr=False)
    conn_max_age: Annotated[int | None, BeforeValidator(_seconds_or_none)] = Field(
        0, validation_alias=_env("DJANGO_CONN_MAX_AGE")
    )
    conn_health_checks: Bool = Field(False, validation_alias=_env("DJANGO_CONN_HEALTH_CHECKS"))
    db_pool: Bool = Field(False, validation_alias=_env("DJANGO_DB_POOL"))
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = (
        Field("INFO", validation_alias=_env("DJANGO_LOG_LEVEL"))
    )
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"), repr=False)
    sqlite_path: str = Field(DEFAULT_SQLITE, validation_alias=_env("CSERVER_DEMO_SQLITE"))

    @property
    def allowed_host_list(self) -> list[str]:
        """DJANGO_ALLOWED_HOSTS split at commas."""
        return [item.strip() for item in self.allowed_hosts.split(",") if item.strip()]


# What each variable accepts, for the one-line error (the model's own messages name fields).
_EXPECTED = {
    "DJANGO_DEBUG": "true or false",
    "DJANGO_CONN_HEALTH_CHECKS": "true or false",
    "DJANGO_DB_POOL": "true or false",
    "DJANGO_CONN_MAX_AGE": "a whole number of seconds (0 = close after each request) "
    "or None (keep connections open)",
    "DJANGO_LOG_LEVEL": "one of DEBUG, INFO, WARNING, ERROR",
}


def load_demo_env() -> DemoEnv:
    """Read the environment; ImproperlyConfigured naming each bad variable on one line."""
    try:
        return DemoEnv()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            shown = os.environ.get(name, error.get("input"))
            expected = _EXPECTED.get(name, error["msg"])
            problems.append(f"{name}={shown!r} is not valid: expected {expected}")
        raise ImproperlyConfigured("; ".join(problems)) from None


def database_settings(env: DemoEnv) -> dict[str, Any]:
    """DATABASES["default"] from DATABASE_URL (or the SQLite file) and DJANGO_CONN_*."""
    if env.database_url is not None:
        db = parse_database_url(env.database_url)
    else:
        # Absolute now, so a reloaded or forked process that changed directory finds the file.
        db = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.abspath(os.path.expanduser(env.sqlite_path)),
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    db["CONN_MAX_AGE"] = env.conn_max_age
    db["CONN_HEALTH_CHECKS"] = env.conn_health_checks
    if env.db_pool:
        _enable_pool(db)
    return db


def _enable_pool(db: dict[str, Any]) -> None:
    shown = "DJANGO_DB_POOL=true"
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"{shown} is not valid with SQLite: connection pooling needs PostgreSQL "
            "(set DATABASE_URL=postgres://...) or DJANGO_DB_POOL=false"
        )
    if not HAS_DB_POOL:
        raise ImproperlyConfigured(
            f"{shown} needs Django 5.1 or later (installed: {django.get_version()}), "
            "whose PostgreSQL backend added the pool; or set DJANGO_DB_POOL=false"
        )
    if db["CONN_MAX_AGE"] != 0:
        raise ImproperlyConfigured(
            f"{shown} is not valid with DJANGO_CONN_MAX_AGE={db['CONN_MAX_AGE']}: "
            "the pool keeps connections itself, so use DJANGO_CONN_MAX_AGE=0"
        )
    if importlib.util.find_spec("psycopg_pool") is None:
        raise ImproperlyConfigured(
            f"{shown} needs the psycopg-pool package: pip install 'cserver[pool]'"
        )
    db["OPTIONS"]["pool"] = True
