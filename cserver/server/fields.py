"""Rules on field lines that the request line and framing do not cover: fields that may
appear only once, and fields that may never come as trailers.

Both protect what the application sees: Django joins repeated fields with a comma
(handler._environ), which gives two Content-Types or two Hosts a meaning neither sender
nor any proxy on the way gave them, and a trailer is read after the head the framing
and routing were decided on.
"""

from __future__ import annotations

from collections.abc import Iterable

from cserver.server.errors import bad_request

__all__ = ["FORBIDDEN_TRAILERS", "SINGLETON_FIELDS", "check_singletons", "check_trailer"]

# Fields whose value is one item, not a comma-separated list (RFC 9110 section 5.3: only
# list-based fields may be sent more than once). Content-Length is not here: the framing
# (http._read_framing) accepts a repeated identical value, as RFC 9112 section 6.3
# allows, and refuses differing ones.
SINGLETON_FIELDS = frozenset(
    {
        "host",  # RFC 9112 section 3.2: more than one Host is a 400
        "content-type",
        "authorization",
        "proxy-authorization",
        "range",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "max-forwards",
    }
)

# Fields a trailer section must not carry (RFC 9110 section 6.5.1: framing, routing,
# connection control, authentication and request modifiers are needed before the content
# is read). A server that merged them late, or a proxy that forwarded them into a head,
# would let a body rewrite its own request, so they are refused. Other trailers (a
# checksum, or Content-Type as gunicorn's corpus sends) are read and dropped: the
# application never sees trailers.
FORBIDDEN_TRAILERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "host",
        "te",
        "trailer",
        "connection",
        "keep-alive",
        "upgrade",
        "expect",
        "authorization",
        "proxy-authorization",
        "max-forwards",
    }
)


def check_singletons(names: Iterable[str]) -> None:
    """A 400 if a field that takes one value comes more than once (names lowercased)."""
    seen: set[str] = set()
    for name in names:
        if name in SINGLETON_FIELDS:
            if name in seen:
                raise bad_request(f"more than one {name} header")
            seen.add(name)


def check_trailer(name: str) -> None:
    """A 400 for a trailer field that must come in the head if anywhere (name lowercased)."""
    if name in FORBIDDEN_TRAILERS:
        raise bad_request(f"{name} is not allowed as a trailer field")
