"""CSERVER_DATABASE_URL: the stack's database for a project whose settings ignore DATABASE_URL.

`cserver init` uses it when the settings do not read DATABASE_URL: rather than editing the
user's settings file, the commands run through `cserver` (runcserver, migrate, probe, shell)
replace DATABASES["default"] before anything connects. manage.py, WSGI and production never
read this variable. The connection behaviour of the project's own entry is kept
(CONN_MAX_AGE, CONN_HEALTH_CHECKS, ATOMIC_REQUESTS, TEST, ...); only where the database is
and how to log in (ENGINE, NAME, USER, PASSWORD, HOST, PORT, OPTIONS) change, and
django.contrib.postgres joins INSTALLED_APPS when the database becomes PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

OVERRIDE_VAR = "CSERVER_DATABASE_URL"
POSTGRESQL = "django.db.backends.postgresql"
POSTGRES_APP = "django.contrib.postgres"
_LOCATION_KEYS = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")


class DatabaseOverrideError(Exception):
    """CSERVER_DATABASE_URL cannot be used; one line, password hidden."""


def overridden_database(url: str, current: Mapping[str, Any]) -> dict[str, Any]:
    """current (DATABASES['default']) with its location taken from url."""
    from django.core.exceptions import ImproperlyConfigured

    from cserver.demo.dburl import parse_database_url

    try:
        parsed = parse_database_url(url, name=OVERRIDE_VAR)
    except ImproperlyConfigured as exc:  # one line, password already hidden
        raise DatabaseOverrideError(str(exc)) from None
    kept = {k: v for k, v in current.items() if k not in _LOCATION_KEYS}
    location = {k: parsed[k] for k in _LOCATION_KEYS if k in parsed}
    return {**kept, **location}


def apply_database_override(environ: Mapping[str, str] | None = None) -> bool:
    """Replace settings.DATABASES['default'] when CSERVER_DATABASE_URL is set; True if done."""
    url = (os.environ if environ is None else environ).get(OVERRIDE_VAR, "").strip()
    if not url:
        return False
    from django.conf import settings

    databases = settings.DATABASES
    databases["default"] = overridden_database(url, databases.get("default", {}))
    apps = list(settings.INSTALLED_APPS)
    if databases["default"]["ENGINE"] == POSTGRESQL and POSTGRES_APP not in apps:
        # Settings written for SQLite now meet PostgreSQL: apps that detect it (Wagtail's
        # search index, for one) fail their checks without django.contrib.postgres.
        settings.INSTALLED_APPS = [*apps, POSTGRES_APP]
    return True
