"""Pool shutdown past the grace period: a request a worker already took is still served."""

from __future__ import annotations

import http.client
import threading
import time

from cserver.config import ServerConfig
from cserver.server import make_server
from cserver.server.pool import PoolServer


def test_request_taken_from_the_backlog_at_the_deadline_is_not_dropped() -> None:
    release_first = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/first":
            release_first.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    config = ServerConfig(mode="pool", workers=1, grace_period=0.3, port=0)
    server = make_server(config, app)
    assert isinstance(server, PoolServer)
    port = server.server_address[1]
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()

    # The one worker, between taking the next request from the backlog and serving it, is
    # held there until the drain has finished: the widest form of that window.
    taken = threading.Event()
    original_next = server._next

    def next_then_pause(inbox):
        conn = original_next(inbox)
        if conn is not None and release_first.is_set() and not taken.is_set():
            taken.set()
            serving.join(10)
        return conn

    server._next = next_then_pause  # type: ignore[method-assign]
    results: dict[str, object] = {}

    def fetch(path: str) -> None:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            client.request("GET", path)
            response = client.getresponse()
            results[path] = (response.status, response.read())
        except (OSError, http.client.HTTPException) as exc:
            results[path] = exc
        finally:
            client.close()

    first = threading.Thread(target=fetch, args=("/first",))
    first.start()
    time.sleep(0.2)  # the worker is busy with /first
    second = threading.Thread(target=fetch, args=("/second",))
    second.start()
    time.sleep(0.2)  # /second waits, complete, in the backlog
    server.request_shutdown()
    time.sleep(0.05)
    release_first.set()  # the worker finishes /first and takes /second
    assert taken.wait(5)
    serving.join(10)
    first.join(10)
    second.join(10)
    assert results["/first"] == (200, b"ok")
    assert results["/second"] == (200, b"ok"), results["/second"]
