"""ASGI mode: the project's ASGI application served by uvicorn, in this process, on our socket.

uvicorn is optional (``pip install "cserver[asgi]"``); this module imports it, so only
make_server() imports this module, and only for ``--mode asgi``. The server has the surface
runcserver's ``_serve()`` uses on the other modes (serve_forever, request_shutdown,
server_address, mode, ctx), and builds nothing asynchronous before serve_forever(): the
event loop is created there, so the server can be built in one process and served in a
child forked from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from cserver.server.asgi.layer import ServerLayer
from cserver.server.asgi.protocol import protocol_class
from cserver.server.base import ServerCore
from cserver.server.canned import SERVER_HEADER

__all__ = ["ASGIServer"]

logger = logging.getLogger("cserver")


class _UvicornServer(uvicorn.Server):
    """uvicorn's server without its signal handlers: runcserver's own SIGTERM/SIGINT handlers
    call request_shutdown(), in every mode alike, and the reloader's supervisor relies on
    SIGTERM meaning "drain and exit 0"."""

    grace_exceeded = False

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def _wait_tasks_to_complete(self) -> None:
        # uvicorn's shutdown() runs this under wait_for(timeout_graceful_shutdown): being
        # cancelled means requests were still running when the grace period ended.
        try:
            await super()._wait_tasks_to_complete()
        except asyncio.CancelledError:
            self.grace_exceeded = True
            raise


class ASGIServer(ServerCore):
    """Serves an ASGI application with uvicorn on an already listening socket."""

    mode = "asgi"
    # Set per instance once asked / serving; nothing is built before serve_forever().
    _shutdown_requested = False
    _uvicorn: _UvicornServer | None = None

    def request_shutdown(self) -> None:
        """Ask the server to stop; safe from a signal handler and from any thread.

        Only plain attribute stores: uvicorn's main loop looks at ``should_exit`` every
        0.1 s, and a stop asked before the loop runs is seen when it starts.
        """
        self._shutdown_requested = True
        server = self._uvicorn
        if server is not None:
            server.should_exit = True

    def serve_forever(self) -> None:
        """Serve until request_shutdown(), then let requests in flight finish within the
        grace period; idle keep-alive connections close at once."""
        server = _UvicornServer(self._uvicorn_config())
        server.should_exit = self._shutdown_requested
        self._uvicorn = server
        # A fresh event loop, in the process (forked or not) that serves.
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(server.serve(sockets=[self.listener]))
        finally:
            self._uvicorn = None
            _close_loop(loop)
            self.lifecycle.server_stopped()
            with contextlib.suppress(OSError):
                self.listener.close()
        if server.grace_exceeded:
            _abandon_stuck_views()

    def _uvicorn_config(self) -> uvicorn.Config:
        limits = self.limits
        return uvicorn.Config(
            ServerLayer(self.ctx),
            interface="asgi3",
            # h11, not httptools, measured with tests/hostile/test_corpus.py (48 cases, each
            # also answered by the WSGI modes' parser): h11 answered 18 differently, httptools
            # 13, but httptools' differences are the worse ones: it bounds no head (a 20 KB
            # header line, 150 headers or a 72 KB head all reach the application) and takes
            # HTTP/1.1 requests without a Host or with two; h11 refuses heads over 16 KB and
            # both Host cases, and is lax on chunk-size whitespace and CL+TE (TE wins).
            # CserverH11Protocol adds the connection limit, the header timeout, the idle
            # timeout of a new connection, and 431 and a log line for refused heads.
            http=protocol_class(self.ctx),
            ws="none",
            # Django's ASGI handler refuses lifespan events; asking would only log that.
            lifespan="off",
            # runserver does not trust X-Forwarded-For either: REMOTE_ADDR is the peer.
            proxy_headers=False,
            # The project's LOGGING stays as it is; requests are logged by ServerLayer on
            # django.server, uvicorn's errors reach the root logger (stderr by default).
            log_config=None,
            access_log=False,
            server_header=False,
            headers=[("Server", SERVER_HEADER)],
            timeout_keep_alive=_whole_seconds(limits.keepalive_timeout),
            timeout_graceful_shutdown=_whole_seconds(limits.grace_period),
            # --connection-limit is enforced by the protocol, as connections are accepted.
            limit_concurrency=None,
            # asyncio listens on the socket again, with this backlog.
            backlog=limits.backlog,
            # The head gate applies the head limits; h11's own bound (16 KiB by default)
            # must not refuse first, with a bare 400, a head the settings allow.
            h11_max_incomplete_event_size=limits.head.head_bytes,
        )


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close the loop like asyncio.run(), but without waiting for its executor's threads:
    a view still running after the grace period must not hold the exit (see below)."""
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def _abandon_stuck_views() -> None:
    """Exit now if synchronous views outlive the grace period (which has ended).

    Each runs in a non-daemon executor thread (asgiref's), which the interpreter would wait
    for at exit: the other modes abandon a worker still busy at the deadline, and so does
    this one, with a warning.
    """
    here = threading.current_thread()
    stuck = [
        t
        for t in threading.enumerate()
        if t.is_alive() and not t.daemon and t is not here and t is not threading.main_thread()
    ]
    if not stuck:
        return
    logger.warning(
        "cserver: requests still running after the grace period; exiting without waiting "
        "for their %d thread(s)",
        len(stuck),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _whole_seconds(value: float) -> Any:
    # uvicorn types these as int but only ever hands them to call_later / wait_for.
    return value
