"""Slow clients, the connection limit and bind errors, against real servers."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import pytest

from cserver.server import is_loopback, network_warning
from testkit.procs import session_members
from testkit.serverproc import ROOT, project_env, start_server, wait_until
from tests.hostile.wire import (
    first_status,
    get_hello,
    open_connections,
    proc_threads,
    read_until_closed,
)


def _latency(port: int) -> float:
    started = time.monotonic()
    assert get_hello(port) == 200
    return time.monotonic() - started


class Trickler:
    """Sends one more byte of a never-ending header on every socket, every ``interval``."""

    def __init__(self, socks: list[socket.socket], interval: float) -> None:
        self.socks = socks
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Trickler:
        for sock in self.socks:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            for sock in self.socks:
                try:
                    sock.send(b"x")
                except OSError:
                    continue

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def test_slowloris_does_not_delay_a_normal_request_in_pool_mode() -> None:
    args = ["--mode", "pool", "--workers", "4", "--header-timeout", "3", "--keepalive-timeout", "3"]
    with start_server(args, env=project_env()) as server:
        port = server.port
        for _ in range(5):
            _latency(port)  # warm up
        baseline = statistics.median(_latency(port) for _ in range(10))
        threads_before = proc_threads(server.proc.pid)
        with open_connections(port, 100) as idle, open_connections(port, 100) as slow:
            with Trickler(slow, 0.2):
                time.sleep(0.3)
                during = [_latency(port) for _ in range(10)]
                threads_during = proc_threads(server.proc.pid)
            # The header timeout answers the trickling clients with 408 and closes them.
            replies = [first_status(read_until_closed(sock, 6)) for sock in slow]
            assert all(code in (408, None) for code in replies), replies
            assert replies.count(408) >= 90
            # The keep-alive timeout closes the idle ones (the wait above covered it).
            for sock in idle:
                sock.settimeout(2)
                assert sock.recv(10) == b""
        assert statistics.median(during) - baseline < 0.1, (baseline, during)
        # No thread was started for any of the 200 connections.
        assert threads_during == threads_before
        assert get_hello(port) == 200


def test_clients_that_never_send_their_body_hold_no_pool_worker() -> None:
    # Each announces a small body (one after "100 Continue") and never sends it.
    stalls = [
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ]
    args = ["--mode", "pool", "--workers", "1", "--header-timeout", "5"]
    with (
        start_server(args, env=project_env()) as server,
        open_connections(server.port, len(stalls) * 3) as socks,
    ):
        for n, sock in enumerate(socks):
            sock.sendall(stalls[n % len(stalls)])
        interim = socks[1].recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        # The only worker is free: a normal request is answered at once.
        assert _latency(server.port) < 1.0
        # And a stalled client that finally sends its body is served.
        socks[0].sendall(b"defghij")
        assert first_status(read_until_closed(socks[0], 3)) == 200


@pytest.mark.parametrize("mode", ["pool", "thread", "fork", "asgi"])
def test_connection_limit_gives_a_clean_503(mode: str) -> None:
    args = ["--mode", mode, "--connection-limit", "5", "--keepalive-timeout", "30"]
    with start_server(args, env=project_env()) as server:
        threads_before = proc_threads(server.proc.pid)
        with open_connections(server.port, 5) as held:
            time.sleep(0.3)  # let the server account for all five
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                response = read_until_closed(sock, 5)
            assert first_status(response) == 503
            assert b"Retry-After: 1" in response
            assert b"connection limit" in response
            if mode == "thread":
                # One thread per held connection, never more; plus the request log's writer,
                # which the first log line (maybe this refusal's) starts.
                assert proc_threads(server.proc.pid) <= threads_before + 5 + 1
            held[0].close()
            held[1].close()
            assert wait_until(lambda: get_hello(server.port) == 200, 5)
        assert "connection limit (5) reached" in server.output()


def _run_bind(addrport: str, args: list[str], user: list[str] | None = None):
    argv = [*(user or []), sys.executable, "-m", "cserver", "runcserver", addrport, *args]
    proc = subprocess.Popen(
        argv,
        env=project_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(5)
    # Nothing of that session may survive: no supervisor, generation or forked child.
    assert wait_until(lambda: not session_members(proc.pid), 5)
    return proc.returncode, out, err


BIND_ARGS = [
    pytest.param(["--noreload", "--mode", "pool"], id="pool"),
    pytest.param(["--noreload", "--mode", "fork"], id="fork"),
    pytest.param(["--mode", "fork"], id="fork-reloader"),
    pytest.param(["--noreload", "--mode", "asgi"], id="asgi"),
]


def _assert_one_line_error(code: int, err: str, message: str) -> None:
    assert code == 1, err
    assert err.strip() == f"Error: {message}", err
    assert "Traceback" not in err


@pytest.mark.parametrize("args", BIND_ARGS)
def test_port_in_use(args: list[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, _, err = _run_bind(f"127.0.0.1:{port}", args)
    _assert_one_line_error(code, err, "That port is already in use.")


@pytest.mark.parametrize("args", BIND_ARGS)
def test_address_that_is_not_local(args: list[str]) -> None:
    # 192.0.2.0/24 is TEST-NET-1: never assigned to a host. Only bind() is attempted.
    code, _, err = _run_bind("192.0.2.1:8000", args)
    _assert_one_line_error(code, err, "That IP address can't be assigned to.")


def _unprivileged() -> list[str] | None:
    """A command prefix that takes away the right to bind low ports, or None if impossible.

    As root: run as ``nobody`` when that user can import this interpreter's Django, else
    stay root but drop CAP_NET_BIND_SERVICE from the capability bounding set (the kernel
    then refuses the bind exactly as it does for a normal user).
    """
    if os.geteuid() != 0:
        return []
    setpriv = "/usr/bin/setpriv"
    if not os.path.exists(setpriv):
        return None
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(
        [*as_nobody, sys.executable, "-c", "import django, cserver"],
        cwd=ROOT,
        env=project_env(),
        capture_output=True,
        timeout=30,
    )
    if probe.returncode == 0:
        return as_nobody
    return [setpriv, "--bounding-set=-net_bind_service", "--inh-caps=-net_bind_service"]


@pytest.mark.parametrize("args", BIND_ARGS)
def test_permission_denied_on_a_low_port(args: list[str]) -> None:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            if int(f.read()) <= 80:
                pytest.skip("unprivileged users may bind port 80 on this system")
    except OSError:
        pass
    user = _unprivileged()
    if user is None:
        pytest.skip("running as root without setpriv: no way to drop the bind privilege")
    code, _, err = _run_bind("127.0.0.1:80", args, user)
    _assert_one_line_error(code, err, "You don't have permission to access that port.")


@pytest.mark.parametrize(
    ("addr", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("192.0.2.1", False),
        ("", False),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback_detection(addr: str, loopback: bool) -> None:
    assert is_loopback(addr) is loopback
    warning = network_warning(addr)
    if loopback:
        assert warning is None
    else:
        assert warning is not None and "reachable from the network" in warning
        assert "\n" not in warning


def test_wildcard_warning_names_every_interface() -> None:
    assert "every network interface" in (network_warning("0.0.0.0") or "")
