"""Request heads in asgi mode checked by the rules of cserver's own parser before h11 sees them.

h11 parses every request; this gate only judges heads, with cserver/server/http.py's
take_head() (no rule is written twice), so asgi mode refuses exactly the heads the other
modes refuse, with the same status: a head too large (431), a request line too long (414),
HTTP/0.9 or a TLS handshake at once rather than after the header timeout, an unsupported
version (505), Transfer-Encoding and Content-Length together, an unknown
Transfer-Encoding (501) or expectation (417). Bodies (chunk framing) are h11's alone.
"""

from __future__ import annotations

from typing import cast

from cserver.server.conn import ClientConnection
from cserver.server.http import take_head


class HeadGate:
    """The bytes of one request head as they arrive; quacks like the ClientConnection parts
    take_head() uses (buf, scanned, line_ok, reset_request)."""

    __slots__ = ("buf", "continued", "deadline", "line_ok", "scanned")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.scanned = 0
        self.line_ok = False
        self.continued = False
        self.deadline = 0.0

    @property
    def receiving(self) -> bool:
        """Part of a head has come in and not all of it."""
        return bool(self.buf)

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the head; HttpError as soon as it is known to be bad.

        Once the head is complete the gate forgets it (and whatever came after it, body or
        pipelined requests, which h11 reads): it is ready for the next head.
        """
        self.buf += data
        if take_head(cast(ClientConnection, self)) is not None:
            self.buf.clear()
            self.reset_request()

    def reset_request(self) -> None:
        self.scanned = 0
        self.line_ok = False
        self.continued = False
        self.deadline = 0.0
