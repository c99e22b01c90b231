"""The HTTP/1.1 server; make_server() turns a configuration into a server of the right kind.

base.py, watch.py   the selector loop: accept, idle and head timeouts, the shutdown
listener.py, lifecycle.py, context.py   the socket, a worker's life hooks, what a handler needs
limits.py, shared_limit.py, refusals.py   the bounds, the connection limit, its 503s
lingering.py  lingering close: draining what a client still sends after the response
thread.py, pool.py, fork.py, processes.py   one module per concurrency model
conn.py, reader.py, nextrequest.py   a connection, its request in progress, the wait for the next
http.py, grammar.py, target.py, fields.py, errors.py   the request grammar, rule by rule
chunked.py, body.py   request bodies: chunked decoding, a known length read lazily
handler.py, response.py, headers.py, sendfile.py, canned.py   WSGI environ, the app call,
              response framing, the application's headers, files, the server's own answers
requestlog.py, logrecords.py, logbatch.py   the request log's writer thread (django.server)
netcheck.py   which addresses are loopback, the warning for a public bind
asgi/         the ASGI mode: uvicorn on the same socket with the same limits and log
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any, TypeAlias

from cserver import generation
from cserver.delay import RandomDelay
from cserver.server.base import BaseServer
from cserver.server.context import ServerContext, WSGIApp
from cserver.server.fork import ForkServer
from cserver.server.lifecycle import Lifecycle
from cserver.server.limits import Limits
from cserver.server.listener import create_listener
from cserver.server.netcheck import is_loopback, network_warning
from cserver.server.pool import PoolServer
from cserver.server.processes import ProcessGroup
from cserver.server.thread import SingleServer, ThreadServer

if TYPE_CHECKING:
    from cserver.config import ServerConfig
    from cserver.server.asgi import ASGIServer

    # Whatever make_server() builds: all serve_forever() until request_shutdown().
    Server: TypeAlias = BaseServer | ASGIServer | ProcessGroup

__all__ = [
    "ASGI_MODE",
    "BaseServer",
    "Lifecycle",
    "Limits",
    "ProcessGroup",
    "create_listener",
    "is_loopback",
    "make_server",
    "network_warning",
    "raise_open_file_limit",
    "server_class",
]

# Served by uvicorn (cserver/server/asgi.py), imported only when asked for: it is optional.
ASGI_MODE = "asgi"

_CLASSES: dict[str, type[BaseServer]] = {
    "thread": ThreadServer,
    "pool": PoolServer,
    "fork": ForkServer,
}


def server_class(mode: str, threading: bool = True) -> type[BaseServer]:
    """The server class for a mode; --nothreading means one request at a time whatever the mode."""
    if not threading:
        return SingleServer
    try:
        return _CLASSES[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(_CLASSES)}") from None


def make_server(
    config: ServerConfig,
    app: WSGIApp | Any,
    *,
    listener: socket.socket | None = None,
    lifecycle: Lifecycle | None = None,
) -> Server:
    """Build the server the configuration asks for, binding a socket unless one is given.

    ``app`` is a WSGI application, or in asgi mode an ASGI one. With ``processes`` above 1
    this is a group of worker processes, each building its own server after the fork.
    """
    if config.processes > 1:
        if listener is None:
            listener = create_listener(config.addr, config.port, config.ipv6, config.backlog)
        return _make_process_group(config, app, listener, lifecycle or Lifecycle())
    return _make_one_server(config, app, listener, lifecycle)


def worker_config(config: ServerConfig, index: int) -> ServerConfig:
    """The config of worker process ``index``: its own delay sequence, replayable."""
    if not config.delay or config.seed is None:
        return config
    return config.model_copy(update={"seed": config.seed + index})


def _make_process_group(
    config: ServerConfig, app: Any, listener: socket.socket, lifecycle: Lifecycle
) -> ProcessGroup:
    if config.delay and config.seed is None:
        # Picked once, here, so that the banner can print it and a run can be replayed.
        config = config.model_copy(update={"seed": secrets.randbelow(2**31)})

    def build(index: int) -> BaseServer | ASGIServer:
        lifecycle.process_started()
        return _make_one_server(worker_config(config, index), app, listener, lifecycle)

    mode = (
        ASGI_MODE if config.mode == ASGI_MODE else server_class(config.mode, config.threading).mode
    )
    return ProcessGroup(
        build,
        config.processes,
        listener.getsockname(),
        mode,
        grace_period=config.grace_period,
        connection_limit=config.connection_limit,
        changes_fd=_changes_fd(),
        on_changes=generation.apply_changes,
        delay=_delay(config),
    )


def _changes_fd() -> int | None:
    """The supervisor's pipe of changed templates and translations, in a server generation."""
    changes = os.environ.get(generation.CHANGES_FD_ENV, "")
    return int(changes) if generation.is_child() and changes.isdigit() else None


def _make_one_server(
    config: ServerConfig,
    app: Any,
    listener: socket.socket | None,
    lifecycle: Lifecycle | None,
) -> BaseServer | ASGIServer:
    if config.mode == ASGI_MODE:
        return _make_asgi_server(config, app, listener, lifecycle)
    cls = server_class(config.mode, config.threading)
    if listener is None:
        listener = create_listener(config.addr, config.port, config.ipv6, config.backlog)
    host, port = listener.getsockname()[:2]
    limits = Limits.from_config(config)
    ctx = ServerContext(
        app=app,
        limits=limits,
        mode=cls.mode,
        server_name=host,
        server_port=port,
        delay=_delay(config),
        keepalive=cls is not SingleServer,
        multithread=cls.multithread,
        multiprocess=cls.multiprocess,
    )
    raise_open_file_limit(limits.connection_limit)
    return cls(listener, ctx, limits, lifecycle)


def _delay(config: ServerConfig) -> RandomDelay | None:
    if not config.delay:
        return None
    return RandomDelay(config.delay_min_ms, config.delay_max_ms, config.seed)


def _make_asgi_server(
    config: ServerConfig,
    app: Any,
    listener: socket.socket | None,
    lifecycle: Lifecycle | None,
) -> ASGIServer:
    from cserver.server.asgi import ASGIServer

    if listener is None:
        listener = create_listener(config.addr, config.port, config.ipv6, config.backlog)
    host, port = listener.getsockname()[:2]
    limits = Limits.from_config(config)
    if not config.threading:
        # --nothreading: one request computed at a time, as in the other modes.
        limits = dataclasses.replace(limits, workers=1)
    ctx = ServerContext(
        app=app,
        limits=limits,
        mode=ASGI_MODE,
        server_name=host,
        server_port=port,
        delay=_delay(config),
    )
    raise_open_file_limit(limits.connection_limit)
    return ASGIServer(listener, ctx, limits, lifecycle)


def raise_open_file_limit(connection_limit: int) -> None:
    """Raise the soft open-file limit so the connection limit, not EMFILE, is what bites.

    macOS starts processes with a soft limit of 256; the hard limit is usually far higher.
    """
    try:
        import resource
    except ImportError:  # not on this platform
        return
    # Each connection is a descriptor, and as many again may be closing (refused or after
    # an error response); leave room for files and databases too.
    wanted = 2 * connection_limit + 256
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            if top > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
    except (OSError, ValueError):
        pass
