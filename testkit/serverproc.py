"""Start a real runcserver (or any server command) in a subprocess and wait until it listens."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

ROOT = Path(__file__).resolve().parent.parent
# Django 6 says "Starting WSGI development server at".
BANNER_RE = re.compile(r"Starting (?:\w+ )?development server at http://(\S+?):(\d+)/")
# What uvicorn logs once it listens (with --port 0, the port it was given).
UVICORN_BANNER_RE = re.compile(r"Uvicorn running on http://(\S+?):(\d+) ")


class ServerProcess:
    """A server subprocess whose output is collected; stops its whole process group."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        cwd: Path,
        banner: re.Pattern[str] = BANNER_RE,
    ) -> None:
        self.argv = list(argv)
        self.banner = banner
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self.host = "127.0.0.1"
        self._bound = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            match = self.banner.search(line)
            if match and not self._bound.is_set():
                self.host = match.group(1).strip("[]")
                self.port = int(match.group(2))
                self._bound.set()
        self._bound.set()

    def wait_bound(self, timeout: float) -> None:
        if not self._bound.wait(timeout) or self.port is None:
            self.stop()
            raise RuntimeError(
                f"server did not start within {timeout}s: {self.argv}\n{self.output()}"
            )

    def wait_for_output(self, text: str, timeout: float = 10) -> str:
        """The output once ``text`` appears in it (or the timeout passes)."""
        wait_until(lambda: text in self.output(), timeout)
        return self.output()

    def output(self) -> str:
        return "".join(self.lines)

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL of the whole group; never leaves a process behind."""
        stop_group(self.proc, timeout)
        self._reader.join(2)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_group(proc: subprocess.Popen, timeout: float = 10) -> int | None:
    """SIGTERM to a process started in its own session, then SIGKILL to all of its group.

    The server gets ``timeout`` seconds to stop its own workers; whatever is left then
    (children of a fork server, a reloader's generation) is killed, never left behind.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    return proc.returncode


def server_env(extra: dict[str, str] | None = None, tmp: Path | None = None) -> dict[str, str]:
    """A clean environment: no CSERVER_* from the caller, the demo settings, a private DB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSERVER_", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env["DJANGO_SETTINGS_MODULE"] = "cserver.demo.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if tmp is not None:
        env["CSERVER_DEMO_SQLITE"] = str(tmp / "demo.sqlite3")
    env.update(extra or {})
    return env


def start_server(
    args: Sequence[str] = (),
    *,
    env: dict[str, str] | None = None,
    command: str = "runcserver",
    addrport: str | None = "127.0.0.1:0",
    noreload: bool = True,
    cwd: Path | None = None,
    timeout: float = 30,
) -> ServerProcess:
    """``python -m cserver <command> [addrport] [--noreload] args``, waiting for the banner."""
    argv = [sys.executable, "-m", "cserver", command]
    if addrport is not None:
        argv.append(addrport)
    if noreload:
        argv.append("--noreload")
    argv.extend(args)
    server = ServerProcess(argv, env if env is not None else server_env(), cwd or ROOT)
    server.wait_bound(timeout)
    return server


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def project_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the tests' own project (tests.project), SQLite in memory."""
    env = server_env()
    env["DJANGO_SETTINGS_MODULE"] = "tests.project.settings"
    env.update(extra or {})
    return env


def get(url: str, timeout: float = 10, headers: dict[str, str] | None = None):
    """One GET on a new connection: (status, headers dict, body bytes)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def concurrent_gets(url: str, count: int, timeout: float = 20) -> tuple[float, list]:
    """``count`` simultaneous GETs; (elapsed seconds, results in completion order)."""
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(count)

    def one(_: int):
        barrier.wait(timeout)
        return get(url, timeout)

    start = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    return time.monotonic() - start, results


class _Stoppable(Protocol):
    proc: subprocess.Popen

    def stop(self) -> Any: ...


S = TypeVar("S", bound=_Stoppable)


@contextlib.contextmanager
def started_once(start: Callable[..., S]) -> Iterator[Callable[..., S]]:
    """A getter that starts one server per distinct arguments (again if it exited), and stops
    every server it started on the way out: for module-scoped fixtures."""
    started: dict[tuple[str, ...], S] = {}

    def get(*args: str) -> S:
        server = started.get(args)
        if server is None or server.proc.poll() is not None:
            server = started[args] = start(*args)
        return server

    try:
        yield get
    finally:
        for server in started.values():
            server.stop()
