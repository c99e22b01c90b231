"""What the request handler needs from the server that runs it: one ServerContext per server."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from cserver.delay import RandomDelay
from cserver.server.limits import Limits
from cserver.server.sendfile import FileWrapper

__all__ = ["Flag", "ServerContext", "WSGIApp"]

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class Flag:
    """A lock-free boolean: safe to set from a signal handler, unlike threading.Event."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = False

    def set(self) -> None:
        self._value = True

    def is_set(self) -> bool:
        return self._value


@dataclass
class ServerContext:
    """What the handler needs from the server that runs it; one per server."""

    app: WSGIApp
    mode: str
    server_name: str
    server_port: int
    limits: Limits
    delay: RandomDelay | None = None
    keepalive: bool = True
    multithread: bool = True
    multiprocess: bool = False
    stopping: Flag = field(default_factory=Flag)
    # Read end of a pipe that becomes readable when the server stops: idle waits poll it.
    stop_fd: int = -1
    _date: tuple[int, str] = (0, "")
    _server_and_date: tuple[int, str] = (0, "")
    _base_environ: dict[str, Any] = field(default_factory=dict)

    def base_environ(self) -> dict[str, Any]:
        """A fresh copy of the keys every request's environ starts with."""
        base = self._base_environ
        if not base:
            base = self._base_environ = self._build_base_environ()
        return base.copy()

    def _build_base_environ(self) -> dict[str, Any]:
        return {
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": str(self.server_port),
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": self.multithread,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "cserver.mode": self.mode,
        }

    def http_date(self) -> str:
        # Formatting a date costs more than the rest of the head; once a second is enough.
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]

    def server_and_date_lines(self, server: str) -> str:
        """``Server: ...\r\nDate: ...\r\n`` as most responses carry them, once a second."""
        now = int(time.time())
        if self._server_and_date[0] != now:
            self._server_and_date = (now, f"Server: {server}\r\nDate: {self.http_date()}\r\n")
        return self._server_and_date[1]
