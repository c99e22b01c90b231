"""RFC 9112 rules on a real socket, in every mode: the cases of gunicorn's request corpus
(bench/corpus/) that cserver once got wrong, and the head limits set through a setting.

Each exchange half-closes the client's side after sending, as the corpus replayer does,
and reads until the server closes, within a timeout.
"""

from __future__ import annotations

import re

import pytest

from tests.hostile.wire import exchange

MODES = ("thread", "pool", "fork")
# Where the asgi mode's head gate applies the same rules before h11 sees a head.
HEAD_MODES = (*MODES, "asgi")

_STATUS_RE = re.compile(rb"HTTP/1\.1 ([0-9]{3}) ")


def statuses(raw: bytes) -> list[int]:
    """The status of every response in ``raw`` (a body here never holds a status line)."""
    return [int(code) for code in _STATUS_RE.findall(raw)]


def send(port: int, data: bytes) -> bytes:
    return exchange(port, data, timeout=5, half_close=True)


def get(path: str = "/hello", *fields: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    head = [b"GET " + path.encode() + b" " + version, *fields]
    if version == b"HTTP/1.1":
        head.insert(1, b"Host: t")
    return b"\r\n".join([*head, b"", b""])


def chunked_post(trailer: bytes) -> bytes:
    head = b"POST /read-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n\r\n"


@pytest.fixture(params=MODES)
def server(request, wire_server):
    return wire_server(request.param)


@pytest.fixture(params=HEAD_MODES)
def any_server(request, wire_server):
    return wire_server(request.param)


# Corpus 006 (a 4 KiB target), 007 and 008, limit_header_default_01 (one field over
# 8190 bytes): over gunicorn's defaults, answered with the status and the setting.
@pytest.mark.parametrize(
    ("data", "status", "setting"),
    [
        (get("/q=" + "a" * 4094, version=b"HTTP/1.0"), 414, b"CSERVER_MAX_REQUEST_LINE_BYTES"),
        (get("/", b"X: " + b"y" * 8187, version=b"HTTP/1.0"), 431, b"CSERVER_MAX_HEADER_BYTES"),
        (get("/", *[b"X-%d: v" % n for n in range(100)]), 431, b"CSERVER_MAX_HEADERS"),
    ],
    ids=["request-line", "field", "field-count"],
)
def test_over_the_default_head_limits(any_server, data: bytes, status: int, setting: bytes):
    raw = send(any_server.port, data)
    assert statuses(raw) == [status], raw[:200]
    assert setting in raw


def test_at_the_default_head_limits_is_served(any_server) -> None:
    # A line counts with its CRLF, as in gunicorn: 4094 and 8190 bytes on the wire.
    line = get("/hello?" + "a" * (4092 - len("GET /hello? HTTP/1.1")))
    assert len(line.split(b"\r\n")[0]) == 4092
    field = b"X: " + b"y" * (8188 - 3)
    many = [b"X-%d: v" % n for n in range(99)]  # with Host: 100 fields
    for data in (line, get("/hello", field), get("/hello", *many)):
        raw = send(any_server.port, data)
        assert statuses(raw) == [200], raw[:200]


# Corpus 041, and its kin: a field that takes one value, sent twice.
@pytest.mark.parametrize(
    "fields",
    [
        [b"Content-Type: application/json", b"Content-Type: text/html"],
        [b"Host: other"],
        [b"Content-Length: 1", b"Content-Length: 2"],
        [b"Authorization: Basic a", b"Authorization: Basic b"],
    ],
    ids=["content-type", "host", "content-length", "authorization"],
)
def test_a_single_value_field_twice_is_refused(any_server, fields: list[bytes]) -> None:
    raw = send(any_server.port, get("/hello", *fields))
    assert statuses(raw) == [400], raw[:200]


def test_the_same_content_length_twice_is_one(any_server) -> None:
    data = (
        b"POST /read-body HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
    )
    raw = send(any_server.port, data)
    assert statuses(raw) == [200] and raw.endswith(b"\r\n\r\nok"), raw[:200]


# Corpus rfc9110_trailer_forbidden_*: framing and routing fields after a chunked body.
@pytest.mark.parametrize(
    "trailer", [b"Content-Length: 5", b"Host: elsewhere", b"TE: trailers", b"Transfer-Encoding: x"]
)
def test_a_forbidden_trailer_field_is_refused(server, trailer: bytes) -> None:
    raw = send(server.port, chunked_post(trailer))
    assert statuses(raw) == [400], raw[:200]
    assert b"not allowed as a trailer field" in raw


@pytest.mark.parametrize("trailer", [b"Bad Name: x", b"X: a\x01b", b"NoColon"])
def test_a_malformed_trailer_line_is_refused(server, trailer: bytes) -> None:
    raw = send(server.port, chunked_post(trailer))
    assert statuses(raw) == [400], raw[:200]


def test_an_ordinary_trailer_field_is_read_and_dropped(server) -> None:
    raw = send(server.port, chunked_post(b"X-Checksum: 1234"))
    assert statuses(raw) == [200] and raw.endswith(b"\r\n\r\nhello"), raw[:200]


def test_two_pipelined_http10_requests_get_two_answers(server) -> None:
    first = get("/hello", b"Connection: Keep-Alive", version=b"HTTP/1.0")
    raw = send(server.port, first + get("/hello", version=b"HTTP/1.0"))
    assert statuses(raw) == [200, 200], raw


def test_corpus_022_second_request_lacks_host(server) -> None:
    # valid/022 pipelines an HTTP/1.1 request without Host after an HTTP/1.0 one: the
    # first is served on a kept connection, the second gets the 400 RFC 9112 3.2 demands.
    first = get("/hello", b"Connection: Keep-Alive", version=b"HTTP/1.0")
    raw = send(server.port, first + b"GET /second HTTP/1.1\r\n\r\n")
    assert statuses(raw) == [200, 400], raw
    assert b"without a Host header" in raw


def test_options_asterisk_is_answered_by_the_server(any_server) -> None:
    # The application answers 404 for any path it does not know: a 200 with Allow can
    # only come from the server itself. The connection stays open for the next request.
    raw = send(any_server.port, get("*").replace(b"GET", b"OPTIONS", 1) + get("/hello"))
    assert statuses(raw) == [200, 200], raw
    first = raw.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nallow: get, head, post, put, patch, delete, options" in first
    assert raw.endswith(b"hello")


def test_asterisk_is_for_options_only(any_server) -> None:
    raw = send(any_server.port, get("*"))
    assert statuses(raw) == [400], raw


# Corpus valid/099: a Content-Length of 8599 and fewer bytes before the client half-closes.
@pytest.mark.parametrize("length", [8599, 200_000], ids=["prebuffered", "streamed"])
def test_a_body_cut_short_by_a_half_close_is_answered(server, length: int) -> None:
    head = b"POST /read-body HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % length
    raw = send(server.port, head + b"x" * 8000)
    assert statuses(raw) == [400], raw[:300]
    assert b"incomplete request" in raw


def test_a_head_cut_short_by_a_half_close_is_answered(server) -> None:
    raw = send(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\n")
    assert statuses(raw) == [400], raw
    assert b"incomplete request" in raw


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ([b"Transfer-Encoding: gzip, chunked"], 501),  # RFC 9112 6.1: a coding not decoded
        ([b"Transfer-Encoding: chunked, gzip"], 400),  # 6.3: chunked must come last
        ([b"Transfer-Encoding: gzip"], 400),
    ],
)
def test_transfer_codings(any_server, fields: list[bytes], status: int) -> None:
    data = get("/read-body", *fields).replace(b"GET", b"POST", 1) + b"0\r\n\r\n"
    raw = send(any_server.port, data)
    assert statuses(raw) == [status], raw[:200]


