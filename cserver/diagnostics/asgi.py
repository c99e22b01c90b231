"""The ASGI counterpart of DiagnosticsApp (asgi mode): the same registry, headers and page.

The status page and the headers come from the WSGI wrapper itself, called with the few
environ keys they read; what is ASGI-specific is where things happen. A request is counted
in by its task; its database state and the thread that ran its Django code are read, when
the response starts, in the request's own thread (asgiref's thread-sensitive executor),
where Django keeps that request's connections.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from asgiref.sync import sync_to_async

from cserver.diagnostics.middleware import PREFIX, DiagnosticsApp
from cserver.diagnostics.registry import RequestState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The event loop's thread is the one worker slot of asgi mode.
_LOOP_SLOT = "event-loop"


def scope_environ(scope: Scope) -> dict[str, Any]:
    """The environ keys the diagnostics read, from an ASGI scope."""
    client = scope.get("client") or ("", 0)
    return {
        "REQUEST_METHOD": scope.get("method", ""),
        "PATH_INFO": scope.get("path", ""),
        "QUERY_STRING": (scope.get("query_string") or b"").decode("latin-1"),
        "REMOTE_ADDR": client[0],
        "cserver.mode": scope.get("cserver.mode"),
        "cserver.worker": scope.get("cserver.worker"),
        "cserver.worker_slot": _LOOP_SLOT,
        "cserver.delay_ms": scope.get("cserver.delay_ms"),
    }


class ASGIDiagnosticsApp:
    """Wraps the project's ASGI application, sharing ``diagnostics``' registry and page."""

    def __init__(self, app: ASGIApp, diagnostics: DiagnosticsApp) -> None:
        self.app = app
        self.diagnostics = diagnostics
        self.registry = diagnostics.registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith(PREFIX) and (len(path) == len(PREFIX) or path[len(PREFIX)] == "/"):
            await self.status(scope, send)
            return
        registry = self.registry
        req = registry.request_started(scope_environ(scope))

        async def diag_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                req.status = int(message["status"])
                await sync_to_async(self._note_request_thread, thread_sensitive=True)(req)
                extra = [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in self.diagnostics.headers(req)
                ]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted out before the client can see the end, as the WSGI wrapper does
                # when the server closes the response.
                registry.request_finished(req)
            await send(message)

        try:
            await self.app(scope, receive, diag_send)
        finally:
            registry.request_finished(req)

    def _note_request_thread(self, req: RequestState) -> None:
        # Runs in the request's thread: its database connections are visible here only.
        req.thread = threading.current_thread().name
        self.registry.response_db(req)

    async def status(self, scope: Scope, send: Send) -> None:
        """The status page, rendered by the WSGI wrapper and sent as ASGI messages."""
        started: list[Any] = []

        def start_response(status: str, headers: list, exc_info: Any = None) -> None:
            started[:] = [status, headers]

        body = b"".join(self.diagnostics.status(scope_environ(scope), start_response))
        status, headers = started
        await send(
            {
                "type": "http.response.start",
                "status": int(status[:3]),
                "headers": [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers],
            }
        )
        # Content-Length stays that of the GET; the protocol sends no body for HEAD.
        await send({"type": "http.response.body", "body": body})
