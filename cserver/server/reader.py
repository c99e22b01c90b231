"""The request in progress on one connection: how far it was scanned, its head, its body
decoder, its error, its deadline.

No socket here: whoever reads a connection's bytes (the selector thread, a worker, a fork
child, the asgi gate) appends them to the buffer and asks the reader; the next reader of
the same connection goes on where the last stopped. One reader lives as long as its
connection and is reset between requests, so serving a request allocates none.
"""

from __future__ import annotations

import time

from cserver.server.chunked import ChunkedBody
from cserver.server.http import (
    HttpError,
    RequestHead,
    check_partial,
    head_end,
    head_too_large,
    parse_head,
)
from cserver.server.limits import DEFAULT_HEAD_LIMITS, PREBUFFER_BYTES, HeadLimits

__all__ = ["CONTINUE", "GO", "WAIT", "RequestReader"]

# What ready() says of the buffered request.
WAIT = 0  # more of the request is on its way
GO = 1  # a worker can serve it now without waiting (or answer its error)
CONTINUE = 2  # send "100 Continue", then wait for the body


class RequestReader:
    """Parsing state of the request being received on a connection whose buffer is ``buf``."""

    __slots__ = (
        "buf",
        "chunked",
        "continued",
        "deadline",
        "error",
        "head",
        "limits",
        "line_ok",
        "scanned",
    )

    def __init__(self, buf: bytearray, limits: HeadLimits = DEFAULT_HEAD_LIMITS) -> None:
        self.buf = buf  # the connection's own buffer, not a copy
        self.limits = limits
        self.scanned = 0  # bytes of buf already searched for the end of the head
        self.line_ok = False  # the buffered request line was already checked
        self.continued = False  # "100 Continue" was sent for this request
        self.deadline = 0.0  # when the request being read must be complete
        # The head parsed by the selector and not yet taken by a worker, or why the
        # request cannot be served.
        self.head: RequestHead | None = None
        self.error: HttpError | None = None
        # The chunked body of that request, as far as the selector decoded it.
        self.chunked: ChunkedBody | None = None

    def reset(self) -> None:
        """Forget the scan of a head once it is taken: the next request starts afresh."""
        self.scanned = 0
        self.line_ok = False
        self.continued = False
        self.deadline = 0.0

    def clear(self) -> None:
        """Forget the request in progress entirely, its bytes and decoded body too."""
        self.buf.clear()
        self.reset()
        self.head = None
        self.error = None
        self.drop_chunked()

    def drop_chunked(self) -> None:
        if self.chunked is not None:
            self.chunked.close()
            self.chunked = None

    def arrived(self) -> bool:
        """Whether any of the next request is here: bytes, or a head or error parsed."""
        return bool(self.buf) or self.head is not None or self.error is not None

    def take_head(self) -> RequestHead | None:
        """Parse the buffered request head if it is complete, removing it from the buffer.

        None while it is incomplete (HttpError as soon as it is known to be bad). Searches
        only bytes not searched before, so a client trickling its head costs linear time.
        """
        buf = self.buf
        if buf and buf[0] in (10, 13):
            self._strip_leading_newlines()
        found = head_end(buf, max(0, self.scanned - 2)) if buf else None
        if found is None:
            self.scanned = len(buf)
            self.line_ok = check_partial(buf, self.line_ok, self.limits)
            return None
        end, body = found
        head = bytes(buf[:end])
        del buf[:body]
        self.reset()
        if end > self.limits.head_bytes:
            raise head_too_large(self.limits)
        return parse_head(head, self.limits)

    def _strip_leading_newlines(self) -> None:
        """Drop the empty lines a client may send between requests (RFC 9112 section 2.2)."""
        buf = self.buf
        n = 0
        while n < len(buf) and buf[n] in (10, 13):
            n += 1
        if n:
            del buf[:n]
            self.scanned = 0

    def take_parsed(self) -> RequestHead | None:
        """The head the selector parsed, handed to the worker once; raises its error."""
        error = self.error
        if error is not None:
            self.error = None
            raise error
        head = self.head
        if head is not None:
            self.head = None
        return head

    def take_chunked(self, limit: int) -> ChunkedBody:
        """The chunked body as far as the selector decoded it, or a new one; the caller
        owns it from here."""
        body, self.chunked = self.chunked or ChunkedBody(limit, self.limits), None
        return body

    def expects_continue(self, head: RequestHead, length: int) -> bool:
        """Whether to send "100 Continue" now: once per request, and only while the body
        is not here already (the client may have sent it without waiting)."""
        if head.expect_continue and not self.continued and len(self.buf) < length:
            self.continued = True
            return True
        return False

    def ready(self, max_body: int, body_timeout: float) -> int:
        """Whether the buffered request can go to a worker: WAIT, GO or CONTINUE.

        GO once the whole head is parsed (``head``), plus its body when that is small, or
        as soon as an error can be reported (``error``, or the chunked body's own). While
        the body of a parsed head is still arriving, ``deadline`` is the body's. CONTINUE
        counts as sent: the caller sends it.
        """
        head = self.head
        if head is None:
            try:
                head = self.take_head()
            except HttpError as err:
                self.error = err
                return GO
            if head is None:
                return WAIT
            self.head = head
            if head.length or head.chunked:
                self.deadline = time.monotonic() + body_timeout
        if head.chunked:
            if self.chunked is None:
                self.chunked = ChunkedBody(max_body, self.limits)
            try:
                done = self.chunked.feed(self.buf)
            except HttpError:
                return GO  # the worker answers the error the body keeps
            # A large body is decoded by the worker as it arrives, not held back here.
            done = done or self.chunked.total > PREBUFFER_BYTES
        elif head.length > PREBUFFER_BYTES or head.length > max_body:
            return GO  # streamed by the worker, or refused with 413 before the body is sent
        else:
            done = len(self.buf) >= head.length
        if done:
            return GO
        if head.expect_continue and not self.continued:
            self.continued = True
            return CONTINUE
        return WAIT
