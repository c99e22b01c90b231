"""A corpus of malformed and hostile requests: each gets a 4xx (or a closed connection), and the
server serves the next request as if nothing happened."""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass

import pytest

from testkit.serverproc import wait_until
from tests.hostile.conftest import HEADER_TIMEOUT, MAX_BODY, assert_still_serving
from tests.hostile.wire import exchange, first_status, read_until_closed, statuses

ALL_MODES = ("pool", "thread", "fork")
EVERY_MODE = (*ALL_MODES, "asgi")
POOL = ("pool",)

# A real TLS 1.2/1.3 ClientHello prefix: record type 0x16, version 3.1, then a handshake.
TLS_HELLO = bytes.fromhex("16030100f4010000f00303") + bytes(range(32)) + b"\x00" * 64


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: frozenset[int]  # acceptable first final status; empty = connection closed, no reply
    modes: tuple[str, ...] = POOL
    half_close: bool = False
    # asgi mode's answer where it differs: its bodies and targets are parsed by h11.
    asgi: frozenset[int] | None = None

    def expected(self, mode: str) -> frozenset[int]:
        return self.asgi if mode == "asgi" and self.asgi is not None else self.expect


def case(name: str, data: bytes, *codes: int, modes=POOL, half_close=False, asgi=None) -> Case:
    return Case(
        name, data, frozenset(codes), modes, half_close, None if asgi is None else frozenset(asgi)
    )


def head(lines: list[bytes], body: bytes = b"") -> bytes:
    return b"\r\n".join([*lines, b"", b""]) + body


GET = b"GET /hello HTTP/1.1"
CHUNKED_POST = b"POST /echo HTTP/1.1"
HOST = b"Host: t"

