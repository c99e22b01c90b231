"""Parse runserver's optional ``addrport`` argument exactly the way Django's runserver does."""

from __future__ import annotations

import re

# Reuse Django's own pattern so `runcserver` accepts precisely what `runserver` accepts.
from django.core.management.commands.runserver import naiveip_re


class AddrportError(ValueError):
    """An addrport argument that runserver would refuse; the message is one user-facing line."""


def parse_addrport(text: str, ipv6: bool) -> tuple[str, int, bool]:
    """Split ``[addr:]port`` into (addr or "", port, ipv6 forced by a bracketed address)."""
    match = re.match(naiveip_re, text)
    if match is None:
        raise AddrportError(f'"{text}" is not a valid port number or address:port pair.')
    addr, _ipv4, ipv6_literal, fqdn, port = match.groups()
    if not port.isdigit():
        raise AddrportError(f"{port!r} is not a valid port number.")
    forced = False
    if addr:
        if ipv6_literal:
            addr = addr[1:-1]
            forced = True
        elif ipv6 and not fqdn:
            raise AddrportError(f'"{addr}" is not a valid IPv6 address.')
    # runserver binds "0" and prints it as 0.0.0.0; spell out the wildcard so the
    # config table, the banner and the bind call all show the same address.
    if addr == "0":
        addr = "::" if ipv6 or forced else "0.0.0.0"
    return addr or "", int(port), forced
