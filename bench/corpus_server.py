#!/usr/bin/env python3
"""The server bench/corpus.py replays against: cserver's pool or thread mode on a free
loopback port, serving a WSGI application that reads the whole body and answers 200.

Usage: python bench/corpus_server.py MODE

Run as a script, not a module, so that ``cserver`` comes from PYTHONPATH: the replayer
can point it at another checkout (the code before a change) without touching this one.
Prints the port once it listens; stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterable

from cserver.config import load_config
from cserver.server import Limits, create_listener, server_class
from cserver.server.context import ServerContext


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    reply = b"read %d bytes\n" % len(body)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(reply)))])
    return [reply]


def main() -> None:
    mode = sys.argv[1]
    listener = create_listener("127.0.0.1", 0, False, 128)
    port = listener.getsockname()[1]
    config = load_config({"workers": 4}, environ={}, env_file=None, django_settings=False).config
    limits = Limits.from_config(config)
    cls = server_class(mode)
    ctx = ServerContext(
        app=application,
        mode=mode,
        server_name="127.0.0.1",
        server_port=port,
        limits=limits,
        multithread=cls.multithread,
        multiprocess=cls.multiprocess,
    )
    server = cls(listener, ctx, limits)
    signal.signal(signal.SIGTERM, lambda *_: server.request_shutdown())
    print(port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
