"""An application's response headers, checked before any of them goes out.

The connection-level fields belong to the server (response.py frames the message), a name
must be a token, and a value must not hold CR, LF or NUL, which would let it write headers
of its own. The WSGI and the ASGI response paths both use checked_headers().
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cserver.server.grammar import TOKEN

# Connection-level headers belong to the server: an application's would double or
# contradict the framing (RFC 9110 section 7.6.1).
_HOP_BY_HOP = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
)
_TOKEN_RE = re.compile(TOKEN)


def checked_headers(headers: Iterable[tuple[str, str]]) -> tuple[list, int | None, bool]:
    """An application's response headers without the connection-level ones: (kept,
    declared Content-Length or None, whether the application asked to close).

    ValueError for a header the server must not send (an ASGI application's too).
    """
    kept = []
    length = None
    close = False
    lowered_names = _LOWERED_NAMES
    for name, value in headers:
        lowered = lowered_names.get(name)
        if lowered is None:
            lowered = _checked_name(name)
        if "\r" in value or "\n" in value or "\x00" in value:
            # A CR or LF here would let a header value write headers of its own.
            raise ValueError(f"invalid response header from the application: {name!r}")
        if lowered in _HOP_BY_HOP:
            if lowered == "connection" and "close" in value.lower():
                close = True
            continue
        if lowered == "content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise ValueError(f"invalid Content-Length from the application: {value!r}")
            length = int(value)
        kept.append((name, value))
    return kept, length, close


# Header names already checked, lowered: an application sends the same few names every time,
# so the token check and lower() run once per name, not once per header per response.
_LOWERED_NAMES: dict[str, str] = {}
_MAX_CACHED_NAMES = 512


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
        raise ValueError(f"invalid response header from the application: {name!r}")
    lowered = name.lower()
    if len(_LOWERED_NAMES) < _MAX_CACHED_NAMES:  # bounded: names an app makes up per request
        _LOWERED_NAMES[name] = lowered
    return lowered
