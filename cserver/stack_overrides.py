"""The stack's services applied to a project's settings, whatever process reads them.

`cserver.project_settings` calls apply_stack_values() after importing the project's own
settings module. Only where things are changes: DATABASES["default"] gets the stack's
PostgreSQL (CSERVER_DATABASE_URL), and Redis URLs that point at this machine (localhost,
which inside a container is the container itself) get the stack's Redis (CSERVER_REDIS_URL).
A Redis elsewhere (a team's shared instance) is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cserver.database_override import OVERRIDE_VAR, POSTGRES_APP, POSTGRESQL, overridden_database

REDIS_VAR = "CSERVER_REDIS_URL"
CSERVER_APP = "cserver"
# Settings that hold one broker / result URL (Celery's names, old and new).
_URL_SETTINGS = (
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "BROKER_URL",
    "CELERY_RESULT_BACKEND_URL",
    "REDIS_URL",
)
_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", "0.0.0.0"})


class StackSettingsError(Exception):
    """The project's settings cannot load in the stack; the message names what to set.

    Not ImproperlyConfigured: Django's command runner swallows that one while it loads
    settings, and a shell would start without them instead of saying why.
    """


def is_local_redis(url: object) -> bool:
    """True for a redis:// or rediss:// URL whose host is this machine."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://")):
        return False
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return host in _LOCAL_HOSTS


def stack_redis_url(url: str, stack: str) -> str:
    """url pointed at the stack's Redis, keeping its database number and query."""
    old, new = urlsplit(url), urlsplit(stack)
    path = old.path if old.path not in ("", "/") else new.path
    return urlunsplit((new.scheme, new.netloc, path, old.query or new.query, ""))


def _redirect(value: Any, stack: str) -> Any:
    """value with every local Redis URL in it (a string, list or tuple) redirected."""
    if is_local_redis(value):
        return stack_redis_url(value, stack)
    if isinstance(value, (list, tuple)):
        return type(value)(_redirect(item, stack) for item in value)
    return value


def _redis_settings(namespace: MutableMapping[str, Any], stack: str) -> list[str]:
    changed = []
    for name in _URL_SETTINGS:
        if name in namespace and is_local_redis(namespace[name]):
            namespace[name] = stack_redis_url(namespace[name], stack)
            changed.append(name)
    for alias, cache in dict(namespace.get("CACHES") or {}).items():
        if isinstance(cache, dict) and "LOCATION" in cache:
            location = _redirect(cache["LOCATION"], stack)
            if location != cache["LOCATION"]:
                caches = namespace["CACHES"]
                namespace["CACHES"] = {**caches, alias: {**cache, "LOCATION": location}}
                changed.append(f"CACHES[{alias!r}]")
    for alias, layer in dict(namespace.get("CHANNEL_LAYERS") or {}).items():
        config = layer.get("CONFIG") if isinstance(layer, dict) else None
        if isinstance(config, dict) and "hosts" in config:
            hosts = _redirect(config["hosts"], stack)
            if hosts != config["hosts"]:
                layer = {**layer, "CONFIG": {**config, "hosts": hosts}}
                namespace["CHANNEL_LAYERS"] = {**namespace["CHANNEL_LAYERS"], alias: layer}
                changed.append(f"CHANNEL_LAYERS[{alias!r}]")
    return changed


def apply_stack_values(
    namespace: MutableMapping[str, Any], environ: Mapping[str, str]
) -> list[str]:
    """Point the settings in namespace at the stack's services; the names changed."""
    changed = []
    database_url = environ.get(OVERRIDE_VAR, "").strip()
    if database_url:
        databases = dict(namespace.get("DATABASES") or {})
        databases["default"] = overridden_database(database_url, databases.get("default", {}))
        namespace["DATABASES"] = databases
        changed.append("DATABASES['default']")
        apps = list(namespace.get("INSTALLED_APPS", []))
        if databases["default"].get("ENGINE") == POSTGRESQL and POSTGRES_APP not in apps:
            namespace["INSTALLED_APPS"] = [*apps, POSTGRES_APP]
    redis_url = environ.get(REDIS_VAR, "").strip()
    if redis_url:
        changed += _redis_settings(namespace, redis_url)
    apps = list(namespace.get("INSTALLED_APPS", []))
    if CSERVER_APP not in apps and not any(a.startswith("cserver.") for a in apps):
        # `python manage.py runcserver` in the container, like `python -m cserver runcserver`.
        namespace["INSTALLED_APPS"] = [*apps, CSERVER_APP]
    return changed
