"""The numbers that bound what one client, or many, can hold of the server."""

from __future__ import annotations

from dataclasses import dataclass

# Wire-format limits. A head over these is refused, so one client cannot fill memory.
MAX_HEAD_BYTES = 64 * 1024
MAX_LINE_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_METHOD_BYTES = 64
RECV_SIZE = 64 * 1024
# A chunked body's size line (with its extensions).
MAX_CHUNK_LINE = 8192
# Bodies up to this size are read by the selector before a worker sees the request, so a
# client that trickles a small POST body holds no worker.
PREBUFFER_BYTES = 64 * 1024
# An unread request body up to this size is skipped to keep the connection; more closes it.
MAX_DISCARD = 64 * 1024
# Chunked bodies are decoded into memory up to this size, then spill to a temporary file.
SPOOL_BYTES = 1024 * 1024
# After an error response: how much the client may still send before we close anyway, and
# how many such closing connections we keep at least (the connection limit, if higher).
LINGER_BYTES = 1024 * 1024
MAX_LINGERING = 256


@dataclass(frozen=True)
class Limits:
    """Timeouts and sizes that bound what one client can hold."""

    keepalive_timeout: float = 5.0  # idle connection between requests
    header_timeout: float = 10.0  # from the first byte of a request to its complete head
    io_timeout: float = 30.0  # longest wait for any progress while reading a body or writing
    body_timeout: float = 60.0  # whole request body, once the head is in
    grace_period: float = 5.0
    workers: int = 8
    connection_limit: int = 1000  # open client connections; more get a fast 503
    max_body_bytes: int = 10 * 1024 * 1024
    linger_timeout: float = 2.0  # how long an error response waits for the client to close
