"""Calling the WSGI application and framing what it returns.

The server, not the application, owns the framing: Content-Length, chunking, Connection,
and the absence of a body on HEAD, 1xx, 204 and 304. It never sends more body bytes than
it declared; when it sent fewer, it closes the connection so that nothing that follows can
be read as the missing rest.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cserver.server.canned import SERVER_HEADER, canned_response
from cserver.server.conn import ClientConnection, ClientGone
from cserver.server.context import ServerContext
from cserver.server.headers import checked_headers
from cserver.server.sendfile import FileWrapper, send_file

# Same logger and message shape as Django's runserver, so LOGGING configs keep working.
server_logger = logging.getLogger("django.server")

_STATUS_RE = re.compile(r"[1-5][0-9][0-9] [^\r\n\x00]*")
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
INTERNAL_ERROR_BODY = b"A server error occurred.  Please contact the administrator."


class Response:
    """State of one response: what start_response was given, the framing, what was sent."""

    __slots__ = (
        "chunked",
        "code",
        "conn",
        "ctx",
        "headers",
        "keep_alive",
        "length",
        "method",
        "request_line",
        "sent",
        "size",
        "status",
        "version",
    )

    def __init__(
        self,
        conn: ClientConnection,
        ctx: ServerContext,
        version: str,
        method: str = "GET",
        keep_alive: bool = True,
        request_line: str = "",
    ) -> None:
        self.conn = conn
        self.ctx = ctx
        self.version = version
        self.method = method
        self.request_line = request_line
        self.keep_alive = keep_alive
        self.status: str | None = None
        self.code = 500
        self.headers: list[tuple[str, str]] = []
        self.length: int | None = None  # the Content-Length the application declared
        self.sent = False
        self.chunked = False
        self.size = 0

    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Callable:
        if exc_info:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called twice without exc_info")
        if not isinstance(status, str) or not _STATUS_RE.fullmatch(status):
            raise ValueError(f"invalid status line from the application: {status!r}")
        kept, length, close = checked_headers(headers)
        if close:
            self.keep_alive = False
        self.status = status
        self.code = int(status[:3])
        self.headers = kept
        self.length = length
        return self.write

    @property
    def no_body(self) -> bool:
        code = self.code
        return self.method == "HEAD" or code < 200 or code == 204 or code == 304

    def head_bytes(self) -> bytes:
        """The status line and headers, with the framing decided here."""
        lines = [f"HTTP/1.1 {self.status}\r\n"]
        headers = self.headers
        names = {name.lower() for name, _ in headers} if headers else ()
        if "server" not in names and "date" not in names:
            lines.append(self.ctx.server_and_date_lines(SERVER_HEADER))
        else:
            if "server" not in names:
                lines.append(f"Server: {SERVER_HEADER}\r\n")
            if "date" not in names:
                lines.append(f"Date: {self.ctx.http_date()}\r\n")
        code = self.code
        if code >= 200 and code != 204:
            lines.extend([f"{name}: {value}\r\n" for name, value in headers])
        else:
            # No Content-Length on 1xx and 204 (RFC 9110 section 8.6).
            lines.extend(
                f"{name}: {value}\r\n"
                for name, value in headers
                if name.lower() != "content-length"
            )
        if self.chunked:
            lines.append("Transfer-Encoding: chunked\r\n")
        if not self.keep_alive:
            lines.append("Connection: close\r\n")
        elif self.version == "HTTP/1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def _frame(self) -> None:
        """Choose the framing of a body whose length the application did not declare."""
        if self.no_body or self.length is not None:
            return
        if self.version == "HTTP/1.1" and self.keep_alive:
            self.chunked = True
        else:
            self.keep_alive = False  # the end of the body is the end of the connection

    def start(self, body: bytes = b"") -> None:
        """Send the head (with ``body`` when it is the whole body, in one send)."""
        self._frame()
        head = self.head_bytes()  # before `sent`: a header it cannot encode is still a 500
        self.sent = True
        if body and not self.no_body:
            body = self._clip(body)
            self.size += len(body)
            if self.chunked:
                body = b"%x\r\n%s\r\n" % (len(body), body)
            self.send(head + body)
        else:
            self.send(head)

    def write(self, data: bytes) -> None:
        """The legacy WSGI write() callable."""
        if not self.sent:
            if self.status is None:
                raise AssertionError("write() before start_response()")
            self.start()
        self.send_body(data)

    def send(self, data: bytes) -> None:
        self.conn.send_all(data, self.ctx.limits.io_timeout)

    def send_body(self, data: bytes) -> bool:
        """Send part of the body; False once more came than the declared length."""
        if self.no_body:
            return False
        if not data:
            return True
        clipped = self._clip(data)
        if clipped:
            self.size += len(clipped)
            self.send(b"%x\r\n%s\r\n" % (len(clipped), clipped) if self.chunked else clipped)
        return clipped is data

    def stream(self, first: bytes, rest: Iterator[bytes]) -> None:
        """send_body() for every part of a body of undeclared length, with one call per
        part instead of four: a stream of many small parts spends its time here."""
        chunked = self.chunked
        send = self.conn.sock.send
        io_timeout = self.ctx.limits.io_timeout
        size = 0
        try:
            for data in itertools.chain((first,), rest):
                if not data:
                    continue
                size += len(data)
                out = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
                try:
                    sent = send(out)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    raise ClientGone(str(exc)) from exc
                if sent != len(out):
                    self.conn.send_all(out[sent:], io_timeout)
        finally:
            self.size += size

    def _clip(self, data: bytes) -> bytes:
        """``data`` itself if it fits the declared length, else the part that does."""
        length = self.length
        if length is None or self.size + len(data) <= length:
            return data
        length_error(self.request_line, length)
        self.keep_alive = False
        return data[: length - self.size]

    def finish(self) -> bool:
        """End the body; whether the connection may carry another request."""
        if self.chunked:
            self.send(b"0\r\n\r\n")
        elif self.length is not None and self.size < self.length and not self.no_body:
            length_error(self.request_line, self.length, self.size)
            return False
        return self.keep_alive


def length_error(request_line: str, length: int, size: int | None = None) -> None:
    """Log a response whose body did not match its Content-Length (its connection closes)."""
    if size is None:
        server_logger.error(
            "Response to %s is longer than its Content-Length (%d): cut there, connection closed",
            request_line,
            length,
        )
    else:
        server_logger.error(
            "Response to %s is shorter than its Content-Length (%d < %d): connection closed",
            request_line,
            size,
            length,
        )


def run_app(ctx: ServerContext, environ: dict, response: Response) -> bool:
    """Call the application and send what it returns; whether to keep the connection."""
    try:
        result = ctx.app(environ, response.start_response)
    except ClientGone:
        raise
    except Exception:
        server_logger.exception("Application error serving %s", response.request_line)
        return _send_internal_error(response)
    try:
        if getattr(environ["wsgi.input"], "broken", False) and not response.sent:
            # The body was cut short: whatever the application made of that, the client
            # that went away mid-request gets no answer.
            raise ClientGone("closed mid-body")
        return _send_result(response, result)
    except ClientGone:
        raise
    except Exception:
        server_logger.exception("Application error serving %s", response.request_line)
        return _send_internal_error(response)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                server_logger.exception("Error closing the response of %s", response.request_line)


def _send_result(response: Response, result: Iterable[bytes]) -> bool:
    if not response.sent and (
        isinstance(result, list | tuple) or getattr(result, "streaming", None) is False
    ):
        payload = b"".join(result)
        if response.status is None:
            raise AssertionError("application returned without calling start_response()")
        code = response.code
        if response.length is None and code >= 200 and code != 204 and code != 304:
            # On HEAD too: the length a GET would have.
            response.length = len(payload)
            response.headers.append(("Content-Length", str(len(payload))))
        response.start(payload)
        return response.finish()
    if (
        isinstance(result, FileWrapper)
        and response.status is not None
        and not response.sent
        and send_file(response, result)
    ):
        return response.finish()
    iterator = iter(result)
    first = b""
    if response.status is None:
        # Generator applications call start_response() on their first iteration.
        first = next(iterator, b"")
        if response.status is None:
            raise AssertionError("application returned without calling start_response()")
    if not response.sent:
        response.start()
    if response.no_body:
        # Nothing of it would be sent: stop here, so an endless stream holds no worker.
        return response.finish()
    with coalescing(response.conn):
        if response.length is None:
            response.stream(first, iterator)
        elif response.send_body(first):
            for data in iterator:
                if not response.send_body(data):
                    break
        return response.finish()


@contextlib.contextmanager
def coalescing(conn: ClientConnection) -> Iterator[None]:
    """Let the kernel merge a stream's small parts into full segments (Nagle's algorithm)
    while it is sent, as runserver's sockets always do; switching TCP_NODELAY back on at
    the end sends what is left at once. Connections otherwise keep TCP_NODELAY, so a
    response sent in one piece never waits for an acknowledgement."""
    tcp = conn.sock.family in _TCP_FAMILIES
    if tcp:
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    try:
        yield
    finally:
        if tcp:
            with contextlib.suppress(OSError):
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _send_internal_error(response: Response) -> bool:
    if response.sent:
        return False
    response.status = "500 Internal Server Error"
    response.code = 500
    response.sent = True
    response.size = len(INTERNAL_ERROR_BODY)
    data = canned_response(response.status, INTERNAL_ERROR_BODY, date=response.ctx.http_date())
    if response.method == "HEAD":
        data = data[: data.index(b"\r\n\r\n") + 4]
    response.send(data)
    return False
