"""Raw-socket helpers for talking to a server the way hostile or broken clients do."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

from testkit.rawsocket import exchange, read_until_closed

__all__ = ["exchange", "read_until_closed"]  # and the helpers below

_STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
_LENGTH_RE = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


def statuses(response: bytes) -> list[int]:
    """The status codes of the responses in ``response``, framed by their Content-Length."""
    found = []
    rest = response
    while rest:
        match = _STATUS_RE.match(rest)
        end = rest.find(b"\r\n\r\n")
        if match is None or end < 0:
            break
        found.append(int(match.group(1)))
        length = _LENGTH_RE.search(rest, 0, end)
        rest = rest[end + 4 + (int(length.group(1)) if length else 0) :]
    return found


def first_status(response: bytes) -> int | None:
    """The status of the first final (non-1xx) response, or None if there is none."""
    return next((code for code in statuses(response) if code >= 200), None)


def get_hello(port: int, timeout: float = 5.0) -> int | None:
    """One plain GET /hello on a new connection; its status, or None if none came back."""
    return first_status(
        exchange(
            port, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=timeout
        )
    )


def proc_threads(pid: int) -> int:
    """Threads of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError(f"no thread count for {pid}")


def proc_fds(pid: int) -> int:
    """Open file descriptors of a process, from /proc."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


@contextlib.contextmanager
def open_connections(port: int, count: int, timeout: float = 10.0) -> Iterator[list[socket.socket]]:
    """``count`` connected sockets that send nothing, all closed on exit."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=timeout))
        yield socks
    finally:
        for sock in socks:
            sock.close()
