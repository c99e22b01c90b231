"""uvicorn's h11 protocol with the limits of the other modes, where uvicorn's differ or lack.

- ``--connection-limit``: a connection over the limit gets a 503 as it is accepted, as in
  the other modes. (uvicorn's limit_concurrency judges each request instead, counting the
  connection asking: with the limit reached by newer connections, an older keep-alive
  connection's next request would get the 503.)
- ``--header-timeout``: from a request's first byte to its complete head; a client that
  takes longer gets a 408 and the connection closes (uvicorn would wait forever).
- A new connection that sends nothing is closed after ``--keepalive-timeout``, as the
  other modes close an idle one (uvicorn arms its keep-alive timer only after a response).
- Lingering close (linger.py): a connection that closes, or whose response ends, while the
  client may still be sending is half-closed and drained within ``--linger-*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cserver.server.asgi.heads import HeadGate
from cserver.server.asgi.linger import LingeringTransport
from cserver.server.canned import canned_response, connection_limit_response
from cserver.server.context import ServerContext
from cserver.server.handler import error_response, log_error, log_request
from cserver.server.http import HttpError
from cserver.server.refusals import RefusalLog

_TIMEOUT_BODY = b"408 Request Timeout: request head too slow\n"
_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large"}


class CserverH11Protocol(H11Protocol):
    """H11Protocol plus a head timer; the config it reads is uvicorn's own."""

    # protocol_class() makes a subclass for one server.
    ctx: ServerContext
    header_timeout: float
    connection_limit: int
    refusal_log: RefusalLog

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._gate = HeadGate(self.ctx.limits.head)
        self._parse_error: h11.RemoteProtocolError | None = None
        # Keep h11's verdict on a bad request: uvicorn answers every one with a bare 400.
        self.conn.next_event = self._next_event  # type: ignore[method-assign]

    def _next_event(self) -> Any:
        try:
            return h11.Connection.next_event(self.conn)
        except h11.RemoteProtocolError as exc:
            self._parse_error = exc
            raise

    def send_400_response(self, msg: str) -> None:
        """A refused request: h11's status (431 for a head too large), in the other modes'
        canned form, logged as they log it."""
        self._stop_head_timer()
        exc = self._parse_error
        status = exc.error_status_hint if exc is not None else 400
        reason = _REASONS.get(status, "Bad Request")
        detail = str(exc) if exc is not None else msg
        body = f"{status} {reason}: {detail}\n".encode("latin-1", "replace")
        self.transport.write(canned_response(f"{status} {reason}", body))
        self.transport.close()
        log_request("-", status, len(body), None, detail=detail)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._linger = LingeringTransport(transport, self.loop, self.ctx.limits, self._unread)
        self.transport = self._linger  # type: ignore[assignment]
        # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and one
        # accepted from cserver's listener (socket(AF_INET, SOCK_STREAM)) says 0: without
        # this, Nagle's algorithm and delayed ACKs stall responses 40 ms at a time.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.connections) > self.connection_limit:
            self._refuse()
            return
        # Nothing received yet: the same idle timer uvicorn uses between requests.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        if self._linger.active:
            self._linger.received(len(data))  # read and dropped until the client is done
            return
        # The gate judges a head that starts here; one h11 already holds part of (pipelined
        # behind a response) is h11's alone.
        if self.conn.their_state is h11.IDLE and (
            self._gate.receiving or not self.conn.trailing_data[0]
        ):
            try:
                self._gate.feed(data)
            except HttpError as err:
                self._refuse_head(err)
                return
        super().data_received(data)
        self._watch_head()

    def _refuse_head(self, err: HttpError) -> None:
        """Answer a head the other modes would refuse, as they do, and close."""
        self._stop_head_timer()
        self._unset_keepalive_if_required()
        data, size = error_response(err, None)
        self.transport.write(data)
        self._linger.linger()
        log_error(err, self.ctx, "-", size)

    def on_response_complete(self) -> None:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY:
            # The application answered without reading the whole body: uvicorn would keep
            # the connection and drop the rest of the body however long it took to come.
            # Drain it within the linger bounds instead, then close.
            self._unset_keepalive_if_required()
            self.transport.close()
        super().on_response_complete()
        # A pipelined request may be waiting, partly received.
        self._watch_head()

    def _unread(self) -> int | None:
        """How much of a body may still come when uvicorn closes (None: close at once)."""
        if self._stopping:
            return None  # the other modes do not linger at shutdown either
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            # h11 keeps what is left of the declared length to itself; the body limit
            # bounds it.
            return self.ctx.limits.max_body_bytes
        if state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED) or (
            state is h11.IDLE and not self.conn.trailing_data[0]
        ):
            return None  # the request was read whole, or none began
        return 0  # part of a head, or a request h11 refused

    def eof_received(self) -> None:
        # While lingering the client's end of the stream is what we wait for; returning
        # None lets asyncio close the transport.
        if self._linger.active:
            self._linger.cancel_timers()

    def shutdown(self) -> None:
        self._stopping = True
        if self._linger.active:
            self._linger.close_now()
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._linger.cancel_timers()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """Run the head timer while part of a request head, and no more, has arrived."""
        conn = self.conn
        partial_head = conn.their_state is h11.IDLE and bool(conn.trailing_data[0])
        if not partial_head:
            self._stop_head_timer()
        elif self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE:
            # The same bytes as the other modes send; h11 is bypassed, the connection closes.
            self.transport.write(canned_response("408 Request Timeout", _TIMEOUT_BODY))
            log_request("-", 408, len(_TIMEOUT_BODY), None, "request head too slow")
        self._unset_keepalive_if_required()
        self.transport.close()

    def _refuse(self) -> None:
        """Answer a connection over the limit with a 503 at once and close it."""
        self._unset_keepalive_if_required()
        self.connections.discard(self)  # it no longer counts against the limit
        self.transport.write(connection_limit_response(self.connection_limit))
        # Half-close and let the client's request arrive, then close: closing at once would
        # answer that request with a reset, which can destroy the 503 before it is read.
        limits = self.ctx.limits
        self._linger.linger(idle=max(limits.linger_idle, limits.keepalive_timeout))
        self.refusal_log.refused(self.connection_limit)


def protocol_class(ctx: ServerContext) -> type[CserverH11Protocol]:
    """The protocol class for one server: uvicorn builds protocols from a class alone."""
    values = {
        "ctx": ctx,
        "header_timeout": ctx.limits.header_timeout,
        "connection_limit": ctx.limits.connection_limit,
        "refusal_log": RefusalLog(),
    }
    return type("CserverH11Protocol", (CserverH11Protocol,), values)
