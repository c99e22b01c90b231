"""The selector's question about a connection: can a worker take its request yet?

The selector (pool mode, and the watcher of idle connections) reads the bytes; the head is
parsed once by take_head() and a chunked body decoded once by ChunkedBody, and the worker
goes on from both where the selector stopped.
"""

from __future__ import annotations

import time

from cserver.server.body import ChunkedBody
from cserver.server.conn import ClientConnection
from cserver.server.http import HttpError, take_head
from cserver.server.limits import PREBUFFER_BYTES

__all__ = ["CONTINUE", "GO", "WAIT", "request_ready"]

WAIT = 0  # more of the request is on its way
GO = 1  # a worker can serve it now without waiting (or answer its error)
CONTINUE = 2  # send "100 Continue", then wait for the body


def request_ready(conn: ClientConnection, max_body: int, body_timeout: float) -> int:
    """Whether the buffered request can go to a worker: WAIT, GO or CONTINUE.

    GO once the whole head is parsed (``conn.head``), plus its body when that is small, or
    as soon as an error can be reported (``conn.error``, or the chunked body's own). While
    the body of a parsed head is still arriving, ``conn.deadline`` is the body's.
    """
    head = conn.head
    if head is None:
        try:
            head = take_head(conn)
        except HttpError as err:
            conn.error = err
            return GO
        if head is None:
            return WAIT
        conn.head = head
        if head.length or head.chunked:
            conn.deadline = time.monotonic() + body_timeout
    if head.chunked:
        if conn.chunked is None:
            conn.chunked = ChunkedBody(max_body)
        try:
            done = conn.chunked.feed(conn.buf)
        except HttpError:
            return GO  # the worker answers the error the body keeps
        # A large body is decoded by the worker as it arrives, not held back here.
        done = done or conn.chunked.total > PREBUFFER_BYTES
    elif head.length > PREBUFFER_BYTES or head.length > max_body:
        return GO  # streamed by the worker, or refused with 413 before the body is sent
    else:
        done = len(conn.buf) >= head.length
    if done:
        return GO
    if head.expect_continue and not conn.continued:
        return CONTINUE
    return WAIT
