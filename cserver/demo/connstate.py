"""Tell whether a request used a database connection that was opened for it ("new") or reused.

Every raw connection Django opens gets a serial number (via the connection_created signal);
track_connections notes the serial each alias had when the view was entered. Comparing that with
the serial after the view's query also catches a reconnect inside the request (health checks).
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from typing import Any

from django.db import connections

_serials = itertools.count(1)  # next() on a count is atomic under the GIL
_ATTR = "cserver_demo_serial"


def mark_new_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    """connection_created receiver: give the wrapper's fresh raw connection a new serial."""
    setattr(connection, _ATTR, next(_serials))


def connection_serial(wrapper: Any) -> int | None:
    """Serial of the wrapper's open raw connection, None when it has none (0 if opened unseen)."""
    if wrapper.connection is None:
        return None
    return int(getattr(wrapper, _ATTR, 0))


def track_connections(view: Callable[..., Any]) -> Callable[..., Any]:
    """View decorator: note which raw connection (if any) each alias held as the view began.

    A decorator rather than a middleware so views without a database (/hello) pay nothing.
    The demo has no middleware that queries, so "as the view began" is "as the request came".
    """

    @functools.wraps(view)
    def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
        # initialized_only: never build a DatabaseWrapper just to look.
        request.cserver_db_serials = {
            conn.alias: connection_serial(conn) for conn in connections.all(initialized_only=True)
        }
        return view(request, *args, **kwargs)

    return wrapper


def conn_state(request: Any, wrapper: Any) -> str | None:
    """'reused' if the wrapper still uses the connection it had at request start, else 'new'.

    None when the view is not wrapped in track_connections, so the answer would be a guess.
    """
    at_start = getattr(request, "cserver_db_serials", None)
    if at_start is None:
        return None
    now = connection_serial(wrapper)
    if now is not None and at_start.get(wrapper.alias) == now:
        return "reused"
    return "new"


def backend_id(wrapper: Any) -> int | str | None:
    """The server process id on PostgreSQL; a per-process id of the sqlite3 connection otherwise."""
    if wrapper.vendor == "postgresql":
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return int(cursor.fetchone()[0])
    if wrapper.vendor == "sqlite":
        wrapper.ensure_connection()
        return f"sqlite:{os.getpid()}:{connection_serial(wrapper)}"
    return None
