"""One request's response in asgi mode, held to the framing rules of the other modes.

uvicorn (h11) frames what the application sends, but what it does with a response that
contradicts itself differs from the other modes: a body longer than its Content-Length
or on a 204 is an exception that loses the connection mid-response, connection-level
headers of the application's are sent as they are, and a HEAD of an endless stream never
ends. Here, as in cserver/server/response.py (whose header check is used): such headers
are dropped, a header value with CR/LF makes a 500, a body is cut at its declared length
(and the connection then closes), a response that may have no body gets none, and the
application is stopped once its response is complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cserver.server.headers import checked_headers
from cserver.server.response import INTERNAL_ERROR_BODY, length_error, server_logger

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class ResponseDone(Exception):
    """The response is complete (or was ended for the application): stop the application.

    ``complete`` False leaves the response unfinished, which makes uvicorn close the
    connection, as the other modes close one whose body did not match its length.
    """

    def __init__(self, complete: bool) -> None:
        super().__init__()
        self.complete = complete


class Exchange:
    """Status and size for the log line, the framing rules, and the worker slot's release."""

    def __init__(self, scope: MutableMapping[str, Any], send: Send) -> None:
        self._send = send
        query = scope.get("query_string") or b""
        target = scope.get("raw_path") or scope["path"].encode("utf-8")
        if query:
            target += b"?" + query
        self.method = scope["method"]
        self.request_line = (
            f"{self.method} {target.decode('latin-1')} HTTP/{scope.get('http_version', '1.1')}"
        )
        self.status = 0
        self.size = 0
        self.started = False
        self.delay_ms: int | None = None
        self.on_start: Callable[[], None] = lambda: None
        self._start: Message | None = None  # held back until the first body part
        self._length: int | None = None
        self._no_body = False
        self._done = False

    async def send(self, message: Message) -> None:
        if self._done:
            raise ResponseDone(complete=True)
        kind = message["type"]
        if kind == "http.response.start":
            await self._take_start(message)
        elif kind == "http.response.body":
            await self._body(message.get("body", b""), bool(message.get("more_body", False)))
        else:
            await self._send(message)

    async def _take_start(self, message: Message) -> None:
        self.started = True
        self.on_start()
        status = int(message["status"])
        try:
            raw = [
                (n.decode("latin-1"), v.decode("latin-1")) for n, v in message.get("headers", ())
            ]
            kept, self._length, close = checked_headers(raw)
        except ValueError as exc:
            server_logger.error("Application error serving %s: %s", self.request_line, exc)
            await self.error_500()
            raise ResponseDone(complete=True) from None
        self.status = status
        self._no_body = self.method == "HEAD" or status < 200 or status in (204, 304)
        headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in kept]
        if close:
            headers.append((b"connection", b"close"))
        self._start = {**message, "headers": headers}

    async def _body(self, body: bytes, more: bool) -> None:
        # What a GET would send in one piece: the length a HEAD declares too.
        whole = len(body) if not more and self.status not in (204, 304) else None
        if self._no_body:
            body, more = b"", False
        length = self._length
        cut = length is not None and self.size + len(body) > length
        if cut:
            assert length is not None
            length_error(self.request_line, length)
            body = body[: length - self.size]
        short = not more and length is not None and self.size + len(body) < length
        if short and not self._no_body:
            assert length is not None
            length_error(self.request_line, length, self.size + len(body))
        self.size += len(body)
        start = self._start
        if start is not None:
            self._start = None
            if whole is not None and length is None and self.status >= 200:
                # A complete response: Content-Length rather than chunks, as the other
                # modes send it (and as an HTTP/1.0 client needs to keep the connection).
                start["headers"] = [*start["headers"], (b"content-length", str(whole).encode())]
            await self._send(start)
        if cut or (short and not self._no_body):
            # All the declared bytes, never the end: uvicorn closes the connection.
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
            self._done = True
            raise ResponseDone(complete=False)
        await self._send({"type": "http.response.body", "body": body, "more_body": more})
        if not more:
            self._done = True

    async def error_500(self) -> None:
        self.status = 500
        self.size = len(INTERNAL_ERROR_BODY)
        headers = [
            (b"content-type", b"text/plain"),
            (b"content-length", str(len(INTERNAL_ERROR_BODY)).encode()),
        ]
        await self._send({"type": "http.response.start", "status": 500, "headers": headers})
        await self._send({"type": "http.response.body", "body": INTERNAL_ERROR_BODY})
        self._done = True
