"""Property-based fuzzing of request lines and headers against a real pool-mode server.

Property: whatever arrives, the server answers with well-formed HTTP responses or closes
the connection, never with a 500 of its own, and goes on serving.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.conftest import assert_still_serving
from tests.hostile.wire import exchange, statuses

# Bounded for CI; CSERVER_FUZZ_EXAMPLES=5000 digs deeper locally.
FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("CSERVER_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

methods = st.one_of(
    st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]),
    st.text(TOKEN_CHARS, min_size=1, max_size=12).map(str.encode),
    st.binary(min_size=0, max_size=12),
)
targets = st.one_of(
    st.sampled_from([b"/hello", b"/echo", b"/", b"*", b"/echo?a=1&b=%FF", b"http://t/hello"]),
    st.binary(min_size=0, max_size=40).map(lambda b: b"/" + b),
    st.binary(min_size=0, max_size=40),
)
versions = st.one_of(
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1", b""]),
    st.binary(min_size=0, max_size=10),
)
separators = st.sampled_from([b" ", b"  ", b"\t", b""])
header_names = st.one_of(
    st.sampled_from(
        [b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"X-A"]
    ),
    st.text(TOKEN_CHARS, min_size=1, max_size=20).map(str.encode),
    st.binary(min_size=0, max_size=20),
)
header_values = st.one_of(
    st.sampled_from([b"0", b"5", b"chunked", b"close", b"keep-alive", b"100-continue", b"-1"]),
    st.binary(min_size=0, max_size=60),
)
headers = st.lists(
    st.tuples(header_names, st.sampled_from([b": ", b":", b" : ", b""]), header_values),
    max_size=8,
)
line_ends = st.sampled_from([b"\r\n", b"\n"])
bodies = st.one_of(st.just(b""), st.binary(max_size=64), st.just(b"5\r\nhello\r\n0\r\n\r\n"))


@pytest.fixture(scope="module")
def pool_server(server_for):
    return server_for("pool")


def _check(server, data: bytes) -> None:
    # The client closes its sending side, so an incomplete request ends at once.
    response = exchange(server.port, data, timeout=10, half_close=True)
    codes = statuses(response)
    if response:
        assert codes, f"not an HTTP response: {response[:200]!r}"
    assert 500 not in codes, response[:400]
    assert server.proc.poll() is None


@FUZZ_SETTINGS
@given(methods, separators, targets, separators, versions, headers, line_ends, bodies)
def test_fuzzed_request_heads(
    pool_server, method, sep1, target, sep2, version, header_list, eol, body
) -> None:
    line = method + sep1 + target + sep2 + version
    lines = [line] + [name + colon + value for name, colon, value in header_list]
    _check(pool_server, eol.join(lines) + eol + eol + body)


@FUZZ_SETTINGS
@given(st.binary(min_size=1, max_size=300))
def test_fuzzed_raw_bytes(pool_server, data: bytes) -> None:
    _check(pool_server, data)


@FUZZ_SETTINGS
@given(headers, line_ends)
def test_fuzzed_headers_on_a_valid_request_line(pool_server, header_list, eol) -> None:
    lines = [b"POST /echo HTTP/1.1"] + [name + colon + value for name, colon, value in header_list]
    _check(pool_server, eol.join(lines) + eol + eol)


def test_server_still_serves_after_fuzzing(pool_server) -> None:
    assert_still_serving(pool_server)
    assert "cserver: internal error" not in pool_server.output()
