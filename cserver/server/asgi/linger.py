"""Lingering close in asgi mode: uvicorn closes a connection the way the other modes don't.

uvicorn closes the transport right after a response that ends the connection (a 413, an
application's ``Connection: close``, HTTP/1.0, a refused head), with the client's input
perhaps still arriving: the kernel then answers that input with a reset, which can destroy
the response before the client reads it. And after a keep-alive response that left the
body unread it discards the rest however long the client sends. Both become the other
modes' lingering close (cserver/server/lingering.py): half-close, drop what still comes,
close once the client closed or is quiet for ``linger_idle``; cut it off past
``linger_bytes`` or ``linger_timeout``. It all runs on the event loop, holding no worker.

uvicorn writes and closes through the protocol's ``transport``; the protocol replaces it
with a LingeringTransport, so every close uvicorn makes goes through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from cserver.server.limits import Limits

__all__ = ["LingeringTransport"]


class LingeringTransport:
    """A transport whose close() lingers when the client may still be sending.

    ``unread()`` says, when a close is asked, whether it should linger: None for a plain
    close (nothing can be unread), else how many bytes of a declared body may still come,
    on top of ``linger_bytes``.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        limits: Limits,
        unread: Callable[[], int | None],
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._limits = limits
        self._unread = unread
        self.active = False
        self._budget = 0
        self._gap = 0.0
        self._last_byte = 0.0
        self._deadline: asyncio.TimerHandle | None = None
        self._quiet: asyncio.TimerHandle | None = None

    def __getattr__(self, name: str) -> Any:
        # Everything else (get_extra_info, pause_reading, ...) is the transport's own.
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        # uvicorn checks this before arming a keep-alive timer or reading the next request.
        return self.active or self._transport.is_closing()

    def write(self, data: bytes) -> None:
        if not self.active:
            self._transport.write(data)

    def close(self) -> None:
        if self.active:
            return
        unread = self._unread()
        if unread is None:
            self._transport.close()
        else:
            self.linger(unread)

    def linger(self, unread: int = 0, idle: float | None = None) -> None:
        """Half-close after what was written, then drop the client's input until it is done.

        ``idle`` replaces the quiet gap: a refused connection waits for a request that may
        not have been sent yet.
        """
        transport = self._transport
        if self.active or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        limits = self._limits
        self.active = True
        self._budget = limits.linger_bytes + unread
        self._gap = limits.linger_idle if idle is None else idle
        self._last_byte = time.monotonic()
        transport.write_eof()  # once what is buffered has gone out
        # uvicorn pauses reading while a body waits for the application: drain it now.
        transport.resume_reading()
        overall = max(limits.linger_timeout, self._gap)
        self._deadline = self._loop.call_later(overall, self.close_now)
        self._quiet = self._loop.call_later(self._gap, self._check_quiet)

    def received(self, size: int) -> None:
        """``size`` bytes came while lingering, and were dropped."""
        self._budget -= size
        self._last_byte = time.monotonic()
        if self._budget < 0:
            self.close_now()

    def _check_quiet(self) -> None:
        quiet_until = self._last_byte + self._gap
        remaining = quiet_until - time.monotonic()
        if remaining <= 0:
            self.close_now()
        else:
            self._quiet = self._loop.call_later(remaining, self._check_quiet)

    def close_now(self) -> None:
        """Close without (more) lingering: the client is done, over a bound, or we stop."""
        self.cancel_timers()
        with contextlib.suppress(RuntimeError):  # the loop closed under us at shutdown
            self._transport.close()

    def cancel_timers(self) -> None:
        for timer in (self._deadline, self._quiet):
            if timer is not None:
                timer.cancel()
        self._deadline = self._quiet = None
