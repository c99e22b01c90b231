"""Read the demo's settings from environment variables, with one-line errors."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import django
from django.core.exceptions import ImproperlyConfigured

from cserver.compat import HAS_DB_POOL
from cserver.demo.dburl import SQLITE_OPTIONS, parse_database_url

DEFAULT_SQLITE = "cserver-demo.sqlite3"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _get(environ: Mapping[str, str], name: str) -> str | None:
    """The stripped value of name, or None when unset or empty (empty means 'use the default')."""
    value = environ.get(name, "").strip()
    return value or None


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """Parse a true/false variable (1/0, yes/no, on/off accepted)."""
    value = _get(environ, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not valid: expected true or false")


def env_list(environ: Mapping[str, str], name: str, default: str) -> list[str]:
    """Parse a comma-separated list."""
    value = _get(environ, name) or default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(
    environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]
) -> str:
    """Parse a variable that must be one of choices (case-insensitive, returned as in choices)."""
    value = _get(environ, name)
    if value is None:
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ImproperlyConfigured(
        f"{name}={value!r} is not valid: expected one of {', '.join(choices)}"
    )


def conn_max_age(environ: Mapping[str, str]) -> int | None:
    """DJANGO_CONN_MAX_AGE: seconds to keep a connection, or None for 'forever'."""
    value = _get(environ, "DJANGO_CONN_MAX_AGE")
    if value is None:
        return 0
    if value.lower() == "none":
        return None
    if value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    raise ImproperlyConfigured(
        f"DJANGO_CONN_MAX_AGE={value!r} is not valid: expected a whole number of seconds "
        "(0 = close after each request) or None (keep connections open)"
    )


def database_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Build DATABASES["default"] from DATABASE_URL / CSERVER_DEMO_SQLITE and DJANGO_CONN_*."""
    url = _get(environ, "DATABASE_URL")
    if url is not None:
        db = parse_database_url(url)
    else:
        path = _get(environ, "CSERVER_DEMO_SQLITE") or DEFAULT_SQLITE
        # Absolute now, so a reloaded or forked process that changed directory finds the file.
        db = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.abspath(os.path.expanduser(path)),
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    db["CONN_MAX_AGE"] = conn_max_age(environ)
    db["CONN_HEALTH_CHECKS"] = env_bool(environ, "DJANGO_CONN_HEALTH_CHECKS", False)
    if env_bool(environ, "DJANGO_DB_POOL", False):
        _enable_pool(db, environ)
    return db


def _enable_pool(db: dict[str, Any], environ: Mapping[str, str]) -> None:
    shown = f"DJANGO_DB_POOL={_get(environ, 'DJANGO_DB_POOL')!r}"
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
