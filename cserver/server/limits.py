"""The numbers that bound what one client, or many, can hold of the server."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from typing import TYPE_CHECKING

from cserver.config.model import DEFAULT_HEADER_BYTES, DEFAULT_HEADERS, DEFAULT_REQUEST_LINE_BYTES

if TYPE_CHECKING:
    from cserver.config import ServerConfig

# Wire-format limits. A head over these is refused, so one client cannot fill memory.
# The whole head, whatever the settings below allow of each line (see HeadLimits.head_bytes).
MAX_HEAD_BYTES = 64 * 1024
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


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """What one request head may hold; each limit names the setting that raises it."""

    # Lines count with their CRLF, as gunicorn's limits do (its corpus refuses an 8190-byte
    # field line under its default of 8190).
    request_line_bytes: int = DEFAULT_REQUEST_LINE_BYTES  # the request line
    header_bytes: int = DEFAULT_HEADER_BYTES  # one field line (name, colon, value)
    headers: int = DEFAULT_HEADERS  # field lines in the head, and trailer lines

    @property
    def head_bytes(self) -> int:
        """The whole head: MAX_HEAD_BYTES, or more when one line alone may be longer."""
        return max(MAX_HEAD_BYTES, self.request_line_bytes + self.header_bytes + 4)


DEFAULT_HEAD_LIMITS = HeadLimits()


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
    max_request_line_bytes: int
    max_header_bytes: int
    max_headers: int

    @cached_property
    def head(self) -> HeadLimits:
        """The limits of one request head, as the parser takes them."""
        return HeadLimits(self.max_request_line_bytes, self.max_header_bytes, self.max_headers)

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
