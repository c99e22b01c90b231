"""Who owns Django's database connections in each concurrency mode, and when they close."""

from __future__ import annotations

import logging

from django.db import connections

from cserver.server import Lifecycle

logger = logging.getLogger("cserver")

# Connections a forked child inherited: kept referenced so garbage collection never runs
# their close(), which would end the parent's session over the shared socket.
_inherited: list[object] = []


def close_thread_connections() -> None:
    """Close the calling thread's connections (Django keeps them thread-local)."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:
            logger.exception("closing database connection %r failed", conn.alias)


def close_pools() -> None:
    """Close psycopg pools (OPTIONS={"pool": True}); they are shared by the whole process."""
    for conn in connections.all():
        # Checked on the class: the ``pool`` property would create a pool to close it.
        pools = getattr(type(conn), "_connection_pools", None)
        if pools and conn.alias in pools:
            try:
                conn.close_pool()
            except Exception:
                logger.exception("closing connection pool %r failed", conn.alias)


def close_all() -> None:
    close_thread_connections()
    close_pools()


def forget_inherited_connections() -> None:
    """In a forked child: drop, without closing, anything the parent had open."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None
        pools = getattr(type(conn), "_connection_pools", None)
        if pools:
            _inherited.extend(pools.values())
            pools.clear()


def django_lifecycle() -> Lifecycle:
    """The hooks that give each mode gunicorn-like connection ownership."""
    return Lifecycle(
        connection_finished=close_thread_connections,
        worker_stopped=close_thread_connections,
        child_started=forget_inherited_connections,
        child_finished=close_all,
        server_stopped=close_all,
    )
