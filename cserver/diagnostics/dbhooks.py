"""How diagnostics see Django's database connections open, get used and close.

Django has a signal for a new connection but none for a closed one, so the concrete
DatabaseWrapper classes in use get their ``_close`` wrapped (only when diagnostics are
on). Each wrapper instance also gets an execute wrapper, which tells whether a request
ran queries on a connection it found already open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from django.db.backends.signals import connection_created


class ConnectionListener(Protocol):
    """Receives the connection events: the diagnostics Registry.

    Declared here rather than imported, because the registry imports this module.
    """

    def connection_opened(self, wrapper: Any) -> None: ...
    def connection_used(self, wrapper: Any) -> None: ...
    def connection_closed(self, wrapper: Any) -> None: ...


_ORIGINAL = "_cserver_diag_original_close"
_WATCHED = "_cserver_diag_watched"
_UID = "cserver.diagnostics"

# One registry at a time receives the events; wrap_application() sets it.
_active: list[ConnectionListener] = []


def install(listener: ConnectionListener) -> None:
    """Send this process's connection events to ``listener`` from now on."""
    _active[:] = [listener]
    connection_created.connect(_on_created, weak=False, dispatch_uid=_UID)


def backend_pid(wrapper: Any) -> int | None:
    """The database server's process id for this connection, without running a query."""
    raw = wrapper.connection
    if raw is None or wrapper.vendor != "postgresql":
        return None
    try:
        info = getattr(raw, "info", None)  # psycopg 3
        if info is not None:
            return int(info.backend_pid)
        return int(raw.get_backend_pid())  # psycopg2
    except Exception:
        return None


def _on_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if not _active:
        return
    _watch_class(type(connection))
    if not getattr(connection, _WATCHED, False):
        # Kept on the instance for its whole life: Django reuses the wrapper across reconnects.
        connection.execute_wrappers.append(_note_query)
        setattr(connection, _WATCHED, True)
    _active[0].connection_opened(connection)


def _note_query(execute: Callable, sql: Any, params: Any, many: bool, context: dict) -> Any:
    if _active:
        _active[0].connection_used(context["connection"])
    return execute(sql, params, many, context)


def _watch_class(cls: type) -> None:
    if _ORIGINAL in cls.__dict__:
        return
    original = cls._close  # type: ignore[attr-defined]

    def _close(self: Any) -> Any:
        try:
            return original(self)
        finally:
            # Counted even if closing raised: Django drops the connection either way.
            if _active:
                _active[0].connection_closed(self)

    setattr(cls, _ORIGINAL, original)
    cls._close = _close  # type: ignore[attr-defined]
