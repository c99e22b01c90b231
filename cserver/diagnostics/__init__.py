"""Opt-in observability (CSERVER_DIAGNOSTICS / --diagnostics): response headers and a status page.

Every response gets ``X-Cserver-Worker``, ``X-Cserver-Pid``, ``X-Cserver-Thread`` and
``X-Cserver-Db``; ``/__cserver__/`` (HTML) and ``/__cserver__/stats`` (JSON) show workers,
requests in flight, database connections and recent requests, to loopback clients only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cserver.diagnostics.middleware import PREFIX, STATS_PATH, DiagnosticsApp

if TYPE_CHECKING:
    from cserver.config import ServerConfig
    from cserver.diagnostics.asgi import ASGIDiagnosticsApp

__all__ = [
    "PREFIX",
    "STATS_PATH",
    "DiagnosticsApp",
    "wrap_application",
    "wrap_asgi_application",
]


def wrap_asgi_application(app: Callable, config: ServerConfig) -> ASGIDiagnosticsApp:
    """Wrap the ASGI ``app`` (asgi mode) with the same diagnostics as a WSGI one."""
    from cserver.diagnostics.asgi import ASGIDiagnosticsApp

    return ASGIDiagnosticsApp(app, wrap_application(app, config))


def wrap_application(app: Callable, config: ServerConfig) -> DiagnosticsApp:
    """Wrap the WSGI ``app`` with diagnostics; call before the server forks any worker."""
    from django.conf import settings

    from cserver.diagnostics import dbhooks
    from cserver.diagnostics.page import database_rows
    from cserver.diagnostics.registry import Registry

    mode = config.mode if config.threading else "single"
    registry = Registry(mode, config.workers, config.processes)
    dbhooks.install(registry)
    delay = f"{config.delay_min_ms}-{config.delay_max_ms} ms" if config.delay else "off"
    info: dict[str, Any] = {
        "delay": delay,
        "databases": database_rows(getattr(settings, "DATABASES", {})),
    }
    return DiagnosticsApp(app, registry, info, allow_remote=config.diagnostics_allow_remote)
