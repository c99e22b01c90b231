"""Calling the WSGI application and sending what it returns."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from cserver import __version__
from cserver.server.conn import ClientConnection, ClientGone

if TYPE_CHECKING:
    from cserver.server.handler import ServerContext
    from cserver.server.http import RequestHead

# Same logger and message shape as Django's runserver, so LOGGING configs keep working.
server_logger = logging.getLogger("django.server")

SERVER_HEADER = f"cserver/{__version__} Python/{sys.version.split()[0]}"
_NO_BODY_STATUSES = frozenset({204, 304})


class Response:
    """State of one response: what start_response was given and what was sent."""

    __slots__ = ("chunked", "conn", "ctx", "headers", "sent", "size", "status", "version")

    def __init__(self, conn: ClientConnection, ctx: ServerContext, version: str) -> None:
        self.conn = conn
        self.ctx = ctx
        self.version = version
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = False
        self.chunked = False
        self.size = 0

    @property
    def code(self) -> int:
        try:
            return int(self.status[:3]) if self.status else 500
        except ValueError:
            return 500

    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Callable:
        if exc_info:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called twice without exc_info")
        self.status = status
        self.headers = list(headers)
        return self.write

    def head_bytes(self, keep_alive: bool, length: int | None) -> bytes:
        names = {name.lower() for name, _ in self.headers}
        lines = [f"HTTP/1.1 {self.status}\r\n"]
        if "server" not in names:
            lines.append(f"Server: {SERVER_HEADER}\r\n")
        if "date" not in names:
            lines.append(f"Date: {self.ctx.http_date()}\r\n")
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        if length is not None and "content-length" not in names:
            lines.append(f"Content-Length: {length}\r\n")
        if self.chunked:
            lines.append("Transfer-Encoding: chunked\r\n")
        if not keep_alive:
            lines.append("Connection: close\r\n")
        elif self.version == "HTTP/1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def write(self, data: bytes) -> None:
        """The legacy WSGI write() callable; streams with chunked framing."""
        if not self.sent:
            self.chunked = self.version == "HTTP/1.1" and not self.has_length()
            self.send(self.head_bytes(True, None))
            self.sent = True
        self.send_body(data)

    def has_length(self) -> bool:
        return any(name.lower() == "content-length" for name, _ in self.headers)

    def send(self, data: bytes) -> None:
        self.conn.send_all(data, self.ctx.limits.io_timeout)

    def send_body(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.chunked:
            self.send(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.send(data)


def run_app(
    ctx: ServerContext, environ: dict, response: Response, head: RequestHead, keep_alive: bool
) -> bool:
    """Call the application and send what it returns; the final keep-alive decision."""
    try:
        result = ctx.app(environ, response.start_response)
    except ClientGone:
        raise
    except Exception:
        server_logger.exception("Application error serving %s", head.raw_line)
        return _send_internal_error(response)
    try:
        if getattr(environ["wsgi.input"], "broken", False) and not response.sent:
            # The body was cut short: whatever the application made of that, the client
            # that went away mid-request gets no answer.
            raise ClientGone("closed mid-body")
        if response.sent:
            for data in result:
                response.send_body(data)
            if response.chunked:
                response.send(b"0\r\n\r\n")
                return keep_alive
            return False
        no_body = head.method == "HEAD" or response.code in _NO_BODY_STATUSES
        no_body = no_body or 100 <= response.code < 200
        if isinstance(result, list | tuple) or getattr(result, "streaming", None) is False:
            payload = b"".join(result)
            if response.status is None:
                raise AssertionError("application returned without calling start_response()")
            length = None if response.code in _NO_BODY_STATUSES else len(payload)
            if keep_alive and _app_closes(response):
                keep_alive = False
            head_bytes = response.head_bytes(keep_alive, length)
            response.sent = True
            response.size = 0 if no_body else len(payload)
            response.send(head_bytes if no_body else head_bytes + payload)
            return keep_alive
        return _stream(response, result, keep_alive, no_body)
    except ClientGone:
        raise
    except Exception:
        server_logger.exception("Application error serving %s", head.raw_line)
        return _send_internal_error(response)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                server_logger.exception("Error closing the response of %s", head.raw_line)


def _stream(response: Response, result: Iterable[bytes], keep_alive: bool, no_body: bool) -> bool:
    """Send an iterable of unknown length as it is produced."""
    if response.status is None:
        # Generator applications call start_response() on their first iteration.
        iterator = iter(result)
        first = next(iterator, b"")
        if response.status is None:
            raise AssertionError("application returned without calling start_response()")
        result = _chain(first, iterator)
    has_length = response.has_length()
    if keep_alive and _app_closes(response):
        keep_alive = False
    if no_body:
        response.send(response.head_bytes(keep_alive, None))
        response.sent = True
        for _ in result:
            pass
        return keep_alive
    if not has_length:
        if response.version == "HTTP/1.1" and keep_alive:
            response.chunked = True
        else:
            keep_alive = False
    response.send(response.head_bytes(keep_alive, None))
    response.sent = True
    for data in result:
        response.send_body(data)
    if response.chunked:
        response.send(b"0\r\n\r\n")
    return keep_alive


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _app_closes(response: Response) -> bool:
    return any(
        name.lower() == "connection" and "close" in value.lower()
        for name, value in response.headers
    )


def _send_internal_error(response: Response) -> bool:
    if response.sent:
        return False
    body = b"A server error occurred.  Please contact the administrator."
    response.status = "500 Internal Server Error"
    response.headers = [("Content-Type", "text/plain; charset=utf-8")]
    response.send(response.head_bytes(False, len(body)) + body)
    response.sent = True
    response.size = len(body)
    return False
