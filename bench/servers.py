"""The servers the benchmark compares, started on free loopback ports and always stopped."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testkit.ports import free_port
from testkit.serverproc import stop_group

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEMO_ASGI_APP = "cserver.demo.asgi:application"


def uvicorn_argv(port: int, *options: str) -> list[str]:
    """uvicorn serving the demo's ASGI application in one worker, quiet but for warnings."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        *options,
        DEMO_ASGI_APP,
    ]


WSGI_APP = "cserver.demo.wsgi:application"


def _runcserver(*extra: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        cmd = [sys.executable, "-m", "cserver", "runcserver", f"{HOST}:{port}", "--noreload"]
        return [*cmd, *extra]

    return argv


@dataclass(frozen=True)
class ServerSpec:
    """How to start one of the compared servers on a given port."""

    name: str
    label: str
    argv: Callable[[int], list[str]]
    # Added to the environment of this server only: the request log off, for instance.
    env: tuple[tuple[str, str], ...] = ()


# django.server logs at INFO: WARNING keeps errors but drops the line of every request.
LOG_OFF = (("DJANGO_LOG_LEVEL", "WARNING"),)


def _runserver(port: int) -> list[str]:
    return [sys.executable, "-m", "django", "runserver", f"{HOST}:{port}", "--noreload"]


SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in (
        ServerSpec("runserver", "Django runserver --noreload", _runserver),
        ServerSpec("runserver-nolog", "Django runserver, request log off", _runserver, LOG_OFF),
        ServerSpec(
            "gunicorn",
            "gunicorn gthread 1x16",
            lambda port: [
                sys.executable,
                "-m",
                "gunicorn",
                "--worker-class",
                "gthread",
                "--workers",
                "1",
                "--threads",
                "16",
                "--bind",
                f"{HOST}:{port}",
                "--log-level",
                "warning",
                WSGI_APP,
            ],
        ),
        ServerSpec(
            "waitress",
            "waitress 16 threads",
            lambda port: [
                sys.executable,
                "-m",
                "waitress",
                "--threads=16",
                f"--listen={HOST}:{port}",
                WSGI_APP,
            ],
        ),
        # ASGI: Django's sync views run in its thread pool; access log off like the others.
        ServerSpec(
            "uvicorn",
            "uvicorn (ASGI) 1 worker",
            lambda port: uvicorn_argv(port, "--no-access-log"),
        ),
        ServerSpec("thread", "runcserver --mode thread", _runcserver("--mode", "thread")),
        ServerSpec(
            "pool",
            "runcserver --mode pool --workers 16",
            _runcserver("--mode", "pool", "--workers", "16"),
        ),
        ServerSpec(
            "pool-nolog",
            "runcserver --mode pool --workers 16, request log off",
            _runcserver("--mode", "pool", "--workers", "16"),
            LOG_OFF,
        ),
        # Production's shape (gunicorn -w 2 --threads 8): two processes of 8 pool workers,
        # 16 threads in all like the others, and a GIL per process.
        ServerSpec(
            "pool2",
            "runcserver --processes 2 --mode pool --workers 8",
            _runcserver("--processes", "2", "--mode", "pool", "--workers", "8"),
        ),
        # The fork cap is raised to 16 like the pool, so (c) compares equal concurrency.
        ServerSpec(
            "fork",
            "runcserver --mode fork --workers 16",
            _runcserver("--mode", "fork", "--workers", "16"),
        ),
    )
}


def base_env(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every server: demo settings, DEBUG off, no inherited CSERVER_* knobs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CSERVER_", "DJANGO_", "DATABASE_URL"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "cserver.demo.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "*",
            "CSERVER_DEMO_SQLITE": str(workdir / "bench.sqlite3"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


class ServerStartError(RuntimeError):
    """A server did not answer in time; the message holds the tail of its log."""


class RunningServer:
    """A started server process (own process group) and where it listens.

    Unlike testkit's ServerProcess its output goes to a file: reading a pipe during a
    measurement would take CPU from the server being measured.
    """

    def __init__(self, spec: ServerSpec, port: int, proc: subprocess.Popen[bytes], log: Path):
        self.spec = spec
        self.port = port
        self.proc = proc
        self.log = log

    def url(self, path: str) -> str:
        """Absolute URL of path on this server."""
        return f"http://{HOST}:{self.port}{path}"

    def log_tail(self, lines: int = 15) -> str:
        """Last lines of the server's output, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def answers(self, path: str = "/hello") -> bool:
        """True when GET path returns 200."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL to the whole process group (fork children too); bounded."""
        stop_group(self.proc, timeout)


def start(
    spec: ServerSpec, env: dict[str, str], logdir: Path, timeout: float = 30.0
) -> RunningServer:
    """Start spec on a free port and wait until /hello answers 200 (bounded)."""
    env = {**env, **dict(spec.env)}
    last = ""
    for _attempt in range(3):
        port = free_port(HOST)  # may race: retried below on "already in use"
        log = logdir / f"{spec.name}-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                spec.argv(port),
                env=env,
                cwd=logdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() reaches every child
            )
        server = RunningServer(spec, port, proc, log)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if server.answers():
                    return server
                time.sleep(0.1)
        except BaseException:
            server.stop()
            raise
        server.stop()
        last = server.log_tail()
        if "already in use" not in last.lower():  # else the port raced: try another
            break
    raise ServerStartError(f"{spec.label} did not answer within {timeout:g}s:\n{last}")
