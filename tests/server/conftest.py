"""A real server in a subprocess serving tests/server/wireapps.py, one per mode and module."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from testkit.serverproc import ROOT, server_env, started_once


class WireServer:
    """``python -m tests.server.wireapps MODE``; stops its whole process group."""

    def __init__(self, mode: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.server.wireapps", mode, *args],
            cwd=ROOT,
            env=server_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.port = 0
        bound = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith("PORT "):
                    self.port = int(line.split()[1])
                    bound.set()
            bound.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not bound.wait(20) or not self.port:
            self.stop()
            raise RuntimeError(f"wireapps {mode} did not start:\n{self.output()}")

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._reader.join(2)


@pytest.fixture(scope="module")
def wire_server() -> Iterator[Callable[..., WireServer]]:
    """``wire_server(mode, *args)``: a wireapps server, started once per module and arguments."""
    with started_once(WireServer) as get:
        yield get
