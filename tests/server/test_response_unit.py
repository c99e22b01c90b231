"""Response framing in-process: run_app() writes into one end of a real socket pair, the
test reads the other end."""

from __future__ import annotations

import io
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator

import pytest

from cserver.config import load_config
from cserver.server.conn import ClientConnection
from cserver.server.context import ServerContext
from cserver.server.limits import Limits
from cserver.server.response import Response, run_app
from cserver.server.sendfile import FileWrapper

App = Callable[[dict, Callable], Iterable[bytes]]


def serve(app: App, method: str = "GET", version: str = "HTTP/1.1") -> tuple[bool, bytes]:
    """(keep the connection?, every byte sent) for one request to ``app``."""
    ours, peer = socket.socketpair()
    conn = ClientConnection(ours, None)
    try:
        config = load_config(environ={}, env_file=None, django_settings=False).config
        limits = Limits.from_config(config)
        ctx = ServerContext(app=app, mode="test", server_name="t", server_port=1, limits=limits)
        environ = ctx.base_environ()
        environ["wsgi.input"] = io.BytesIO()
        response = Response(conn, ctx, version, method, True, f"{method} / {version}")
        keep = run_app(ctx, environ, response)
        conn.close()
        data = b""
        while chunk := peer.recv(1 << 20):
            data += chunk
        return keep, data
    finally:
        conn.close()
        peer.close()


def split(data: bytes) -> tuple[dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}, body


def returning(status: str, headers: list, body: Iterable[bytes]) -> App:
    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        start_response(status, headers)
        return body

    return app


def generator(status: str, headers: list, parts: list[bytes]) -> App:
    def app(environ: dict, start_response: Callable) -> Iterator[bytes]:
        start_response(status, headers)
        yield from parts

    return app


def test_a_list_gets_its_content_length_and_keeps_the_connection() -> None:
    keep, data = serve(returning("200 OK", [("Content-Type", "text/plain")], [b"ab", b"c"]))
    headers, body = split(data)
    assert keep and body == b"abc" and headers["content-length"] == "3"
    assert "connection" not in headers


def test_a_stream_of_unknown_length_is_chunked_on_http11() -> None:
    keep, data = serve(generator("200 OK", [], [b"ab", b"", b"cde"]))
    headers, body = split(data)
    assert keep and headers["transfer-encoding"] == "chunked"
    assert body == b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"


def test_a_stream_of_unknown_length_ends_with_the_connection_on_http10() -> None:
    keep, data = serve(generator("200 OK", [], [b"ab", b"cde"]), version="HTTP/1.0")
    headers, body = split(data)
    assert not keep and headers["connection"] == "close" and body == b"abcde"
    assert "transfer-encoding" not in headers


@pytest.mark.parametrize("make", [returning, generator])
def test_head_sends_the_headers_of_get_and_no_body(make) -> None:
    keep, data = serve(make("200 OK", [("Content-Length", "3")], [b"abc"]), method="HEAD")
    headers, body = split(data)
    assert keep and headers["content-length"] == "3" and body == b""


def test_head_of_a_list_declares_the_length_of_get() -> None:
    keep, data = serve(returning("200 OK", [], [b"abcd"]), method="HEAD")
    headers, body = split(data)
    assert keep and headers["content-length"] == "4" and body == b""


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified", "101 Switching"])
def test_no_body_statuses(status: str) -> None:
    keep, data = serve(generator(status, [("Content-Length", "3")], [b"abc"]))
    headers, body = split(data)
    assert body == b"" and "transfer-encoding" not in headers
    assert ("content-length" in headers) == status.startswith("304")
    assert keep


def test_more_than_declared_is_cut_and_closes() -> None:
    keep, data = serve(generator("200 OK", [("Content-Length", "4")], [b"abc", b"def"]))
    assert not keep and split(data)[1] == b"abcd"


def test_less_than_declared_closes() -> None:
    keep, data = serve(generator("200 OK", [("Content-Length", "9")], [b"abc"]))
    assert not keep and split(data)[1] == b"abc"


def test_hop_by_hop_headers_are_the_servers() -> None:
    app = returning(
        "200 OK", [("Transfer-Encoding", "chunked"), ("Keep-Alive", "x"), ("TE", "y")], [b"a"]
    )
    keep, data = serve(app)
    headers, body = split(data)
    assert keep and body == b"a" and headers["content-length"] == "1"
    assert not {"transfer-encoding", "keep-alive", "te"} & headers.keys()


@pytest.mark.parametrize(
    "headers",
    [
        [("X-A", "a\r\nX-B: b")],
        [("X-A", "a\nb")],
        [("X A", "b")],
        [("Content-Length", "abc")],
        [("Content-Length", "1"), ("Content-Length", "2")],
        [("X-A", "caf\u00e9 \u2603")],  # not Latin-1: cannot go on the wire
    ],
)
def test_invalid_headers_from_the_app_are_a_500(headers: list) -> None:
    keep, data = serve(returning("200 OK", headers, [b"a"]))
    assert not keep and data.startswith(b"HTTP/1.1 500 ")
    assert b"X-B" not in data


def test_a_file_wrapper_is_sent_whole_with_sendfile() -> None:
    payload = bytes(range(256)) * 100  # fits the socket pair's buffer: read after
    with tempfile.TemporaryFile() as handle:
        handle.write(payload)
        handle.seek(10)
        app = returning("200 OK", [("Content-Length", str(len(payload) - 10))], [])

        def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
            app(environ, start_response)
            return FileWrapper(handle, 4096)

        keep, data = serve(wrapped)
    assert keep and split(data)[1] == payload[10:]


def test_a_file_wrapper_without_a_length_is_iterated() -> None:
    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        start_response("200 OK", [])
        return FileWrapper(io.BytesIO(b"x" * 10_000), 4096)

    keep, data = serve(app)
    headers, body = split(data)
    assert keep and headers["transfer-encoding"] == "chunked"
    assert body == b"2710\r\n" + b"x" * 10_000 + b"\r\n0\r\n\r\n"
