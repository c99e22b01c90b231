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

from cserver.server.context import ServerContext
from cserver.server.handler import log_request

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
        exchange = _Exchange(scope, send)
        try:
            await self._serve(scope, receive, exchange)
        finally:
            exchange.release()
            if exchange.status:
                log_request(
                    exchange.request_line, exchange.status, exchange.size, exchange.delay_ms
                )

    async def _serve(self, scope: Scope, receive: Receive, exchange: _Exchange) -> None:
        limit = self.ctx.limits.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await exchange.refuse_body(limit)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.ctx.limits.workers)
        task = asyncio.current_task()
        scope["cserver.mode"] = self.ctx.mode
        scope["cserver.worker"] = task.get_name() if task is not None else "-"
        # A slot is held until the response starts: it bounds the requests being computed
        # (each synchronous view runs in a thread of its own), not the streams being sent.
        await exchange.hold(self._slots)
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
            await exchange.refuse_body(limit)


class _Exchange:
    """One request's response as it goes out: status and size for the log line."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self._send = send
        query = scope.get("query_string") or b""
        target = scope.get("raw_path") or scope["path"].encode("utf-8")
        if query:
            target += b"?" + query
        self.request_line = (
            f"{scope['method']} {target.decode('latin-1')} HTTP/{scope.get('http_version', '1.1')}"
        )
        self.method = scope["method"]
        self._start: Message | None = None
        self.status = 0
        self.size = 0
        self.started = False
        self.delay_ms: int | None = None
        self._slot: asyncio.Semaphore | None = None

    async def hold(self, slots: asyncio.Semaphore) -> None:
        await slots.acquire()
        self._slot = slots

    def release(self) -> None:
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.status = int(message["status"])
            self.release()
            if self._may_add_length(message):
                self._start = message  # sent with the first body part, which tells the length
                return
        elif kind == "http.response.body":
            body = message.get("body", b"")
            self.size += len(body)
            if self._start is not None:
                start, self._start = self._start, None
                if not message.get("more_body", False):
                    # A complete response: Content-Length rather than chunks, as the other
                    # modes send it (and as an HTTP/1.0 client needs it to keep the connection).
                    length = (b"content-length", str(len(body)).encode())
                    start = {**start, "headers": [*start.get("headers", ()), length]}
                await self._send(start)
        await self._send(message)

    def _may_add_length(self, start: Message) -> bool:
        if self.method == "HEAD" or self.status in (204, 304) or self.status < 200:
            return False
        names = {name.lower() for name, _ in start.get("headers", ())}
        return b"content-length" not in names and b"transfer-encoding" not in names

    async def refuse_body(self, limit: int) -> None:
        body = (
            f"413 Content Too Large: request body over the limit of {limit} bytes "
            "(--max-body-bytes)\n"
        ).encode()
        await self.send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body})


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
