"""uvicorn's h11 protocol with the two timeouts the other modes have and uvicorn lacks.

- ``--header-timeout``: from a request's first byte to its complete head; a client that
  takes longer gets a 408 and the connection closes (uvicorn would wait forever).
- A new connection that sends nothing is closed after ``--keepalive-timeout``, as the
  other modes close an idle one (uvicorn arms its keep-alive timer only after a response).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cserver.server.handler import log_request

_TIMEOUT_BODY = b"408 Request Timeout: request head too slow\n"


class CserverH11Protocol(H11Protocol):
    """H11Protocol plus a head timer; the config it reads is uvicorn's own."""

    header_timeout: float = 10.0  # with_header_timeout() makes a class with another

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Nothing received yet: the same idle timer uvicorn uses between requests.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request may be waiting, partly received.
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
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
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_TIMEOUT_BODY)).encode()),
                (b"connection", b"close"),
                *self.server_state.default_headers,
            ]
            try:
                self.transport.write(self.conn.send(h11.Response(status_code=408, headers=headers)))
                self.transport.write(self.conn.send(h11.Data(data=_TIMEOUT_BODY)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:
                pass
            log_request("-", 408, len(_TIMEOUT_BODY), None, "request head too slow")
        self._unset_keepalive_if_required()
        self.transport.close()


def with_header_timeout(seconds: float) -> type[CserverH11Protocol]:
    """The protocol class for one server: uvicorn builds protocols from a class alone."""
    return type("CserverH11Protocol", (CserverH11Protocol,), {"header_timeout": seconds})
