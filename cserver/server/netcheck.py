"""Who can reach the server: loopback checks for the bind address and for clients."""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["is_loopback", "is_loopback_address", "network_warning"]


def _ip_is_loopback(text: str) -> bool | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_loopback_address(addr: str) -> bool:
    """True if ``addr`` is a loopback IP address (as in REMOTE_ADDR); names never are."""
    return _ip_is_loopback(addr) is True


def is_loopback(addr: str | None) -> bool:
    """True if the bind address ``addr`` (an IP address or a host name) is loopback only.

    Unknown, empty or unresolvable addresses count as not loopback: callers use this to
    decide what a client may see, so doubt must mean "no".
    """
    if not addr:
        return False
    known = _ip_is_loopback(addr)
    if known is not None:
        return known
    try:
        infos = socket.getaddrinfo(addr, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(_ip_is_loopback(str(a)) for a in addresses)


def network_warning(addr: str) -> str | None:
    """The warning to print when the server listens beyond loopback, else None."""
    if is_loopback(addr):
        return None
    where = "every network interface" if addr in ("0.0.0.0", "::", "") else addr
    return (
        f"Warning: listening on {where}, so this server is reachable from the network. "
        "It is a development server: do not expose it to networks you do not trust."
    )
