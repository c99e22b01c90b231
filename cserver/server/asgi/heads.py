"""Request heads in asgi mode checked by the rules of cserver's own parser before h11 sees them.

h11 parses every request; this gate only judges heads, with the RequestReader of the
other modes (no rule is written twice), so asgi mode refuses exactly the heads the other
modes refuse, with the same status: a head, field line or field count over the head limits
(431), a request line too long (414), HTTP/0.9 or a TLS handshake at once rather than after
the header timeout, an unsupported version (505), a target outside the grammar, a field
that takes one value sent twice, Transfer-Encoding and Content-Length together, a coding
before chunked (501) or an unknown expectation (417). Bodies (chunk framing, trailers) are
h11's alone; "OPTIONS *" is answered by the server layer (layer.py).
"""

from __future__ import annotations

from cserver.server.limits import DEFAULT_HEAD_LIMITS, HeadLimits
from cserver.server.reader import RequestReader


class HeadGate:
    """The bytes of one request head as they arrive, judged by a RequestReader of its own."""

    __slots__ = ("_reader",)

    def __init__(self, limits: HeadLimits = DEFAULT_HEAD_LIMITS) -> None:
        self._reader = RequestReader(bytearray(), limits)

    @property
    def receiving(self) -> bool:
        """Part of a head has come in and not all of it."""
        return bool(self._reader.buf)

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the head; HttpError as soon as it is known to be bad.

        Once the head is complete the gate forgets it (and whatever came after it, body or
        pipelined requests, which h11 reads): it is ready for the next head.
        """
        reader = self._reader
        reader.buf += data
        if reader.take_head() is not None:
            reader.buf.clear()
