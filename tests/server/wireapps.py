"""Raw WSGI applications that misbehave on purpose, served by a real server in a subprocess.

``python -m tests.server.wireapps MODE [--workers N] [--header-timeout S] [--linger-* N]`` serves
``application`` in that mode on a free loopback port and prints the port; the tests in
tests/server/test_framing.py talk to it over real sockets. Django would tidy up most of
what these apps do, so they speak WSGI directly.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cserver.config import load_config
from cserver.server import Limits, create_listener, make_server, server_class
from cserver.server.asgi import ASGIServer
from cserver.server.context import ServerContext
from cserver.server.thread import ThreadServer
from tests.server.wireapps_asgi import BIG_FILE
from tests.server.wireapps_asgi import application as asgi_application

App = Callable[[dict, Callable], Iterable[bytes]]
ROUTES: dict[str, App] = {}


def route(path: str) -> Callable[[App], App]:
    def register(app: App) -> App:
        ROUTES[path] = app
        return app

    return register


@route("/hello")
def hello(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


@route("/longer")
def longer(environ: dict, start_response: Callable) -> Iterable[bytes]:
    # Declares 5 bytes, produces 11: a file that grew while it was sent.
    start_response("200 OK", [("Content-Length", "5")])
    return iter([b"hello", b" world"])


@route("/longer-list")
def longer_list(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Length", "5")])
    return [b"hello world"]


@route("/shorter")
def shorter(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Length", "50")])
    return iter([b"only ten.."])


@route("/late-204")
def late_204(environ: dict, start_response: Callable) -> Iterator[bytes]:
    # A generator: start_response runs on the first iteration.
    start_response("204 No Content", [])
    yield b""


@route("/late-304")
def late_304(environ: dict, start_response: Callable) -> Iterator[bytes]:
    start_response("304 Not Modified", [("ETag", '"x"')])
    yield b""


@route("/write-204")
def write_204(environ: dict, start_response: Callable) -> Iterable[bytes]:
    write = start_response("204 No Content", [])
    write(b"must not be sent")
    return []


@route("/write")
def write_body(environ: dict, start_response: Callable) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written")
    return [b" and returned"]


@route("/hop-by-hop")
def hop_by_hop(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response(
        "200 OK",
        [
            ("Content-Length", "2"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive, Upgrade"),
            ("Keep-Alive", "timeout=99"),
        ],
    )
    return [b"ok"]


@route("/app-closes")
def app_closes(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Length", "2"), ("Connection", "close")])
    return [b"ok"]


@route("/header-injection")
def header_injection(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", [("X-A", "a\r\nSet-Cookie: evil=1"), ("Content-Length", "2")])
    return [b"ok"]


@route("/forbidden-upload")
def forbidden_upload(environ: dict, start_response: Callable) -> Iterable[bytes]:
    # Answers without reading the body, as a permission check would.
    body = b"no uploads here"
    start_response("403 Forbidden", [("Content-Length", str(len(body)))])
    return [body]


@route("/read-body")
def read_body(environ: dict, start_response: Callable) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@route("/endless")
def endless(environ: dict, start_response: Callable) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    while True:
        yield b"tick\n"
        time.sleep(0.001)


@route("/environ")
def show_environ(environ: dict, start_response: Callable) -> Iterable[bytes]:
    keys = ("PATH_INFO", "QUERY_STRING", "HTTP_HOST", "CONTENT_LENGTH")
    body = "\n".join(f"{key}={environ.get(key, '')}" for key in keys).encode("latin-1")
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


_BIG_FILE: list[str] = []


@route("/file")
def file_response(environ: dict, start_response: Callable) -> Iterable[bytes]:
    # ?SIZE bytes from a regular file through wsgi.file_wrapper, as Django's FileResponse.
    size = int(environ.get("QUERY_STRING") or 1_000_000)
    handle = open(_BIG_FILE[0], "rb")  # noqa: SIM115 - the server closes it
    start_response("200 OK", [("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](handle, 8192)


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    app = ROUTES.get(environ["PATH_INFO"])
    if app is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    return app(environ, start_response)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    parser.add_argument("--keepalive-timeout", type=float, default=5.0)
    # Any other setting, as NAME=VALUE, validated like a command-line flag.
    parser.add_argument("--setting", action="append", default=[])
    parser.add_argument("--linger-timeout", type=float, default=30.0)
    parser.add_argument("--linger-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--linger-idle", type=float, default=2.0)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    asgi = args.mode == "asgi"
    # asgi mode serves the same routes as an ASGI application (wireapps_asgi.py).
    cls = ThreadServer if asgi else server_class(args.mode)
    listener = create_listener("127.0.0.1", 0, False, 128)
    port = listener.getsockname()[1]
    flags = {
        "workers": args.workers,
        "header_timeout": args.header_timeout,
        "keepalive_timeout": args.keepalive_timeout,
        "linger_timeout": args.linger_timeout,
        "linger_bytes": args.linger_bytes,
        "linger_idle": args.linger_idle,
        "max_body_bytes": 4 * 1024 * 1024,
    }
    flags.update(item.split("=", 1) for item in args.setting)
    if args.processes > 1:
        # A group of worker processes (make_server builds it), each serving the WSGI routes.
        flags |= {"mode": args.mode, "processes": args.processes, "reload": False}
    config = load_config(flags, environ={}, env_file=None, django_settings=False).config
    limits = Limits.from_config(config)
    ctx = ServerContext(
        app=asgi_application if asgi else application,
        mode=args.mode,
        server_name="127.0.0.1",
        server_port=port,
        limits=limits,
        multithread=cls.multithread,
        multiprocess=cls.multiprocess,
    )
    fd, path = tempfile.mkstemp(prefix="cserver-wire-")
    with os.fdopen(fd, "wb") as out:
        out.write(bytes(range(256)) * (4_000_000 // 256))  # what /file serves
    _BIG_FILE.append(path)
    BIG_FILE.append(path)
    server: Any
    if args.processes > 1:
        server = make_server(config, ctx.app, listener=listener)
    elif asgi:
        server = ASGIServer(listener, ctx, limits)
    else:
        server = cls(listener, ctx, limits)
    signal.signal(signal.SIGTERM, lambda *_: server.request_shutdown())
    # The line runserver prints, which the test kit waits for.
    print(f"Starting development server at http://127.0.0.1:{port}/", flush=True)
    try:
        server.serve_forever()
    finally:
        for path in _BIG_FILE:
            os.unlink(path)
    sys.exit(0)


if __name__ == "__main__":
    main()
