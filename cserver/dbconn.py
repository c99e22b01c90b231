"""Who owns Django's database connections in each concurrency mode, and when they close."""

from __future__ import annotations

import logging

from django.db import connections

from cserver.server import Lifecycle

logger = logging.getLogger("cserver")

# Connections a forked child inherited: kept referenced so garbage collection never runs
# their close(), which would end the parent's session over the shared socket.
_inherited: list[object] = []

# A fork-mode child serves one client on one thread, so it checks out one connection per
# alias; psycopg_pool's default size (4, opened up front) would mean four sessions opened
# for every client connection. An empty pool that grows on demand to the same maximum
# opens exactly the connections the child uses (min_size=0 needs psycopg_pool >= 3.2).
CHILD_POOL_OPTIONS = {"min_size": 0, "max_size": 4}


def first_line(exc: BaseException) -> str:
    """A database error in one line (drivers add detail lines), for a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    """Close the calling thread's connections, then every pool of the process."""
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


def size_child_pools() -> None:
    """In a forked child: open one pooled connection, not four, where the pool is default."""
    for alias in connections:
        options = connections.settings[alias].get("OPTIONS", {})
        # Only ``True``; a dict is the project's own sizing and is left alone.
        if options.get("pool") is True and _pool_can_start_empty():
            options["pool"] = dict(CHILD_POOL_OPTIONS)


def _pool_can_start_empty() -> bool:
    try:
        from psycopg_pool import __version__
    except ImportError:
        return False  # Django reports the missing package when the pool is first used
    try:
        major, minor = (int(part) for part in __version__.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (3, 2)


def start_child() -> None:
    """Fork mode, in the child right after fork: nothing of the parent's is ever used."""
    forget_inherited_connections()
    size_child_pools()


def django_lifecycle() -> Lifecycle:
    """The hooks that give each mode gunicorn-like connection ownership."""
    return Lifecycle(
        connection_finished=close_thread_connections,
        worker_stopped=close_thread_connections,
        child_started=start_child,
        child_finished=close_all,
        server_stopped=close_all,
        process_started=forget_inherited_connections,
    )
