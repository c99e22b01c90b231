"""The request-target's four forms (RFC 9112 section 3.2), each checked character by
character against the URI grammar of RFC 3986.

    origin-form    = absolute-path [ "?" query ]          GET /where?q=1
    absolute-form  = absolute-URI                          GET http://host/where
    authority-form = uri-host ":" port                     CONNECT host:443
    asterisk-form  = "*"                                   OPTIONS *

A target with a character outside the grammar (a space, a quote, a brace, a backslash, a
"%" not followed by two hex digits) is refused with 400: different parsers would read it
differently, and clients percent-encode what the grammar leaves out. One leniency: raw
bytes from 0x80 up (UTF-8 typed into curl), which runserver and gunicorn accept and which
no parser takes for a delimiter; the application gets them decoded as ISO-8859-1.
"""

from __future__ import annotations

import re

from cserver.server.errors import bad_request

__all__ = ["check_target"]

# pchar (RFC 3986 section 3.3) without pct-encoded, plus "/" and "?" that path and query
# add: unreserved, sub-delims, ":" and "@".
_PCHARS = rb"A-Za-z0-9\-._~!$&'()*+,;=:@"
_PATH_QUERY = rb"(?:[%s/?\x80-\xff]|%%[0-9A-Fa-f]{2})*" % _PCHARS
# A fragment is not part of any form: user agents never send one. One that comes anyway is
# accepted and dropped before the application sees the target (handler._environ), as
# gunicorn, h11 and llhttp do: it cannot change what is routed or framed, so refusing it
# would break a client for no gain in safety.
_FRAGMENT = rb"(?:#%s)?" % _PATH_QUERY
_ORIGIN_RE = re.compile(rb"/%s%s" % (_PATH_QUERY, _FRAGMENT))
# authority = [ userinfo "@" ] host [ ":" port ]; host may be an IP literal in brackets.
_AUTHORITY = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2}|\[[0-9A-Fa-f:.]+\])*"
# absolute-URI with an authority: any scheme (RFC 3986 section 3.1), as a server must accept
# the absolute-form (RFC 9112 section 3.2.2); the application sees the path.
_ABSOLUTE_RE = re.compile(
    rb"[A-Za-z][A-Za-z0-9+\-.]*://%s(?:/%s)?(?:\?%s)?%s"
    % (_AUTHORITY, _PATH_QUERY, _PATH_QUERY, _FRAGMENT)
)
_AUTHORITY_FORM_RE = re.compile(
    rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}"
)


def check_target(method: bytes, target: bytes) -> None:
    """A 400 unless ``target`` is in the form the method allows."""
    first = target[:1]
    if first == b"/":
        if _ORIGIN_RE.fullmatch(target):
            return
    elif target == b"*":
        # Only OPTIONS asks about the server as a whole (RFC 9112 section 3.2.4).
        if method == b"OPTIONS":
            return
    elif method == b"CONNECT":
        # Only CONNECT names an authority alone (RFC 9112 section 3.2.3), and it must.
        if _AUTHORITY_FORM_RE.fullmatch(target):
            return
    elif _ABSOLUTE_RE.fullmatch(target):
        return
    shown = target[:40].decode("latin-1")
    raise bad_request(f"invalid request target {shown!r}")
