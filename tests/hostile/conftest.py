"""Fixtures for the hostile-client tests: real servers, one per mode and module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from testkit.serverproc import ServerProcess, project_env, start_server
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
    started: dict[str, ServerProcess] = {}

    def get(mode: str) -> ServerProcess:
        server = started.get(mode)
        if server is None or server.proc.poll() is not None:
            server = start_server(["--mode", mode, *HOSTILE_ARGS], env=project_env())
            started[mode] = server
        return server

    try:
        yield get
    finally:
        for server in started.values():
            server.stop()


def assert_still_serving(server: ServerProcess) -> None:
    """The server process is alive and answers a normal request."""
    assert server.proc.poll() is None, server.output()[-3000:]
    assert get_hello(server.port) == 200, server.output()[-3000:]
