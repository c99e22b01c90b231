"""While a server generation cannot start, the supervisor answers every request with the error."""

from __future__ import annotations

import contextlib
import html
import re
import selectors
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from cserver.server.canned import canned_response

_TRACEBACK_START = "Traceback (most recent call last):"


class StderrTail:
    """Copies a child's stderr through to ours, remembering the last lines for the error page."""

    def __init__(self, stream: IO[bytes], sink: IO[str] | None = None, lines: int = 400) -> None:
        self._stream = stream
        self._sink = sink or sys.stderr
        self._lines: deque[str] = deque(maxlen=lines)
        self._thread = threading.Thread(target=self._copy, name="cserver-stderr", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            self._lines.append(line)
            with contextlib.suppress(OSError, ValueError):
                self._sink.write(line)
                self._sink.flush()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def last_error(self) -> str:
        """The last traceback the child printed, or its last lines when there is none."""
        lines = list(self._lines)
        for index in range(len(lines) - 1, -1, -1):
            if lines[index].startswith(_TRACEBACK_START):
                return "".join(lines[index:]).strip()
        return "".join(lines[-30:]).strip()


def _read_head(conn: socket.socket, limit: int = 65536) -> bytes:
    conn.settimeout(1.0)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data and len(data) < limit:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def error_response(error: str, accepts_html: bool) -> bytes:
    """A 500 response that shows the error: HTML for browsers, plain text for the rest."""
    title = "cserver: the code does not load"
    advice = "Fix the error and save: the server reloads by itself."
    if accepts_html:
        body = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{title}</title>"
            "<style>body{font:15px system-ui,sans-serif;margin:2em;color:#222}"
            "pre{background:#fdf2f2;border:1px solid #e8b4b4;padding:1em;overflow:auto}"
            "</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(advice)}</p>"
            f"<pre>{html.escape(error)}</pre></body></html>"
        )
        content_type = "text/html; charset=utf-8"
    else:
        body = f"{title}\n{advice}\n\n{error}\n"
        content_type = "text/plain; charset=utf-8"
    return canned_response(
        "500 Internal Server Error",
        body.encode("utf-8"),
        content_type=content_type,
        headers=[("Retry-After", "1")],
    )


def serve_error_until(
    listener: socket.socket, error: str, done: Callable[[], bool], poll: float = 0.1
) -> None:
    """Answer requests on ``listener`` with ``error`` until ``done()`` says to stop."""
    listener.setblocking(False)
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        while not done():
            if not selector.select(poll):
                continue
            try:
                conn, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                continue
            with conn:
                conn.setblocking(True)
                head = _read_head(conn)
                accept = re.search(rb"(?im)^accept:\s*([^\r\n]*)", head)
                accepts_html = bool(accept and b"text/html" in accept.group(1))
                with contextlib.suppress(OSError):
                    conn.sendall(error_response(error, accepts_html))
            time.sleep(0)


def error_file(error: BaseException) -> Path | None:
    """The project file the error points at, to watch for its fix."""
    filename = getattr(error, "filename", None)
    if isinstance(error, SyntaxError) and filename:
        return Path(filename)
    frames = traceback.extract_tb(error.__traceback__)
    # The last frame that is a real file: importlib's own frames are "<frozen ...>".
    files = [frame.filename for frame in frames if not frame.filename.startswith("<")]
    return Path(files[-1]) if files else None
