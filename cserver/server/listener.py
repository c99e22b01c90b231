"""The listening socket, bound once: by the supervisor, or by the server without a reloader."""

from __future__ import annotations

import socket


def create_listener(addr: str, port: int, ipv6: bool, backlog: int) -> socket.socket:
    """Bind and listen like runserver does, with SO_REUSEADDR so a restart can rebind at once."""
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock
