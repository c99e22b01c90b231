"""Response framing on the wire, in every mode: what the server sends is exactly one
well-framed response per request, read back with h11 as a strict client."""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass, field

import h11
import pytest

from tests.hostile.wire import exchange, read_until_closed

MODES = ("thread", "pool", "fork", "asgi")


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes = b""
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def parse_replies(raw: bytes, methods: list[str]) -> tuple[list[Reply], str]:
    """The responses in ``raw`` to requests with ``methods``, and h11's complaint if any
    byte of it is not a well-framed response ("" when it all is)."""
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(raw)
    conn.receive_data(b"")
    replies: list[Reply] = []
    for method in methods:
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "t")]))
        conn.send(h11.EndOfMessage())
        reply = None
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if reply is None and conn.trailing_data == (b"", True):
                    return replies, ""  # closed cleanly between responses
                return replies, str(exc)
            if isinstance(event, h11.Response):
                reply = Reply(event.status_code, dict(event.headers), raw_headers=event.headers)
            elif isinstance(event, h11.Data):
                assert reply is not None
                reply.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert reply is not None
                replies.append(reply)
                break
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return replies, ""
        if conn.their_state is not h11.DONE:
            return replies, ""
        conn.start_next_cycle()
    return replies, ""


def request(method: str, path: str, *extra: bytes) -> bytes:
    return b"\r\n".join([f"{method} {path} HTTP/1.1".encode(), b"Host: t", *extra, b"", b""])


@pytest.fixture(params=MODES)
def server(request, wire_server):
    return wire_server(request.param)


def test_longer_than_content_length_is_cut_and_closed(server) -> None:
    for path in ("/longer", "/longer-list"):
        raw = exchange(server.port, request("GET", path) + request("GET", "/hello"), timeout=5)
        replies, error = parse_replies(raw, ["GET", "GET"])
        assert error == "", raw
        # The extra bytes never reach the wire; the connection closes after the response.
        assert [(r.status, r.body) for r in replies] == [(200, b"hello")], raw
        assert b"world" not in raw
    assert "longer than its Content-Length" in server.output()


def test_shorter_than_content_length_closes_at_once(server) -> None:
    started = time.monotonic()
    raw = exchange(server.port, request("GET", "/shorter") + request("GET", "/hello"), timeout=4)
    # Closed right away: the pipelined second response never becomes the first's body.
    assert time.monotonic() - started < 2.5
    assert raw.count(b"HTTP/1.1 ") == 1, raw
    assert raw.endswith(b"only ten..")


@pytest.mark.parametrize("path", ["/late-204", "/late-304", "/write-204"])
def test_no_body_statuses_send_no_body(server, path: str) -> None:
    raw = exchange(
        server.port, request("GET", path) + request("GET", "/hello", b"Connection: close")
    )
    replies, error = parse_replies(raw, ["GET", "GET"])
    assert error == "", raw
    assert [r.status for r in replies] == [int(path[-3:]), 200], raw
    assert replies[0].body == b""
    assert b"Transfer-Encoding" not in raw
    assert b"must not be sent" not in raw


def test_head_with_write_sends_no_body(server) -> None:
    raw = exchange(
        server.port, request("HEAD", "/write") + request("GET", "/hello", b"Connection: close")
    )
    replies, error = parse_replies(raw, ["HEAD", "GET"])
    assert error == "", raw
    assert [(r.status, r.body) for r in replies] == [(200, b""), (200, b"hello")]
    assert b"written" not in raw


def test_hop_by_hop_headers_from_the_app_are_dropped(server) -> None:
    raw = exchange(
        server.port, request("GET", "/hop-by-hop") + request("GET", "/hello", b"Connection: close")
    )
    replies, error = parse_replies(raw, ["GET", "GET"])
    assert error == "", raw
    assert [(r.status, r.body) for r in replies] == [(200, b"ok"), (200, b"hello")]
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    assert b"transfer-encoding" not in head
    assert b"keep-alive" not in head
    assert b"upgrade" not in head


def test_connection_close_from_the_app_is_honoured(server) -> None:
    raw = exchange(server.port, request("GET", "/app-closes") + request("GET", "/hello"))
    replies, error = parse_replies(raw, ["GET", "GET"])
    assert error == ""
    assert [(r.status, r.body) for r in replies] == [(200, b"ok")]
    assert replies[0].headers[b"connection"] == b"close"


def test_header_injection_from_the_app_is_a_500(server) -> None:
    raw = exchange(server.port, request("GET", "/header-injection"))
    replies, error = parse_replies(raw, ["GET"])
    assert error == ""
    assert [r.status for r in replies] == [500]
    assert b"evil" not in raw


def test_unread_body_still_gets_its_response(server) -> None:
    # Like any HTTP client: send the whole body (3 MB), then read the answer, which the
    # application gave without reading the body.
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(3):
            client.request("POST", "/forbidden-upload", body=b"x" * 3_000_000)
            response = client.getresponse()
            assert (response.status, response.read()) == (403, b"no uploads here")
            client.close()
    finally:
        client.close()


def test_unread_body_keeps_the_connection_when_it_is_small(server) -> None:
    data = request("POST", "/forbidden-upload", b"Content-Length: 10") + b"0123456789"
    raw = exchange(server.port, data + request("GET", "/hello", b"Connection: close"))
    replies, error = parse_replies(raw, ["POST", "GET"])
    assert error == ""
    assert [r.status for r in replies] == [403, 200]


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_small_body_gets_the_body_timeout_not_the_header_timeout(
    wire_server, mode: str
) -> None:
    server = wire_server(mode, "--header-timeout", "1")
    body = b"0123456789" * 2
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request("POST", "/read-body", b"Content-Length: 20", b"Connection: close"))
        for start in range(0, len(body), 2):  # 20 bytes over 2 s: slower than the head's 1 s
            time.sleep(0.2)
            sock.sendall(body[start : start + 2])
        raw = read_until_closed(sock, 5)
    replies, error = parse_replies(raw, ["POST"])
    assert error == ""
    assert [(r.status, r.body) for r in replies] == [(200, body)], raw


@pytest.mark.parametrize("mode", MODES)
def test_head_of_an_endless_stream_frees_the_worker(wire_server, mode: str) -> None:
    server = wire_server(mode, "--workers", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request("HEAD", "/endless") + request("GET", "/hello", b"Connection: close"))
        raw = read_until_closed(sock, 5)
    replies, error = parse_replies(raw, ["HEAD", "GET"])
    assert error == ""
    assert [(r.status, r.body) for r in replies] == [(200, b""), (200, b"hello")], raw


def test_fragment_is_not_part_of_the_query(server) -> None:
    # RFC 9112's request-target has no "#"; one fragment is accepted and dropped, as
    # gunicorn, h11 and llhttp do (cserver/server/target.py says why), a second "#" is not.
    raw = exchange(server.port, request("GET", "/environ?a=1#frag", b"Connection: close"))
    replies, _ = parse_replies(raw, ["GET"])
    assert replies[0].status == 200
    assert b"QUERY_STRING=a=1\n" in replies[0].body
    assert b"frag" not in replies[0].body


def test_file_wrapper_sends_exactly_the_declared_length(server) -> None:
    raw = exchange(
        server.port,
        request("GET", "/file", b"Connection: close").replace(b"/file", b"/file?3000000"),
        timeout=10,
    )
    replies, error = parse_replies(raw, ["GET"])
    assert error == ""
    assert len(replies[0].body) == 3_000_000
    assert replies[0].body[:512] == bytes(range(256)) * 2


def test_file_wrapper_shorter_file_closes(server) -> None:
    started = time.monotonic()
    raw = exchange(
        server.port, request("GET", "/file?5000000") + request("GET", "/hello"), timeout=4
    )
    assert time.monotonic() - started < 2.5
    assert raw.count(b"HTTP/1.1 ") == 1
    assert "shorter than its Content-Length" in server.output()


def test_fork_idle_keep_alive_connection_holds_no_child(wire_server) -> None:
    server = wire_server("fork", "--workers", "1", "--keepalive-timeout", "5")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle:
        idle.sendall(request("GET", "/hello"))
        first = b""
        while not first.endswith(b"hello"):
            first += idle.recv(4096)
        # The only child is free again well before the idle client's keep-alive ends.
        started = time.monotonic()
        raw = exchange(server.port, request("GET", "/hello", b"Connection: close"), timeout=4)
        assert parse_replies(raw, ["GET"])[0][0].status == 200, raw
        assert time.monotonic() - started < 2.5
        # And the idle connection is still good.
        idle.sendall(request("GET", "/hello", b"Connection: close"))
        replies, error = parse_replies(read_until_closed(idle, 5), ["GET"])
    assert error == "" and [(r.status, r.body) for r in replies] == [(200, b"hello")]
