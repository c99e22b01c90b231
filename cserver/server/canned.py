"""The one way to build a response the server writes itself: errors, refusals, the 500 page."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cserver import __version__

SERVER_HEADER = f"cserver/{__version__} Python/{sys.version.split()[0]}"
TEXT_PLAIN = "text/plain; charset=utf-8"


def canned_response(
    status: str,
    body: bytes,
    *,
    content_type: str = TEXT_PLAIN,
    date: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A complete ``Connection: close`` response with ``body``, ready to send.

    ``status`` is the status line's tail, e.g. ``"503 Service Unavailable"``.
    """
    lines = [f"HTTP/1.1 {status}", f"Server: {SERVER_HEADER}"]
    if date is not None:
        lines.append(f"Date: {date}")
    lines.append(f"Content-Type: {content_type}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_REFUSAL_BODY = "503 Service Unavailable: connection limit reached ({limit} open connections)\n"


def connection_limit_response(limit: int) -> bytes:
    """The 503 a connection over --connection-limit gets at once, in every mode."""
    body = _REFUSAL_BODY.format(limit=limit).encode("latin-1")
    return canned_response("503 Service Unavailable", body, headers=[("Retry-After", "1")])
