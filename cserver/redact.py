"""One way to show a URL without its password, for every scheme and even when malformed."""

from __future__ import annotations


def redact_url(url: str) -> str:
    """Return url with any password replaced by ***, whatever the scheme, even if malformed."""
    scheme_end = url.find("://")
    head = scheme_end + 3 if scheme_end >= 0 else 0
    at = url.rfind("@")
    if at >= head:
        user, colon, _ = url[head:at].partition(":")
        return f"{url[:head]}{user}:***{url[at:]}" if colon else url
    # No user info: a non-numeric "port" is most likely a password typed without user@host.
    netloc_end = min((i for i in map(url.find, "/?#", [head] * 3) if i >= 0), default=len(url))
    netloc = url[head:netloc_end]
    if netloc.startswith("["):  # [IPv6]:port
        host, colon, port = netloc.rpartition(":")
        if "]" in port:
            return url
    else:
        host, colon, port = netloc.partition(":")
    if colon and not port.isdigit():
        return f"{url[:head]}{host}:***{url[netloc_end:]}"
    return url
