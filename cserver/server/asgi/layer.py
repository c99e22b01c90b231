"""What cserver adds around the ASGI application in asgi mode, as one ASGI middleware.

Per request, in order: the body limit for a declared length (413 before the application
runs), a worker slot (``--workers`` requests computing at once), the seeded random delay
(awaited: it never blocks the loop), then the application, with the body limit also
enforced on what it receives (chunked bodies), and one log line on ``django.server`` in
the format of the other modes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from cserver.server.asgi.response import Exchange, ResponseDone
from cserver.server.context import ServerContext
from cserver.server.handler import SERVER_METHODS, log_request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body went over --max-body-bytes while the application read it."""


class ServerLayer:
    """Wraps the project's ASGI application; one per server, shared by every request."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.app: ASGIApp = ctx.app  # type: ignore[assignment]
        # Created on first use, inside the event loop that serve_forever() runs.
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _drop_fragment(scope)
        exchange = Exchange(scope, send)
        slot = _Slot()
        exchange.on_start = slot.release
        try:
            await self._serve(scope, receive, exchange, slot)
        except ResponseDone:
            pass  # the response ended before the application did
        finally:
            slot.release()
            if exchange.status:
                log_request(
                    exchange.request_line, exchange.status, exchange.size, exchange.delay_ms
                )

    async def _serve(self, scope: Scope, receive: Receive, exchange: Exchange, slot: _Slot) -> None:
        if scope.get("raw_path") == b"*" and scope["method"] == "OPTIONS":
            # Answered by the server, as in the other modes (handler.answer_server_options).
            headers = [(b"allow", SERVER_METHODS.encode()), (b"content-length", b"0")]
            await exchange.send({"type": "http.response.start", "status": 200, "headers": headers})
            await exchange.send({"type": "http.response.body", "body": b""})
            return
        limit = self.ctx.limits.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await refuse_body(exchange, limit)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.ctx.limits.workers)
        task = asyncio.current_task()
        scope["cserver.mode"] = self.ctx.mode
        scope["cserver.worker"] = task.get_name() if task is not None else "-"
        # A slot is held until the response starts: it bounds the requests being computed
        # (each synchronous view runs in a thread of its own), not the streams being sent.
        await slot.hold(self._slots)
        delay = self.ctx.delay
        if delay is not None:
            exchange.delay_ms = delay.draw_ms()
            await asyncio.sleep(exchange.delay_ms / 1000)
        scope["cserver.delay_ms"] = exchange.delay_ms
        try:
            await self.app(scope, _limited(receive, limit), exchange.send)
        except BodyTooLarge:
            if exchange.started:
                raise
            await refuse_body(exchange, limit)


class _Slot:
    """A request's place among the --workers requests computed at once."""

    def __init__(self) -> None:
        self._slots: asyncio.Semaphore | None = None

    async def hold(self, slots: asyncio.Semaphore) -> None:
        await slots.acquire()
        self._slots = slots

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()
            self._slots = None


async def refuse_body(exchange: Exchange, limit: int) -> None:
    """The 413 of a body over --max-body-bytes; the connection closes after it."""
    body = (
        f"413 Content Too Large: request body over the limit of {limit} bytes (--max-body-bytes)\n"
    ).encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await exchange.send({"type": "http.response.start", "status": 413, "headers": headers})
    await exchange.send({"type": "http.response.body", "body": body})


def _drop_fragment(scope: Scope) -> None:
    # A fragment is never part of the request (RFC 9112 section 3.2), but h11 keeps one.
    for key in ("query_string", "raw_path"):
        value = scope.get(key)
        if value and b"#" in value:
            scope[key] = value.partition(b"#")[0]
            if key == "raw_path":
                scope["path"] = unquote(scope[key].decode("ascii"))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the protocol refuses a malformed length before we see it
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises BodyTooLarge once more than ``limit`` body bytes came in."""
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
        return message

    return receive_limited
