"""A raw socket's exchange with a server: send bytes, read until it closes, every wait bounded."""

from __future__ import annotations

import contextlib
import socket
import time


def exchange(
    port: int,
    data: bytes,
    *,
    timeout: float = 5.0,
    half_close: bool = False,
    host: str = "127.0.0.1",
) -> bytes:
    """Send ``data`` on a new connection and read until the server closes (or ``timeout``)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock, timeout)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the peer sends until it closes, a reset, or ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)
