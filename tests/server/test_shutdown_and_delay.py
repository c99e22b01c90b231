"""Graceful shutdown in every mode, and the seeded random delay."""

from __future__ import annotations

import json
import re
import signal
import threading
import time

import pytest

from testkit.serverproc import get, project_env, start_server


@pytest.mark.parametrize("mode", ["thread", "pool", "fork", "asgi"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_in_flight_request_finish_then_exits_zero(mode: str, sig: int) -> None:
    with start_server(["--mode", mode, "--grace-period", "5"], env=project_env()) as server:
        result: dict = {}

        def slow() -> None:
            result["response"] = get(server.url("/inflight?ms=1000"), timeout=10)

        client = threading.Thread(target=slow)
        client.start()
        time.sleep(0.3)
        stopped_at = time.monotonic()
        server.signal(sig)
        code = server.wait(10)
        client.join(10)
        assert code == 0, server.output()
        status, _, body = result["response"]
        assert status == 200
        assert json.loads(body)["max_inflight"] >= 1
        # It waited for the request, not for the whole grace period.
        assert time.monotonic() - stopped_at < 3


def test_grace_period_bounds_the_wait_for_a_stuck_request() -> None:
    with start_server(["--mode", "pool", "--grace-period", "0.5"], env=project_env()) as server:
        client = threading.Thread(
            target=lambda: _ignore_errors(get, server.url("/inflight?ms=10000"), 15),
            daemon=True,
        )
        client.start()
        time.sleep(0.3)
        start = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
        assert time.monotonic() - start < 3


def _ignore_errors(func, *args):
    try:
        return func(*args)
    except OSError:
        return None


DELAY_RE = re.compile(r'"GET /hello HTTP/1.1" 200 \d+ delay=(\d+)ms')


def _delays(args: list[str], count: int = 12) -> tuple[list[int], str]:
    with start_server(["--mode", "pool", *args], env=project_env()) as server:
        for _ in range(count):
            assert get(server.url("/hello"))[0] == 200
        deadline = time.monotonic() + 5
        while len(DELAY_RE.findall(server.output())) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        output = server.output()
    return [int(ms) for ms in DELAY_RE.findall(output)], output


def test_delay_stays_within_bounds_and_is_logged_per_request() -> None:
    delays, output = _delays(["--delay", "--delay-min", "20", "--delay-max", "60"])
    assert len(delays) == 12
    assert all(20 <= ms <= 60 for ms in delays)
    assert len(set(delays)) > 1
    assert "delay=20-60ms seed=" in output


def test_same_seed_replays_the_same_delays() -> None:
    args = ["--delay", "--delay-min", "0", "--delay-max", "50", "--seed", "1234"]
    first, output = _delays(args)
    second, _ = _delays(args)
    assert first == second
    assert "seed=1234" in output
    other, _ = _delays(["--delay", "--delay-min", "0", "--delay-max", "50", "--seed", "99"])
    assert other != first


def test_printed_seed_replays_a_run_without_a_seed() -> None:
    args = ["--delay", "--delay-min", "0", "--delay-max", "50"]
    first, output = _delays(args)
    seed = re.search(r"seed=(\d+)", output)
    assert seed is not None
    replay, _ = _delays([*args, "--seed", seed.group(1)])
    assert replay == first


def test_delay_is_applied_in_the_worker_not_the_accept_loop() -> None:
    # With a 400 ms delay on every request, eight concurrent requests still overlap.
    args = ["--mode", "pool", "--workers", "8", "--delay", "--delay-min", "400"]
    with start_server([*args, "--delay-max", "400"], env=project_env()) as server:
        from testkit.serverproc import concurrent_gets

        elapsed, results = concurrent_gets(server.url("/inflight?ms=0"), 8)
    assert all(status == 200 for status, _, _ in results)
    assert {json.loads(body)["delay_ms"] for _, _, body in results} == {400}
    assert elapsed < 1.0
