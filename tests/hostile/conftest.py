"""Fixtures for the hostile-client tests: real servers, one per mode and module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from testkit.serverproc import ServerProcess, project_env, start_server, started_once
from tests.hostile.wire import get_hello

# Small limits so that the limit cases are cheap and timeouts are quick to observe.
MAX_BODY = 4096
HEADER_TIMEOUT = 1.0
HOSTILE_ARGS = [
    "--max-body-bytes",
    str(MAX_BODY),
    "--header-timeout",
    str(HEADER_TIMEOUT),
    "--keepalive-timeout",
    "2",
    "--workers",
    "4",
]


@pytest.fixture(scope="module")
def server_for() -> Iterator[Callable[[str], ServerProcess]]:
    """``server_for(mode)``: a server in that mode with small limits, started once per module."""

    def start(mode: str) -> ServerProcess:
        return start_server(["--mode", mode, *HOSTILE_ARGS], env=project_env())

    with started_once(start) as get:
        yield get


def assert_still_serving(server: ServerProcess) -> None:
    """The server process is alive and answers a normal request."""
    assert server.proc.poll() is None, server.output()[-3000:]
    assert get_hello(server.port) == 200, server.output()[-3000:]
