"""The request handler all modes share: one request in, one WSGI call, one response."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

from cserver import __version__
from cserver.delay import RandomDelay
from cserver.server.http import (
    BodyReader,
    ClientConnection,
    ClientGone,
    HttpError,
    RequestHead,
    read_chunked,
    read_head,
)

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

# Same logger and message shape as Django's runserver, so LOGGING configs keep working.
server_logger = logging.getLogger("django.server")

# Unread request bodies up to this size are skipped to keep the connection; larger ones close it.
MAX_DISCARD = 1024 * 1024
SERVER_HEADER = f"cserver/{__version__} Python/{sys.version.split()[0]}"
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass
class ServerContext:
    """What the handler needs from the server that runs it; one per server."""

    app: WSGIApp
    mode: str
    server_name: str
    server_port: int
    delay: RandomDelay | None = None
    keepalive: bool = True
    multithread: bool = True
    multiprocess: bool = False
    stopping: Flag = field(default_factory=lambda: Flag())
    _date: tuple[int, str] = (0, "")

    def base_environ(self) -> dict[str, Any]:
        return {
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": str(self.server_port),
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": self.multithread,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
            "cserver.mode": self.mode,
        }

    def http_date(self) -> str:
        # Formatting a date costs more than the rest of the head; once a second is enough.
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]


class Flag:
    """A lock-free boolean: safe to set from a signal handler, unlike threading.Event."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = False

    def set(self) -> None:
        self._value = True

    def is_set(self) -> bool:
        return self._value


