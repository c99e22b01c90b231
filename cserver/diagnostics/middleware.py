"""The WSGI wrapper: diagnostics headers on every response, the status page under /__cserver__/."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from cserver.diagnostics import page
from cserver.diagnostics.registry import Registry, RequestState
from cserver.server.netcheck import is_loopback_address

PREFIX = "/__cserver__"
STATS_PATH = PREFIX + "/stats"

StartResponse = Callable[..., Any]


def db_header(db: list[tuple[str, str, str]]) -> str:
    """``default pid=4242 conn=reused, other pid=- conn=new``, or ``-`` without database use."""
    return ", ".join(f"{alias} pid={pid} conn={state}" for alias, pid, state in db) or "-"


class _Body:
    """The application's response iterable, with our bookkeeping run when it is closed."""

    __slots__ = ("_done", "_result", "streaming")

    def __init__(self, result: Iterable[bytes], done: Callable[[], None]) -> None:
        self._result = result
        self._done = done
        # Lets the server keep its fast path for complete responses (Content-Length, one send).
        if isinstance(result, list | tuple):
            self.streaming: bool | None = False
        else:
            self.streaming = getattr(result, "streaming", None)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()  # Django's request_finished runs here and may close connections
        finally:
            self._done()


class DiagnosticsApp:
    """Wraps the project's WSGI application; costs a few dictionary and lock operations."""

    def __init__(
        self,
        app: Callable,
        registry: Registry,
        settings: dict[str, Any],
        allow_remote: bool = False,
    ) -> None:
        self.app = app
        self.registry = registry
        self.settings = settings
        # The status page shows the project's internals: loopback only unless asked.
        self.allow_remote = allow_remote

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX) and (len(path) == len(PREFIX) or path[len(PREFIX)] == "/"):
            return self.status(environ, start_response)
        registry = self.registry
        req = registry.request_started(environ)

        def diag_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            req.status = int(status[:3]) if status[:3].isdigit() else 500
            headers = [*headers, *self.headers(req)]
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, diag_start_response)
        except BaseException:
            registry.request_finished(req)
            raise
        return _Body(result, lambda: registry.request_finished(req))

    def headers(self, req: RequestState) -> list[tuple[str, str]]:
        return [
            ("X-Cserver-Worker", f"{req.mode}/{req.worker}"),
            ("X-Cserver-Pid", str(os.getpid())),
            ("X-Cserver-Thread", req.thread or threading.current_thread().name),
            ("X-Cserver-Db", db_header(self.registry.response_db(req))),
        ]

    # -- the status page ------------------------------------------------------------------

    def status(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        remote = environ.get("REMOTE_ADDR", "")
        if not self.allow_remote and not is_loopback_address(remote):
            return _text(
                start_response,
                "403 Forbidden",
                f"cserver diagnostics are only served to loopback clients "
                f"(127.0.0.0/8, ::1), not {remote or 'an unknown address'}; "
                "CSERVER_DIAGNOSTICS_ALLOW_REMOTE=1 allows others.\n",
            )
        method = environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD"):
            return _text(
                start_response,
                "405 Method Not Allowed",
                f"{method} is not allowed here: the status page accepts GET and HEAD.\n",
                [("Allow", "GET, HEAD")],
            )
        path = environ.get("PATH_INFO", "")
        if path in (PREFIX, PREFIX + "/"):
            query = parse_qs(environ.get("QUERY_STRING", ""))
            refresh = _refresh(query.get("refresh", [""])[0])
            body = page.render_html(self.stats(environ), refresh).encode("utf-8")
            ctype = "text/html; charset=utf-8"
        elif path in (STATS_PATH, STATS_PATH + "/"):
            body = json.dumps(self.stats(environ), indent=1).encode("utf-8")
            ctype = "application/json"
        else:
            return _text(
                start_response,
                "404 Not Found",
                f"No diagnostics at {path}: try {PREFIX}/ or {STATS_PATH}.\n",
            )
        start_response(
            "200 OK",
            [
                ("Content-Type", ctype),
                ("Content-Length", str(len(body))),
                *_PAGE_HEADERS,
            ],
        )
        return [body]  # the server drops it for HEAD, keeping Content-Length

    def stats(self, environ: dict[str, Any]) -> dict[str, Any]:
        """The JSON document served at /__cserver__/stats."""
        return page.build_stats(self.registry, self.settings, environ)


# No scripts on the page, and nothing cached: every view is a fresh reading.
_PAGE_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
]


def _refresh(value: str) -> int:
    return int(value) if value.isdigit() and 1 <= int(value) <= 3600 else 0


def _text(
    start_response: StartResponse, status: str, text: str, extra: list | None = None
) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *_PAGE_HEADERS,
            *(extra or []),
        ],
    )
    return [body]
