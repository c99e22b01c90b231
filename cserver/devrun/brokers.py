"""Is the Redis the side processes need there? One line before they start, not a wall of retries.

A Celery worker whose broker is down retries forever with a traceback per attempt; the one
line here names the URL (without its password), the setting it came from and what to do.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from cserver.redact import redact_url

# Where a project keeps its Redis URLs: Celery's settings (namespace CELERY), the usual
# environment variables, and the cache backends.
URL_SETTINGS = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "BROKER_URL")
URL_VARIABLES = ("CELERY_BROKER_URL", "REDIS_URL", "CELERY_RESULT_BACKEND")
CONNECT_TIMEOUT = 0.5


def redis_urls(settings: Any, environ: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """(url, where it comes from) for each Redis URL the project uses, settings first."""
    for name in URL_SETTINGS:
        value = getattr(settings, name, None)
        if isinstance(value, str) and value.startswith(("redis://", "rediss://")):
            yield value, f"settings.{name}"
    for alias, cache in (getattr(settings, "CACHES", None) or {}).items():
        locations = cache.get("LOCATION") if isinstance(cache, dict) else None
        for location in [locations] if isinstance(locations, str) else locations or []:
            if isinstance(location, str) and location.startswith(("redis://", "rediss://")):
                yield location, f"settings.CACHES[{alias!r}]['LOCATION']"
    for name in URL_VARIABLES:
        value = environ.get(name, "")
        if value.startswith(("redis://", "rediss://")):
            yield value, f"the environment variable {name}"


def unreachable(url: str) -> str | None:
    """Why a TCP connection to the URL's host and port fails, or None when it succeeds."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 6379
    except ValueError:
        return "its port is not a number"
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def redis_warnings(settings: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per distinct Redis URL that does not answer."""
    seen: set[str] = set()
    lines = []
    for url, where in redis_urls(settings, os.environ if environ is None else environ):
        if url in seen:
            continue
        seen.add(url)
        reason = unreachable(url)
        if reason is not None:
            lines.append(
                f"warning: Redis at {redact_url(url)} ({where}) is not reachable: {reason}; "
                "start redis-server (or valkey-server), or point the setting at one that runs"
            )
    return lines
