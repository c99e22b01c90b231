#!/usr/bin/env python3
"""Reloads inside the compose stack: `docker compose watch` syncs an edit, runcserver reloads.

Starts the stack of compose.yaml under its own project name, image tag and host port,
runs `docker compose watch`, then N times rewrites cserver/demo/views.py (adding a
comment; the original is put back at the end) while a client polls GET /whoami every
10 ms on a new socket. The time from the write to the first answer from a new process id
(a new generation, for runserver a new child) is the reload time. Then the same with
`runserver` in place of `runcserver`, through a compose override file.

Usage: python bench/reload_compose.py [--reloads 10] [--only runserver,runcserver]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIEWS = ROOT / "cserver" / "demo" / "views.py"
PROJECT = "cserver-reload-bench"
TIMING = re.compile(r"reloaded in \d+ ms \(detect (\d+) ms, start (\d+) ms, ready (\d+) ms")
COMMANDS = {
    "runcserver": ["python", "-m", "cserver", "runcserver", "0.0.0.0:8000"],
    "runserver": ["python", "-m", "cserver", "runserver", "0.0.0.0:8000"],
}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Poller(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.seen: list[tuple[float, int]] = []
        self.errors: dict[str, int] = {}
        self.server_errors = 0

    def run(self) -> None:
        deadline = time.monotonic() + 900
        while not self.stop.is_set() and time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                conn.request("GET", "/whoami")
                response = conn.getresponse()
                body = response.read()
                if response.status >= 500:
                    self.server_errors += 1
                else:
                    self.seen.append((time.monotonic(), json.loads(body)["pid"]))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                name = type(exc).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
            finally:
                conn.close()
            time.sleep(0.01)

    def pid_at(self, after: float) -> int | None:
        return next((pid for stamp, pid in reversed(self.seen) if stamp <= after), None)

    def new_pid_after(self, after: float, old: int) -> float | None:
        return next((s for s, pid in list(self.seen) if s >= after and pid != old), None)


def compose(files: list[str], env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess:
    argv = ["docker", "compose", "-p", PROJECT]
    for name in files:
        argv += ["-f", name]
    return subprocess.run([*argv, *args], cwd=ROOT, env=env, **kw)


def run(name: str, reloads: int, env: dict[str, str], tmp: Path) -> dict:
    override = tmp / f"{name}.yaml"
    override.write_text(json.dumps({"services": {"web": {"command": COMMANDS[name]}}}))
    files = [str(ROOT / "compose.yaml"), str(override)]
    compose(files, env, "up", "-d", "--wait", "web", check=True, timeout=600)
    watch = subprocess.Popen(
        ["docker", "compose", "-p", PROJECT, "-f", files[0], "-f", files[1], "watch"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    original = VIEWS.read_text()
    poller = Poller(int(env["CSERVER_HOST_PORT"]))
    times = []
    try:
        time.sleep(5)  # watch sets itself up
        poller.start()
        for n in range(1, reloads + 1):
            time.sleep(1.5)
            old = poller.pid_at(time.monotonic())
            written = time.monotonic()
            VIEWS.write_text(f"{original}\n# reload {n}\n")
            seen = None
            while seen is None and time.monotonic() < written + 30:
                time.sleep(0.02)
                seen = poller.new_pid_after(written, old) if old else None
            if seen is None:
                raise RuntimeError(
                    f"{name}: reload {n} not seen within 30 s; pid before {old}, "
                    f"last answers {poller.seen[-3:]}, errors {poller.errors}"
                )
            times.append(seen - written)
    finally:
        VIEWS.write_text(original)
        poller.stop.set()
        watch.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            watch.wait(20)
    logs = compose(files, env, "logs", "web", capture_output=True, text=True, timeout=60).stdout
    phases = [m.groups() for m in TIMING.finditer(logs)][:reloads]  # not the restore
    return {
        "server": name,
        # runcserver's own account: the write to the event (compose's copy included), then
        # its start and ready phases.
        "phases_ms": [statistics.median(int(p[i]) for p in phases) for i in range(3)]
        if phases
        else None,
        "median_ms": statistics.median(times) * 1000,
        "errors": poller.errors,
        "server_errors": poller.server_errors,
        "ok": len(poller.seen),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--only", default="runserver,runcserver")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n in COMMANDS]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSERVER_", "DJANGO_"))}
    env.update(CSERVER_IMAGE=PROJECT, CSERVER_HOST_PORT=str(free_port()))
    results = []
    with tempfile.TemporaryDirectory(prefix="cserver-compose-bench-") as tmp:
        try:
            for name in names:
                results.append(run(name, args.reloads, env, Path(tmp)))
        finally:
            compose([str(ROOT / "compose.yaml")], env, "down", "-v", timeout=300)
    base = next((r for r in results if r["server"] == "runserver"), None)
    print(f"\n{args.reloads} reloads in the compose stack (docker compose watch, sync)\n")
    print(
        "| server | write -> new process (median) | vs runserver | failed polls | 5xx "
        "| detect / start / ready (median, ms) |"
    )
    print("| --- | ---: | ---: | --- | ---: | --- |")
    for r in results:
        ratio = f"{r['median_ms'] / base['median_ms']:.2f}x" if base else "-"
        print(
            f"| {r['server']} | {r['median_ms']:.0f} ms | {ratio} | {r['errors'] or 0} "
            f"| {r['server_errors']} | {' / '.join(f'{v:.0f}' for v in r['phases_ms'] or [])} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