def test_connect_is_not_implemented(server) -> None:
    raw = send(server.port, b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
    assert statuses(raw) == [501], raw
    assert b"not a proxy" in raw


@pytest.mark.parametrize(
    "target", ['/a"b', "/a{b}", "/a\\b", "/a%zz", "/a b"], ids=["quote", "brace", "bs", "pct", "sp"]
)
def test_a_target_outside_the_uri_grammar_is_refused(any_server, target: str) -> None:
    raw = send(any_server.port, get(target))
    assert statuses(raw) == [400], raw


LOW_LIMITS = (
    "--setting",
    "max_request_line_bytes=64",
    "--setting",
    "max_header_bytes=32",
    "--setting",
    "max_headers=4",
)


@pytest.fixture(params=HEAD_MODES)
def low_limit_server(request, wire_server):
    return wire_server(request.param, *LOW_LIMITS)


def test_low_limits_set_through_the_settings(low_limit_server) -> None:
    port = low_limit_server.port
    # Lines count with their CRLF.
    line = get("/hello?" + "a" * (62 - len("GET /hello? HTTP/1.1")))
    assert statuses(send(port, line)) == [200]
    raw = send(port, get("/hello?" + "a" * (63 - len("GET /hello? HTTP/1.1"))))
    assert statuses(raw) == [414] and b"limit of 64 bytes" in raw, raw
    assert statuses(send(port, get("/hello", b"X: " + b"y" * 27))) == [200]
    raw = send(port, get("/hello", b"X: " + b"y" * 28))
    assert statuses(raw) == [431] and b"limit of 32 bytes" in raw, raw
    assert statuses(send(port, get("/hello", b"A: 1", b"B: 2", b"C: 3"))) == [200]
    raw = send(port, get("/hello", b"A: 1", b"B: 2", b"C: 3", b"D: 4"))
    assert statuses(raw) == [431] and b"more than 4 header fields" in raw, raw


BIG_FIELDS = ("--setting", "max_header_bytes=40000")


@pytest.fixture(params=HEAD_MODES)
def big_field_server(request, wire_server):
    return wire_server(request.param, *BIG_FIELDS)


def test_a_raised_field_limit_is_honoured_in_every_mode(big_field_server) -> None:
    # 30 KB in one field: over the default of 8190, within the setting.
    raw = send(big_field_server.port, get("/hello", b"X: " + b"y" * 30_000))
    assert statuses(raw) == [200], raw[:200]
    raw = send(big_field_server.port, get("/hello", b"X: " + b"y" * 40_000))
    assert statuses(raw) == [431], raw[:200]
