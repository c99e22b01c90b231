"""Turn a DATABASE_URL into a Django DATABASES entry, without ever echoing the password."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from cserver.booleans import parse_bool
from cserver.compat import supported_sqlite_options
from cserver.redact import redact_url

ACCEPTED = (
    "expected postgres://USER:PASSWORD@HOST:PORT/NAME (or postgresql://) "
    "with optional ?sslmode=...-style options, or sqlite:///PATH"
)

# SQLite serialises writers; a long busy timeout plus WAL and BEGIN IMMEDIATE make concurrent
# writes from several worker threads queue up instead of failing with "database is locked".
# Django before 5.1 has no init_command or transaction_mode: only the timeout remains there.
SQLITE_OPTIONS: dict[str, Any] = supported_sqlite_options(
    {
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
)

POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "pgsql"})

# Django reads these OPTIONS keys itself and wants typed values, not the query-string text.
_ISOLATION_LEVELS = ("read_uncommitted", "read_committed", "repeatable_read", "serializable")


def _error(url: str, reason: str, name: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={redact_url(url)!r} is not valid: {reason}; {ACCEPTED}")


def _postgres_options(query: str, url: str, name: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "pool":
            raise _error(url, "'pool' is not a URL option (set DJANGO_DB_POOL=true)", name)
        if key == "isolation_level":
            from psycopg import IsolationLevel

            level = value.strip().lower().replace(" ", "_")
            if level not in _ISOLATION_LEVELS:
                raise _error(url, f"isolation_level must be one of {_ISOLATION_LEVELS}", name)
            options[key] = IsolationLevel[level.upper()]
        elif key == "server_side_binding":
            flag = parse_bool(value)
            if flag is None:
                raise _error(url, "server_side_binding must be true or false", name)
            options[key] = flag
        elif key == "prepare_threshold":
            if not value.isdigit():
                raise _error(url, "prepare_threshold must be a whole number", name)
            options[key] = int(value)
        else:
            options[key] = value  # libpq connection parameter such as sslmode, connect_timeout
    return options


def parse_database_url(url: str, *, name: str = "DATABASE_URL") -> dict[str, Any]:
    """Return a DATABASES["default"]-style dict for a postgres:// or sqlite:/// URL."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced "[" in the host
        raise _error(url, f"it is not a URL ({exc})", name) from None
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs/path.db -> "/abs/path.db"
        if parts.netloc:
            raise _error(url, "a sqlite URL has no host part (use three slashes)", name)
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise _error(url, "the sqlite path is empty", name)
        if path != ":memory:":
            path = os.path.abspath(os.path.expanduser(path))
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    if scheme not in POSTGRES_SCHEMES:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise _error(url, f"{shown} is not supported", name)
    try:
        port = parts.port
    except ValueError:
        raise _error(url, "the port must be a number from 0 to 65535", name) from None
    raw_name = parts.path.lstrip("/")
    if not raw_name:
        raise _error(url, "the database name is missing", name)
    if "/" in raw_name:
        raise _error(url, "the database name must not contain '/' (encode it as %2F)", name)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(raw_name),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": _host(parts.netloc),
        "PORT": str(port) if port is not None else "",
        "OPTIONS": _postgres_options(parts.query, url, name),
    }


def _host(netloc: str) -> str:
    """Host part of netloc, case kept (a %2F-encoded host is a socket directory), no brackets."""
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        return hostport[1:].partition("]")[0]
    return unquote(hostport.partition(":")[0])
