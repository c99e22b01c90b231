"""Lingering close on real sockets, in every mode: a response that leaves the request body
unread reaches the client whole, and a client that never stops sending is cut off within
the bounds without holding a worker."""

from __future__ import annotations

import selectors
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.rawsocket import read_until_closed
from tests.server.test_framing import parse_replies, request

# (mode, extra server flags): every concurrency mode, and a group of worker processes.
SERVERS = {
    "thread": ("thread",),
    "pool": ("pool",),
    "fork": ("fork",),
    "asgi": ("asgi",),
    "processes": ("pool", "--processes", "2"),
    "asgi-processes": ("asgi", "--processes", "2"),
}
FORBIDDEN = b"no uploads here"
UPLOAD = 3_000_000
# Below wireapps' --max-body-bytes (4 MiB): a body the server accepts and the view ignores.
DECLARED = 4_000_000
# Low bounds for the clients that never stop sending.
LOW_BOUNDS = ("--workers", "1", "--linger-timeout", "1", "--linger-bytes", "65536")


@dataclass
class Upload:
    received: bytes = b""
    sent: int = 0
    error: str = ""  # how sending or reading failed, "" if it did not
    closed: bool = False  # the server's end of the stream arrived
    elapsed: float = 0.0


def upload(
    port: int,
    head: bytes,
    size: int | None,
    *,
    rate: float | None = None,
    timeout: float = 20.0,
    responded: threading.Event | None = None,
) -> Upload:
    """Send ``head`` and ``size`` body bytes (None: without end) at ``rate`` bytes/s (None:
    as fast as the server takes them), reading all the while, as a browser does.

    Returns once everything went out and the server closed its end, on an error, or after
    ``timeout``. ``responded`` is set once a whole response head and body came.
    """
    result = Upload()
    chunk = b"x" * 16384
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while (elapsed := time.monotonic() - start) < timeout:
                allowed = size if size is not None else float("inf")
                if rate is not None:
                    allowed = min(allowed, int(elapsed * rate) + len(chunk))
                want_write = result.sent < allowed
                if not want_write and result.closed:
                    break
                events = selectors.EVENT_WRITE if want_write else 0
                events |= 0 if result.closed else selectors.EVENT_READ
                selector.modify(sock, events)
                try:
                    for _key, ready in selector.select(0.05):
                        if ready & selectors.EVENT_READ:
                            data = sock.recv(65536)
                            result.closed = not data
                            result.received += data
                            if responded is not None and response_complete(result.received):
                                responded.set()
                        if ready & selectors.EVENT_WRITE:
                            budget = int(min(len(chunk), allowed - result.sent))
                            result.sent += sock.send(chunk[:budget])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    result.error = repr(exc)
                    break
    result.elapsed = time.monotonic() - start
    return result


def response_complete(raw: bytes) -> bool:
    replies, _ = parse_replies(raw, ["POST"])
    return bool(replies)


def post_head(length: int) -> bytes:
    return request("POST", "/forbidden-upload", f"Content-Length: {length}".encode())


@pytest.mark.parametrize("name", SERVERS)
def test_unread_upload_gets_the_whole_response(wire_server, name: str) -> None:
    # At about 1.2 MB/s, as a slow link sends: the body takes longer than the response.
    server = wire_server(*SERVERS[name])
    result = upload(server.port, post_head(UPLOAD), UPLOAD, rate=1_200_000, timeout=30)
    assert result.error == "", result
    assert result.sent == UPLOAD
    assert result.closed, "the server never closed its end"
    replies, error = parse_replies(result.received, ["POST"])
    assert error == ""
    assert [(r.status, r.body) for r in replies] == [(403, FORBIDDEN)]


@pytest.mark.parametrize("name", SERVERS)
def test_endless_sender_is_cut_off_while_others_are_served(wire_server, name: str) -> None:
    mode, *extra = SERVERS[name]
    server = wire_server(mode, *extra, *LOW_BOUNDS)
    responded = threading.Event()
    results: list[Upload | BaseException] = []

    def send_without_end() -> None:
        try:
            results.append(
                upload(server.port, post_head(DECLARED), None, timeout=30, responded=responded)
            )
        except BaseException as exc:  # reported by the test, not lost in the thread
            results.append(exc)
            responded.set()

    sender = threading.Thread(target=send_without_end, daemon=True)
    sender.start()
    try:
        assert responded.wait(15), "no response to the endless upload"
        assert not results or isinstance(results[0], Upload), results
        # One worker, and a client still sending to it: the next client is served anyway.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as other:
            other.sendall(request("GET", "/hello", b"Connection: close"))
            raw = read_until_closed(other, 10)
        replies, _ = parse_replies(raw, ["GET"])
        assert [(r.status, r.body) for r in replies] == [(200, b"hello")]
    finally:
        sender.join(35)
    (result,) = results
    assert isinstance(result, Upload), result
    # Cut off by the bound (1 s or 64 KiB past the declared body), not by the client's
    # own 30 s: a reset or a broken pipe, once the 403 had come whole.
    assert result.error, result
    assert result.elapsed < 20, result
    assert parse_replies(result.received, ["POST"])[0][0].status == 403


@pytest.mark.parametrize("name", SERVERS)
def test_sender_past_the_byte_bound_is_cut_off(wire_server, name: str) -> None:
    # A body over --max-body-bytes is refused (413) unread; the bytes bound is the one that
    # cuts the client off here (the time bound is left at its 30 s).
    mode, *extra = SERVERS[name]
    server = wire_server(mode, *extra, "--linger-bytes", "65536")
    result = upload(server.port, post_head(5_000_000), None, timeout=40)
    assert result.error, result
    assert result.elapsed < 25, result
    replies, _ = parse_replies(result.received, ["POST"])
    assert [r.status for r in replies] == [413]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("expect", ["100-continue", "none"])
@pytest.mark.parametrize("name", SERVERS)
def test_curl_upload_to_a_403_exits_0(wire_server, name: str, expect: str, tmp_path: Path) -> None:
    server = wire_server(*SERVERS[name])
    body = tmp_path / "upload.bin"
    body.write_bytes(b"x" * UPLOAD)
    # curl waits for "100 Continue" before a large body unless told not to ("Expect:").
    headers = ["-H", "Expect:"] if expect == "none" else []
    url = f"http://127.0.0.1:{server.port}/forbidden-upload"
    command = ["curl", "-sS", "--max-time", "30", "--data-binary", f"@{body}", *headers, url]
    proc = subprocess.run(
        [*command, "-w", "\n%{http_code}"], capture_output=True, timeout=40, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == FORBIDDEN + b"\n403"
