"""The request handler all modes share: one request in, one WSGI call, one response."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

from cserver.delay import RandomDelay
from cserver.server.body import BodyReader, read_chunked
from cserver.server.conn import ClientConnection, ClientGone, ClientTimeout
from cserver.server.http import TLS_DETAIL, HttpError, RequestHead, body_too_large, read_head
from cserver.server.limits import MAX_DISCARD, PREBUFFER_BYTES, Limits
from cserver.server.response import SERVER_HEADER, Response, run_app, server_logger

__all__ = [
    "SERVER_HEADER",
    "ClientConnection",
    "Flag",
    "ServerContext",
    "WSGIApp",
    "handle_request",
    "send_error",
    "server_logger",
]

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

logger = logging.getLogger("cserver")
_LENGTH_RE = re.compile(r"[0-9]{1,18}")


class Flag:
    """A lock-free boolean: safe to set from a signal handler, unlike threading.Event."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = False

    def set(self) -> None:
        self._value = True

    def is_set(self) -> bool:
        return self._value


@dataclass
class ServerContext:
    """What the handler needs from the server that runs it; one per server."""

    app: WSGIApp
    mode: str
    server_name: str
    server_port: int
    limits: Limits
    delay: RandomDelay | None = None
    keepalive: bool = True
    multithread: bool = True
    multiprocess: bool = False
    stopping: Flag = field(default_factory=Flag)
    # Read end of a pipe that becomes readable when the server stops: idle waits poll it.
    stop_fd: int = -1
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


def handle_request(conn: ClientConnection, ctx: ServerContext, worker: str) -> bool:
    """Serve one request from ``conn``; True if the connection may carry another.

    Never raises for anything a client does. When an error response was sent,
    ``conn.linger`` is set: the caller should close gracefully.
    """
    limits = ctx.limits
    try:
        head = read_head(conn, limits.header_timeout, limits.io_timeout)
    except HttpError as err:
        send_error(conn, ctx, err)
        return False
    except ClientTimeout:
        if conn.buf:
            send_error(conn, ctx, HttpError(408, "Request Timeout", "request head too slow"))
        return False
    except ClientGone:
        return False
    if head is None:
        return False
    try:
        return _serve(conn, ctx, worker, head)
    except HttpError as err:
        send_error(conn, ctx, err, head.raw_line)
        return False
    except ClientGone as exc:
        server_logger.info("- Broken pipe from %s (%s)", conn.addr, exc)
        return False
    except Exception:
        # A bug of ours: log it and drop this connection, but keep the worker serving.
        logger.exception("cserver: internal error serving %r", head.raw_line)
        return False


def _serve(conn: ClientConnection, ctx: ServerContext, worker: str, head: RequestHead) -> bool:
    environ = ctx.base_environ()
    limits = ctx.limits
    connection_tokens = ""
    transfer_encoding = None
    content_length = None
    expect = None
    for name, value in head.headers:
        if "_" in name:
            # Dropped, as Django's runserver does, so X-Forwarded_For cannot spoof X-Forwarded-For.
            continue
        key = name.upper().replace("-", "_")
        if key == "CONTENT_LENGTH":
            if content_length is not None and content_length != value:
                raise HttpError(400, "Bad Request", "conflicting Content-Length headers")
            content_length = value
            continue
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if key == "TRANSFER_ENCODING":
            transfer_encoding = value.lower() if transfer_encoding is None else "conflicting"
        elif key == "CONNECTION":
            connection_tokens = value.lower()
        elif key == "EXPECT":
            expect = value.lower()
        key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value

    if expect is not None and expect != "100-continue":
        raise HttpError(417, "Expectation Failed", f"unsupported Expect: {expect[:40]!r}")
    body: Any
    reader = None
    if transfer_encoding is not None:
        if content_length is not None:
            raise HttpError(400, "Bad Request", "both Content-Length and Transfer-Encoding")
        if transfer_encoding != "chunked":
            raise HttpError(501, "Not Implemented", "unsupported Transfer-Encoding")
        _continue_if_expected(conn, ctx, head, expect, 1)
        body, length = read_chunked(
            conn, limits.max_body_bytes, limits.body_timeout, limits.io_timeout
        )
        environ["CONTENT_LENGTH"] = str(length)
    else:
        length = 0
        if content_length is not None:
            if not _LENGTH_RE.fullmatch(content_length):
                raise HttpError(400, "Bad Request", f"invalid Content-Length {content_length!r}")
            length = int(content_length)
            if length > limits.max_body_bytes:
                raise body_too_large(limits.max_body_bytes)
            environ["CONTENT_LENGTH"] = str(length)
            _continue_if_expected(conn, ctx, head, expect, length)
        body = reader = BodyReader(conn, length, limits.body_timeout, limits.io_timeout)
        reader.prefetch(PREBUFFER_BYTES)

    path, _, query = head.target.partition("?")
    if path[:1] != "/":
        # Absolute-form target (or OPTIONS *): the path starts after the authority.
        slash = path.find("/", path.find("//") + 2) if "//" in path else -1
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

    response = Response(conn, ctx, head.version)
    try:
        keep_alive = run_app(ctx, environ, response, head, keep_alive)
    finally:
        if reader is None:
            body.close()
    log_request(head.raw_line, response.code, response.size, delay_ms)
    conn.requests_served += 1
    if reader is not None and reader.remaining and not _skip_unread(conn, reader):
        return False
    return keep_alive and not ctx.stopping.is_set()


def _skip_unread(conn: ClientConnection, reader: BodyReader) -> bool:
    """Drop a small body the application left unread if it is already here; False means the
    connection must close (waiting for the rest would let the client hold the worker)."""
    return reader.remaining <= len(conn.buf) and reader.discard(MAX_DISCARD)


def _continue_if_expected(
    conn: ClientConnection, ctx: ServerContext, head: RequestHead, expect: str | None, length: int
) -> None:
    # Only when the body is not already here: the client may have sent it without waiting.
    if expect == "100-continue" and head.version == "HTTP/1.1" and len(conn.buf) < length:
        conn.send_all(b"HTTP/1.1 100 Continue\r\n\r\n", ctx.limits.io_timeout)


def send_error(
    conn: ClientConnection,
    ctx: ServerContext,
    err: HttpError,
    request_line: str = "",
    wait: float = 2.0,
) -> None:
    """Answer a request the server could not parse or accept; the caller then lingers.

    ``wait`` bounds how long a client that does not read may hold the sender; the
    selector thread passes 0 (one non-blocking attempt).
    """
    body = f"{err.status} {err.reason}: {err.detail}\n".encode("latin-1", "replace")
    head = (
        f"HTTP/1.1 {err.status} {err.reason}\r\n"
        f"Server: {SERVER_HEADER}\r\nDate: {ctx.http_date()}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    conn.linger = True
    try:
        conn.send_all(head + body, min(ctx.limits.io_timeout, wait))
    except ClientGone:
        conn.linger = False
    if err.detail == TLS_DETAIL:
        server_logger.error(
            "You're accessing the development server over HTTPS, but it only supports HTTP. "
            "Use http://%s:%s/ instead.",
            ctx.server_name,
            ctx.server_port,
        )
        return
    log_request(request_line or "-", err.status, len(body), None, detail=err.detail)


def log_request(
    request_line: str, code: int, size: int, delay_ms: int | None, detail: str = ""
) -> None:
    """One request log line on ``django.server``, shaped like runserver's."""
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
