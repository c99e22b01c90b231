"""The request handler all modes share: one request in, one WSGI call, one response."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import unquote

from cserver.server.body import BodyReader, read_chunked
from cserver.server.canned import canned_response
from cserver.server.conn import ClientClosedEarly, ClientConnection, ClientGone, ClientTimeout
from cserver.server.context import ServerContext
from cserver.server.http import TLS_DETAIL, HttpError, RequestHead, body_too_large
from cserver.server.limits import MAX_DISCARD, PREBUFFER_BYTES
from cserver.server.requestlog import emit
from cserver.server.response import Response, run_app, server_logger

__all__ = ["error_response", "handle_request", "log_error", "log_request", "send_error"]

logger = logging.getLogger("cserver")


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


def read_head(
    conn: ClientConnection, header_timeout: float, io_timeout: float
) -> RequestHead | None:
    """The next request head: parsed already by the selector, or read and parsed now.

    None if the client closed before sending one.
    """
    reader = conn.reader
    parsed = reader.take_parsed()
    if parsed is not None:
        return parsed
    deadline = 0.0
    while True:
        parsed = reader.take_head()
        if parsed is not None:
            return parsed
        if not deadline:
            deadline = reader.deadline or time.monotonic() + header_timeout
        if not conn.fill(deadline, io_timeout):
            if conn.buf:
                raise incomplete_request("closed in the middle of the request head")
            return None


def _serve(conn: ClientConnection, ctx: ServerContext, worker: str, head: RequestHead) -> bool:
    environ = _environ(conn, ctx, head)
    environ["cserver.worker"] = worker
    try:
        body, reader = _request_body(conn, ctx, head, environ)
    except ClientClosedEarly as exc:
        raise incomplete_request(str(exc)) from None
    environ["wsgi.input"] = body
    keep_alive = head.keep_alive and ctx.keepalive and not ctx.stopping.is_set()
    delay_ms = None
    if ctx.delay is not None:
        delay_ms = ctx.delay.draw_ms()
        time.sleep(delay_ms / 1000)
    environ["cserver.delay_ms"] = delay_ms
    response = Response(conn, ctx, head.version, head.method, keep_alive, head.raw_line)
    try:
        if head.target == "*":  # the parser allows it for OPTIONS only
            keep_alive = answer_server_options(response)
        else:
            keep_alive = run_app(ctx, environ, response)
    except ClientGone:
        if reader is not None and reader.closed_early and not response.sent:
            raise incomplete_request("closed its side before the end of the body") from None
        raise
    finally:
        if reader is None:
            body.close()
    log_request(head.raw_line, response.code, response.size, delay_ms)
    conn.requests_served += 1
    if reader is not None and reader.remaining and not _skip_unread(conn, reader):
        # Closing with unread input would reset the connection and could destroy the
        # response before the client reads it: half-close and drain the rest of the body
        # (which is within the body limit) instead, away from this worker (lingering.py).
        conn.linger = True
        conn.unread = reader.remaining
        return False
    return keep_alive and not ctx.stopping.is_set()


# What "OPTIONS *" is told: the methods the server hands to the application.
SERVER_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def answer_server_options(response: Response) -> bool:
    """Answer "OPTIONS *" here, 200 with Allow, without the application.

    The asterisk asks about the server, not a resource (RFC 9110 section 9.3.7). Django
    has no URL for "*": handed over, as gunicorn does, the request would reach the
    resolver with some made-up path and be answered for a page that does not exist (a
    200 from a catch-all view, or a 404 that is not true of the server). So the server
    answers for itself, with the methods it passes on; a resource's own methods are its
    view's business, asked with OPTIONS on its URL.
    """
    response.start_response("200 OK", [("Allow", SERVER_METHODS), ("Content-Length", "0")])
    response.start()
    return response.finish()


def incomplete_request(detail: str) -> HttpError:
    """The 400 for a client that half-closed before its request was complete."""
    return HttpError(400, "Bad Request", f"incomplete request: the client {detail}")


def _environ(conn: ClientConnection, ctx: ServerContext, head: RequestHead) -> dict[str, Any]:
    """The WSGI environ of a parsed head, without its body."""
    environ = ctx.base_environ()
    for name, value in head.headers:
        if "_" in name:
            # Dropped, as Django's runserver does, so X-Forwarded_For cannot spoof X-Forwarded-For.
            continue
        key = name.upper().replace("-", "_")
        if key == "CONTENT_LENGTH":
            continue  # set from the framing below
        if key != "CONTENT_TYPE":
            key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    # A fragment is never part of the request (RFC 9112 section 3.2): one sent anyway is
    # accepted and dropped (target.py says why), so the application never sees it.
    path, _, query = head.target.partition("#")[0].partition("?")
    if path[:1] != "/":
        # Absolute-form target (or OPTIONS *): the path starts after the authority.
        slash = path.find("/", path.find("//") + 2) if "//" in path else -1
        path = path[slash:] if slash >= 0 else "/"
    addr = conn.addr
    environ.update(
        REQUEST_METHOD=head.method,
        PATH_INFO=unquote(path, "iso-8859-1"),
        QUERY_STRING=query,
        SERVER_PROTOCOL=head.version,
        REMOTE_ADDR=addr[0] if addr else "",
        REMOTE_PORT=str(addr[1]) if addr and len(addr) > 1 else "",
    )
    return environ


def _request_body(
    conn: ClientConnection, ctx: ServerContext, head: RequestHead, environ: dict[str, Any]
) -> tuple[Any, BodyReader | None]:
    """``wsgi.input`` for the framing the head declared: (body, its lazy reader or None)."""
    limits = ctx.limits
    if head.chunked:
        _continue_if_expected(conn, head, 1)
        body, length = read_chunked(
            conn, limits.max_body_bytes, limits.body_timeout, limits.io_timeout
        )
        environ["CONTENT_LENGTH"] = str(length)
        return body, None
    length = head.length
    if length:
        if length > limits.max_body_bytes:
            raise body_too_large(limits.max_body_bytes)
        environ["CONTENT_LENGTH"] = str(length)
        _continue_if_expected(conn, head, length)
    elif any(name.lower() == "content-length" for name, _ in head.headers):
        environ["CONTENT_LENGTH"] = "0"
    reader = BodyReader(conn, length, limits.body_timeout, limits.io_timeout)
    reader.prefetch(PREBUFFER_BYTES)
    return reader, reader


def _skip_unread(conn: ClientConnection, reader: BodyReader) -> bool:
    """Drop a small body the application left unread if it is already here; False means the
    connection must close (waiting for the rest would let the client hold the worker)."""
    return reader.remaining <= len(conn.buf) and reader.discard(MAX_DISCARD)


def _continue_if_expected(conn: ClientConnection, head: RequestHead, length: int) -> None:
    # Only when the body is not already here: the client may have sent it without waiting.
    if conn.reader.expects_continue(head, length):
        conn.send_continue()


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
    data, size = error_response(err, ctx.http_date())
    conn.linger = True
    try:
        conn.send_all(data, min(ctx.limits.io_timeout, wait))
    except ClientGone:
        conn.linger = False
    log_error(err, ctx, request_line, size)


def error_response(err: HttpError, date: str | None = None) -> tuple[bytes, int]:
    """(the complete response to a refused request, the size of its body)."""
    body = f"{err.status} {err.reason}: {err.detail}\n".encode("latin-1", "replace")
    return canned_response(f"{err.status} {err.reason}", body, date=date), len(body)


def log_error(err: HttpError, ctx: ServerContext, request_line: str, size: int) -> None:
    """The log line of a refused request; a TLS handshake gets runserver's hint instead."""
    if err.detail == TLS_DETAIL:
        server_logger.error(
            "You're accessing the development server over HTTPS, but it only supports HTTP. "
            "Use http://%s:%s/ instead.",
            ctx.server_name,
            ctx.server_port,
        )
        return
    log_request(request_line or "-", err.status, size, None, detail=err.detail)


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
    # Handlers run on the request log's writer thread (requestlog.py), not on this one.
    emit(server_logger, level, message, args, {"status_code": code, "request": None})