CORPUS = [
    case("garbage bytes", b"\x00\xff\xfe\x01\x02garbage\r\n\r\n", 400, modes=ALL_MODES),
    case("binary without a newline", bytes(range(128, 256)), 400),
    case("tls handshake", TLS_HELLO, 400, modes=ALL_MODES),
    case("http/0.9", b"GET /hello\r\n", 400, modes=ALL_MODES),
    case("invalid method", head([b"G@T /hello HTTP/1.1", HOST]), 400),
    case("method too long", head([b"A" * 200 + b" /hello HTTP/1.1", HOST]), 400),
    case("lowercase http version", head([b"GET /hello http/1.1", HOST]), 400),
    case("http/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    case("http/1.2", head([b"GET /hello HTTP/1.2", HOST]), 505),
    case("four-part request line", head([b"GET /a b HTTP/1.1", HOST]), 400),
    case("relative target", head([b"GET hello HTTP/1.1", HOST]), 400),
    case("control character in target", head([b"GET /\x01x HTTP/1.1", HOST]), 400),
    case("request line over the limit", head([b"GET /" + b"a" * 20_000 + b" HTTP/1.1"]), 414),
    case(
        "header line over the limit", head([GET, b"X-Long: " + b"a" * 20_000]), 431, modes=ALL_MODES
    ),
    case("too many headers", head([GET, *[b"X-H%d: v" % n for n in range(150)]]), 431),
    case(
        "head over the limit", head([GET, *[b"X-H%d: " % n + b"v" * 900 for n in range(80)]]), 431
    ),
    case("header without colon", head([GET, b"NoColonHere"]), 400),
    case("header name with space", head([GET, b"Bad Name: x"]), 400),
    case("obsolete line folding", head([GET, b"X-A: one", b" two"]), 400),
    case("NUL in header value", head([GET, b"X-A: a\x00b"]), 400),
    case("stray CR in header", head([GET, b"X-A: a\rb"]), 400),
    case(
        "content-length not a number",
        head([b"POST /echo HTTP/1.1", HOST, b"Content-Length: abc"]),
        400,
        modes=ALL_MODES,
    ),
    case(
        "content-length negative", head([b"POST /echo HTTP/1.1", HOST, b"Content-Length: -1"]), 400
    ),
    case(
        "content-length latin-1 digit",
        head([b"POST /echo HTTP/1.1", HOST, b"Content-Length: \xb2"]),
        400,
    ),
    case(
        "content-length 20 digits",
        head([b"POST /echo HTTP/1.1", HOST, b"Content-Length: " + b"9" * 20]),
        400,
    ),
    case(
        "conflicting content-lengths",
        head([b"POST /echo HTTP/1.1", HOST, b"Content-Length: 3", b"Content-Length: 4"], b"abcd"),
        400,
    ),
    case(
        "content-length and transfer-encoding",
        head(
            [b"POST /echo HTTP/1.1", HOST, b"Content-Length: 3", b"Transfer-Encoding: chunked"],
            b"3\r\nabc\r\n0\r\n\r\n",
        ),
        400,
        modes=ALL_MODES,
    ),
    case(
        # Chunked not last: the length cannot be known, 400 (RFC 9112 section 6.3).
        "transfer-encoding without chunked",
        head([b"POST /echo HTTP/1.1", HOST, b"Transfer-Encoding: gzip"]),
        400,
    ),
    case(
        # A coding the server does not decode: 501 (RFC 9112 section 6.1).
        "unknown transfer-encoding",
        head([b"POST /echo HTTP/1.1", HOST, b"Transfer-Encoding: gzip, chunked"]),
        501,
    ),
    case(
        "chunk size not hex",
        head(
            [b"POST /echo HTTP/1.1", HOST, b"Transfer-Encoding: chunked"], b"zz\r\nabc\r\n0\r\n\r\n"
        ),
        400,
        modes=ALL_MODES,
    ),
    case(
        "chunk without its CRLF",
        head(
            [b"POST /echo HTTP/1.1", HOST, b"Transfer-Encoding: chunked"],
            b"3\r\nabcdef\r\n0\r\n\r\n",
        ),
        400,
    ),
    case(
        "chunk size line too long",
        head([b"POST /echo HTTP/1.1", HOST, b"Transfer-Encoding: chunked"], b"1" * 9000 + b"\r\n"),
        400,
    ),
    case(
        "chunked body over the limit",
        head(
            [b"POST /echo HTTP/1.1", HOST, b"Transfer-Encoding: chunked"],
            b"%x\r\n" % (MAX_BODY + 1) + b"x" * (MAX_BODY + 1) + b"\r\n0\r\n\r\n",
        ),
        413,
    ),
    case(
        "body over the limit",
        head(
            [b"POST /echo HTTP/1.1", HOST, b"Content-Length: %d" % (MAX_BODY * 20)],
            b"x" * (MAX_BODY * 20),
        ),
        413,
        modes=ALL_MODES,
    ),
    case(
        "declared body over the limit, not sent",
        head([b"POST /echo HTTP/1.1", HOST, b"Content-Length: 999999999"]),
        413,
    ),
    case(
        "unsupported expectation",
        head([b"POST /echo HTTP/1.1", HOST, b"Content-Length: 3", b"Expect: magic"], b"abc"),
        417,
    ),
    case(
        "chunk size with a space after it",
        head([CHUNKED_POST, HOST, b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0 \r\n\r\n"),
        400,
        modes=ALL_MODES,
        # Chunk framing is h11's in asgi mode, and h11 allows whitespace after the size
        # (the "BWS" before an extension); no reading differs on where the body ends.
        asgi=(200,),
    ),
    case(
        "chunk size with a space before it",
        head([CHUNKED_POST, HOST, b"Transfer-Encoding: chunked"], b" 5\r\nhello\r\n0\r\n\r\n"),
        400,
        modes=ALL_MODES,
    ),
    case(
        "bare CR in a chunk extension",
        head([CHUNKED_POST, HOST, b"Transfer-Encoding: chunked"], b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
        400,
        modes=ALL_MODES,
        # h11 skips a chunk extension up to its CRLF without looking inside.
        asgi=(200,),
    ),
    case(
        "transfer-encoding in an HTTP/1.0 request",
        head([b"POST /echo HTTP/1.0", HOST, b"Transfer-Encoding: chunked"], b"0\r\n\r\n"),
        400,
        modes=ALL_MODES,
    ),
    case("two host headers", head([GET, HOST, b"Host: u"]), 400, modes=ALL_MODES),
    case("http/1.1 without host", head([GET]), 400, modes=ALL_MODES),
    case(
        "bad header block with a body announced",
        head([b"POST /echo HTTP/1.1", HOST, b"Content-Length: 5", b"Bad Name: x"]),
        400,
        modes=ALL_MODES,
    ),
    case(
        "non-ASCII path",
        head([b"GET /caf\xc3\xa9 HTTP/1.1", HOST, b"Connection: close"]),
        404,
        modes=ALL_MODES,
        # h11 holds to RFC 9112's grammar, where a request target is ASCII; the WSGI modes
        # take it as runserver does (decoded as latin-1, then not found).
        asgi=(400,),
    ),
    case(
        "percent-encoded non-UTF-8 path",
        head([b"GET /%FF%FE/%C3%28 HTTP/1.1", HOST, b"Connection: close"]),
        404,
    ),
    case(
        "percent-encoded NUL and slash",
        head([b"GET /a%00b%2Fc HTTP/1.1", HOST, b"Connection: close"]),
        404,
    ),
    case(
        "client closes mid-head",
        b"GET /hello HTTP/1.1\r\nHost: t\r\n",
        # Half-closed with the request incomplete: the client can still read a 400
        # (RFC 9112 section 8); uvicorn closes without a word.
        400,
        half_close=True,
        asgi=(),
        modes=ALL_MODES,
    ),
    case(
        "client closes mid-body",
        head(
            [b"POST /echo HTTP/1.1", HOST, b"Content-Length: 100", b"Connection: close"],
            b"only part",
        ),
        400,
        half_close=True,
        asgi=(),
        modes=ALL_MODES,
    ),
    case(
        "client closes mid-chunk",
        head([b"POST /echo HTTP/1.1", HOST, b"Transfer-Encoding: chunked"], b"10\r\nabc"),
        400,
        half_close=True,
        asgi=(),
    ),
]


def _params() -> list:
    # asgi mode parses with uvicorn's h11, not cserver's parser: every case runs against it.
    return [
        pytest.param(mode, c, id=f"{mode}-{c.name}") for c in CORPUS for mode in (*c.modes, "asgi")
    ]


@pytest.mark.parametrize(("mode", "item"), _params())
def test_malformed_request_is_refused_and_the_server_goes_on(
    server_for, mode: str, item: Case
) -> None:
    server = server_for(mode)
    started = time.monotonic()
    response = exchange(server.port, item.data, timeout=10, half_close=item.half_close)
    elapsed = time.monotonic() - started
    expect = item.expected(mode)
    if expect:
        assert first_status(response) in expect, response[:300]
        # The error is written and the connection closed: never a 5xx of our own making.
        # (Only asgi mode accepts some cases, answering them as any other request.)
        assert first_status(response) < 400 or b"connection: close" in response.lower()
    else:
        assert response == b""
    # Refused at once: nothing in the corpus should wait for a timeout.
    assert elapsed < HEADER_TIMEOUT + 3
    assert_still_serving(server)


@pytest.mark.parametrize("mode", EVERY_MODE)
def test_tls_on_the_http_port_is_logged_with_a_hint(server_for, mode: str) -> None:
    server = server_for(mode)
    exchange(server.port, TLS_HELLO, timeout=5)
    assert_still_serving(server)
    assert wait_until(lambda: "use http://" in server.output().lower(), 5)


@pytest.mark.parametrize("mode", EVERY_MODE)
def test_expect_100_continue(server_for, mode: str) -> None:
    server = server_for(mode)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            head(
                [
                    b"POST /echo HTTP/1.1",
                    HOST,
                    b"Content-Length: 5",
                    b"Expect: 100-continue",
                    b"Connection: close",
                ]
            )
        )
        interim = sock.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        response = read_until_closed(sock, 5)
    assert first_status(response) == 200
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["body"] == "hello"
    assert_still_serving(server)


def test_expect_100_continue_over_the_limit_is_refused_before_the_body(server_for) -> None:
    server = server_for("pool")
    data = head(
        [
            b"POST /echo HTTP/1.1",
            HOST,
            b"Content-Length: %d" % (MAX_BODY + 1),
            b"Expect: 100-continue",
        ]
    )
    response = exchange(server.port, data, timeout=5)
    assert statuses(response) == [413]
    assert_still_serving(server)


@pytest.mark.parametrize("mode", EVERY_MODE)
def test_body_at_the_limit_is_accepted(server_for, mode: str) -> None:
    server = server_for(mode)
    body = b"y" * MAX_BODY
    data = head(
        [b"POST /echo HTTP/1.1", HOST, b"Content-Length: %d" % len(body), b"Connection: close"],
        body,
    )
    response = exchange(server.port, data, timeout=10)
    assert first_status(response) == 200
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["body"] == body.decode()


def test_chunked_body_reaches_the_application(server_for) -> None:
    server = server_for("pool")
    body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: x\r\n\r\n"
    data = head(
        [b"POST /echo HTTP/1.1", HOST, b"Transfer-Encoding: chunked", b"Connection: close"], body
    )
    response = exchange(server.port, data, timeout=5)
    assert first_status(response) == 200
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["body"] == "hello world"


def test_percent_decoding_reaches_the_application(server_for) -> None:
    server = server_for("pool")
    response = exchange(
        server.port, head([b"GET /ech%6F?q=%FF HTTP/1.1", HOST, b"Connection: close"])
    )
    assert first_status(response) == 200
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["path"] == "/echo"


def test_bare_lf_and_pipelined_requests(server_for) -> None:
    server = server_for("pool")
    data = (
        b"GET /hello HTTP/1.1\nHost: t\n\n"
        + head([GET, HOST])
        + head([GET, HOST, b"Connection: close"])
    )
    assert statuses(exchange(server.port, data, timeout=5)) == [200, 200, 200]


@pytest.mark.parametrize("mode", EVERY_MODE)
def test_slow_head_gets_408_after_the_header_timeout(server_for, mode: str) -> None:
    server = server_for(mode)
    started = time.monotonic()
    response = exchange(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\n", timeout=10)
    elapsed = time.monotonic() - started
    assert first_status(response) == 408
    assert HEADER_TIMEOUT * 0.8 <= elapsed < HEADER_TIMEOUT + 2.5
    assert_still_serving(server)


@pytest.mark.parametrize("mode", EVERY_MODE)
def test_client_resets_mid_response(server_for, mode: str) -> None:
    server = server_for(mode)
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(head([b"GET /inflight?ms=100 HTTP/1.1", HOST]))
        # SO_LINGER 0: close() sends a reset, so the server's write fails mid-response.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(0.3)
    assert_still_serving(server)
    assert "internal error" not in server.output()


@pytest.mark.parametrize("mode", EVERY_MODE)
def test_no_internal_errors_after_the_corpus(server_for, mode: str) -> None:
    # Runs last in this module: whatever came before, the server's own catch-all never fired.
    server = server_for(mode)
    assert_still_serving(server)
    assert "cserver: internal error" not in server.output()
    assert "survived an unexpected error" not in server.output()