class _Response:
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
        return int(self.status[:3]) if self.status else 500

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
            self.chunked = self.version == "HTTP/1.1" and not self._has_length()
            self._send(self.head_bytes(True, None))
            self.sent = True
        self._send_body(data)

    def _has_length(self) -> bool:
        return any(name.lower() == "content-length" for name, _ in self.headers)

    def _send(self, data: bytes) -> None:
        try:
            self.conn.sock.sendall(data)
        except OSError as exc:
            raise ClientGone(str(exc)) from exc

    def _send_body(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.chunked:
            self._send(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._send(data)


def handle_request(conn: ClientConnection, ctx: ServerContext, worker: str) -> bool:
    """Serve one request from ``conn``; True if the connection may carry another."""
    try:
        head = read_head(conn)
    except HttpError as err:
        _send_error(conn, ctx, err)
        return False
    except ClientGone:
        return False
    if head is None:
        return False
    try:
        return _serve(conn, ctx, worker, head)
    except HttpError as err:
        _send_error(conn, ctx, err, head.raw_line)
        return False
    except ClientGone as exc:
        server_logger.info("- Broken pipe from %s (%s)", conn.addr, exc)
        return False


def _serve(conn: ClientConnection, ctx: ServerContext, worker: str, head: RequestHead) -> bool:
    environ = ctx.base_environ()
    connection_tokens = ""
    transfer_encoding = None
    content_length = None
    expect = ""
    for name, value in head.headers:
        key = name.upper().replace("-", "_")
        lower = key.lower()
        if "_" in name:
            # Dropped, as Django's runserver does, so X-Forwarded_For cannot spoof X-Forwarded-For.
            continue
        if lower == "content_length":
            if content_length is not None and content_length != value:
                raise HttpError(400, "Bad Request", "conflicting Content-Length headers")
            content_length = value
            continue
        if lower == "content_type":
            environ["CONTENT_TYPE"] = value
            continue
        if lower == "transfer_encoding":
            transfer_encoding = value.lower()
        elif lower == "connection":
            connection_tokens = value.lower()
        elif lower == "expect":
            expect = value.lower()
        key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value

    body: Any
    if transfer_encoding is not None:
        if content_length is not None:
            raise HttpError(400, "Bad Request", "both Content-Length and Transfer-Encoding")
        if transfer_encoding != "chunked":
            raise HttpError(501, "Not Implemented", "unsupported Transfer-Encoding")
        _continue_if_expected(conn, head, expect)
        data = read_chunked(conn)
        body = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        reader = None
    else:
        length = 0
        if content_length is not None:
            if not content_length.isdigit() or len(content_length) > 18:
                raise HttpError(400, "Bad Request", "invalid Content-Length")
            length = int(content_length)
            environ["CONTENT_LENGTH"] = content_length
            if length:
                _continue_if_expected(conn, head, expect)
        body = reader = BodyReader(conn, length)

    path, _, query = head.target.partition("?")
    if path.startswith(("http://", "https://")):
        # Absolute-form target: the path starts after the authority.
        slash = path.find("/", path.find("//") + 2)
        path = path[slash:] if slash >= 0 else "/"
    environ.update(
        REQUEST_METHOD=head.method,
        PATH_INFO=unquote(path, "iso-8859-1"),
        QUERY_STRING=query,
        SERVER_PROTOCOL=head.version,
        REMOTE_ADDR=conn.addr[0] if conn.addr else "",
        REMOTE_PORT=str(conn.addr[1]) if conn.addr and len(conn.addr) > 1 else "",
    )
    environ["wsgi.input"] = body
    environ["cserver.worker"] = worker

    if head.version == "HTTP/1.1":
        keep_alive = "close" not in connection_tokens
    else:
        keep_alive = "keep-alive" in connection_tokens
    keep_alive = keep_alive and ctx.keepalive and not ctx.stopping.is_set()

    delay_ms = None
    if ctx.delay is not None:
        delay_ms = ctx.delay.draw_ms()
        time.sleep(delay_ms / 1000)
    environ["cserver.delay_ms"] = delay_ms

    response = _Response(conn, ctx, head.version)
    keep_alive = _run_app(ctx, environ, response, head, keep_alive)
    _log(head.raw_line, response.code, response.size, delay_ms)
    conn.requests_served += 1
    if reader is not None and reader.remaining and not reader.discard(MAX_DISCARD):
        return False
    return keep_alive and not ctx.stopping.is_set()


def _continue_if_expected(conn: ClientConnection, head: RequestHead, expect: str) -> None:
    if expect == "100-continue" and head.version == "HTTP/1.1":
        try:
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        except OSError as exc:
            raise ClientGone(str(exc)) from exc


def _run_app(
    ctx: ServerContext, environ: dict, response: _Response, head: RequestHead, keep_alive: bool
) -> bool:
    """Call the application and send what it returns; the final keep-alive decision."""
    try:
        result = ctx.app(environ, response.start_response)
    except Exception:
        server_logger.exception("Application error serving %s", head.raw_line)
        return _send_internal_error(response, keep_alive)
    try:
        if response.sent:
            for data in result:
                response._send_body(data)
            if response.chunked:
                response._send(b"0\r\n\r\n")
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
            response._send(head_bytes if no_body else head_bytes + payload)
            return keep_alive
        return _stream(response, result, keep_alive, no_body)
    except ClientGone:
        raise
    except Exception:
        server_logger.exception("Application error serving %s", head.raw_line)
        if response.sent:
            return False
        return _send_internal_error(response, keep_alive)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                server_logger.exception("Error closing the response of %s", head.raw_line)


def _stream(response: _Response, result: Iterable[bytes], keep_alive: bool, no_body: bool) -> bool:
    """Send an iterable of unknown length as it is produced."""
    if response.status is None:
        # Generator applications call start_response() on their first iteration.
        iterator = iter(result)
        first = next(iterator, b"")
        if response.status is None:
            raise AssertionError("application returned without calling start_response()")
        result = _chain(first, iterator)
    has_length = response._has_length()
    if keep_alive and _app_closes(response):
        keep_alive = False
    if no_body:
        response._send(response.head_bytes(keep_alive, None))
        response.sent = True
        for _ in result:
            pass
        return keep_alive
    if not has_length:
        if response.version == "HTTP/1.1" and keep_alive:
            response.chunked = True
        else:
            keep_alive = False
    response._send(response.head_bytes(keep_alive, None))
    response.sent = True
    for data in result:
        response._send_body(data)
    if response.chunked:
        response._send(b"0\r\n\r\n")
    return keep_alive


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterable[bytes]:
    yield first
    yield from rest


def _app_closes(response: _Response) -> bool:
    return any(
        name.lower() == "connection" and "close" in value.lower()
        for name, value in response.headers
    )


def _send_internal_error(response: _Response, keep_alive: bool) -> bool:
    if response.sent:
        return False
    body = b"A server error occurred.  Please contact the administrator."
    response.status = "500 Internal Server Error"
    response.headers = [("Content-Type", "text/plain; charset=utf-8")]
    response._send(response.head_bytes(False, len(body)) + body)
    response.sent = True
    response.size = len(body)
    return False


def _send_error(
    conn: ClientConnection, ctx: ServerContext, err: HttpError, request_line: str = ""
) -> None:
    """Answer a request the server could not parse or accept, then the caller closes."""
    body = f"{err.status} {err.reason}: {err.detail}\n".encode("latin-1", "replace")
    head = (
        f"HTTP/1.1 {err.status} {err.reason}\r\n"
        f"Server: {SERVER_HEADER}\r\nDate: {ctx.http_date()}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    with contextlib.suppress(OSError):
        conn.sock.sendall(head + body)
    if err.detail.startswith("TLS handshake"):
        server_logger.error(
            "You're accessing the development server over HTTPS, but it only supports HTTP. "
            "Use http://%s:%s/ instead.",
            ctx.server_name,
            ctx.server_port,
        )
        return
    _log(request_line or "-", err.status, len(body), None, detail=err.detail)


def _log(request_line: str, code: int, size: int, delay_ms: int | None, detail: str = "") -> None:
    if code >= 500:
        level = logging.ERROR
    elif code >= 400:
        level = logging.WARNING
    else:
        level = logging.INFO
    if not server_logger.isEnabledFor(level):
        return
    message = '"%s" %s %s'
    args: tuple = (request_line, code, size)
    if delay_ms is not None:
        message += " delay=%dms"
        args += (delay_ms,)
    if detail:
        message += " (%s)"
        args += (detail,)
    server_logger.log(level, message, *args, extra={"status_code": code, "request": None})
