"""The numbers that bound what one client, or many, can hold of the server."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cserver.config import ServerConfig

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
# How many connections may linger (lingering.py) at once at least (the connection limit,
# if higher); past it, a connection closes at once.
MAX_LINGERING = 256


# Timeouts that no setting exposes.
IO_TIMEOUT = 30.0  # longest wait for any progress while reading a body or writing
BODY_TIMEOUT = 60.0  # whole request body, once the head is in


@dataclass(frozen=True)
class Limits:
    """Timeouts and sizes that bound what one client can hold; from_config() builds them."""

    keepalive_timeout: float  # idle connection between requests
    header_timeout: float  # from the first byte of a request to its complete head
    grace_period: float
    workers: int
    connection_limit: int  # open client connections; more get a fast 503
    backlog: int  # connections the kernel queues before they are accepted
    max_body_bytes: int
    io_timeout: float
    body_timeout: float
    linger_timeout: float  # the longest a closing connection drains the client
    linger_bytes: int  # what it may drain beyond the unread rest of a declared body
    linger_idle: float  # quiet this long, the client is taken to be done

    @classmethod
    def from_config(cls, config: ServerConfig) -> Limits:
        """The limits of a resolved configuration: each one named like its setting."""
        settings = type(config).model_fields
        values = {f.name: getattr(config, f.name) for f in fields(cls) if f.name in settings}
        return cls(
            **values,
            io_timeout=IO_TIMEOUT,
            body_timeout=BODY_TIMEOUT,
        )
