"""The environment variables a project's settings read, given their values in the stack.

Settings often build DATABASES from variables of their own (DJANGO_DB_ENGINE, DB_HOST, ...)
and raise when one is missing. compose.yaml sets those that are about the database to the
stack's PostgreSQL (fixed values: a developer's .env pointing at localhost must not win),
gives the few a development stack can choose (a secret key, DEBUG, ALLOWED_HOSTS) an
overridable default when the settings cannot start without them, and leaves the rest to the
project's .env, which every service reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cserver.stack.detect import Project
from cserver.stack.services import REDIS_URL
from cserver.stack.settings_scan import EnvRead

_DB = r"(?:^|_)(?:DB|DATABASE|POSTGRES|PG|POSTGRESQL)_?"
# (pattern, value); {user}, {password}, {name}, {url} are filled in per project.
_DATABASE_VALUES = (
    (r"(?:^|_)(?:DATABASE|DB)_URL$|^DATABASE_URL$", "{url}"),
    (rf"{_DB}ENGINE$", "django.db.backends.postgresql"),
    (rf"{_DB}HOST(?:NAME)?$|^PGHOST$", "db"),
    (rf"{_DB}PORT$|^PGPORT$", "5432"),
    (rf"{_DB}(?:NAME|DB)$|^PGDATABASE$", "{name}"),
    (rf"{_DB}USER(?:NAME)?$|^PGUSER$", "{user}"),
    (rf"{_DB}PASS(?:WORD)?$|^PGPASSWORD$", "{password}"),
)
# With Redis in the stack: the broker, result backend and cache URLs the settings read.
_REDIS_VALUES = (
    (
        r"(?:^|_)(?:REDIS|BROKER|RESULT_BACKEND|CACHE_REDIS|VALKEY)_URL$|^CELERY_RESULT_BACKEND$",
        "{redis}",
    ),
    (r"(?:^|_)(?:REDIS|VALKEY)_HOST$", "redis"),
    (r"(?:^|_)(?:REDIS|VALKEY)_PORT$", "6379"),
)
# Only when the settings need them to import: a development value, overridable in .env.
_DEVELOPMENT_DEFAULTS = (
    (r"SECRET_KEY$", "cserver-development-only-not-a-secret"),
    (r"(?:^|_)DEBUG$", "true"),
    (r"ALLOWED_HOSTS$", "*"),
)
# Never set from here: the stack sets them itself.
_OWN = frozenset({"DJANGO_SETTINGS_MODULE", "CSERVER_PROJECT_SETTINGS"})


@dataclass(frozen=True)
class StackVariable:
    """A variable the settings read, and the compose line that sets it (None: .env's job)."""

    read: EnvRead
    compose_line: str | None
    meaning: str


def stack_variables(
    reads: tuple[EnvRead, ...], db_name: str, redis: bool = False
) -> list[StackVariable]:
    """What compose does about each variable the project's settings read."""
    user = f"${{POSTGRES_USER:-{db_name}}}"
    password = f"${{POSTGRES_PASSWORD:-{db_name}}}"
    name = f"${{POSTGRES_DB:-{db_name}}}"
    fill = {
        "user": user,
        "password": password,
        "name": name,
        "url": f"postgres://{user}:{password}@db:5432/{name}",
        "redis": REDIS_URL,
    }
    found = []
    for read in reads:
        if read.name in _OWN or read.name.startswith("CSERVER_"):
            continue
        value = next((v for p, v in _DATABASE_VALUES if re.search(p, read.name)), None)
        if value is not None:
            line = f"{read.name}: {value.format(**fill)}"
            found.append(StackVariable(read, line, "the stack's PostgreSQL"))
            continue
        value = next((v for p, v in _REDIS_VALUES if re.search(p, read.name)), None)
        if value is not None and redis:
            line = f"{read.name}: {value.format(**fill)}"
            found.append(StackVariable(read, line, "the stack's Redis"))
            continue
        default = next((v for p, v in _DEVELOPMENT_DEFAULTS if re.search(p, read.name)), None)
        if default is not None and read.required:
            line = f'{read.name}: "${{{read.name}:-{default}}}"'
            found.append(StackVariable(read, line, f"default {default!r}, .env overrides it"))
            continue
        meaning = "needed: set it in .env" if read.required else "optional: .env passes it"
        found.append(StackVariable(read, None, meaning))
    return found


def project_variables(project: Project) -> list[StackVariable]:
    """stack_variables for a detected project (none for the demo, which reads its own)."""
    if project.demo:
        return []
    return stack_variables(project.env_reads, project.name, project.redis)


def unset_required(variables: list[StackVariable]) -> list[StackVariable]:
    """The variables the settings cannot import without and that the stack does not set."""
    return [v for v in variables if v.compose_line is None and v.read.required]
