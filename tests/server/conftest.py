"""A real server in a subprocess serving tests/server/wireapps.py, one per mode and module."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest

from testkit.serverproc import ROOT, ServerProcess, server_env, started_once


def start_wire_server(mode: str, *args: str) -> ServerProcess:
    """``python -m tests.server.wireapps MODE``, bound and answering."""
    argv = [sys.executable, "-m", "tests.server.wireapps", mode, *args]
    server = ServerProcess(argv, server_env(), ROOT)
    server.wait_bound(20)
    return server


@pytest.fixture(scope="module")
def wire_server() -> Iterator[Callable[..., ServerProcess]]:
    """``wire_server(mode, *args)``: a wireapps server, started once per module and arguments."""
    with started_once(start_wire_server) as get:
        yield get
