#!/usr/bin/env python3
"""Reload benchmark: refused connections and errors across code reloads, runserver vs runcserver.

A client polls every 10 ms (a new socket each time) while the script saves a view N times.
For each server it prints refused connections, 5xx answers, other errors, and the median
time from the file write to the first response from the new code.

For runcserver it also prints the median of each phase its supervisor logs per reload
(detect: write to event; start: event to the new generation's project loaded; ready: to
serving) and how many generations were forked from the warm process.

Usage: python bench/reload.py [--reloads 20] [--only runserver,thread,pool,fork]
       [--projects minimal,apps] [--poll] [--out F]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.reload_projects import (
    PROJECTS,
    make_project,
    prepare,
    write_version,
)
from testkit.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "runserver": ["runserver"],
    "thread": ["runcserver", "--mode", "thread"],
    "pool": ["runcserver", "--mode", "pool", "--workers", "8"],
    "fork": ["runcserver", "--mode", "fork", "--workers", "8"],
}
BANNER = re.compile(r"Starting (?:\w+ )?development server at http://[^:]+:(\d+)/")
TIMING = re.compile(
    r"reloaded in \d+ ms \(detect (\d+) ms, start (\d+) ms, ready (\d+) ms, (\w+)\)"
)


class Poller(threading.Thread):
    """GET /version every 10 ms on a new socket; records outcomes with timestamps."""

    def __init__(self, port: int, limit_s: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.limit_s = limit_s
        self.stop = threading.Event()
        self.refused = 0
        self.server_errors = 0
        self.other_errors = 0
        self.ok = 0
        self.seen: list[tuple[float, str]] = []
        self.error_kinds: dict[str, int] = {}
        self.lock = threading.Lock()

    def run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self.stop.is_set() and time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                conn.request("GET", "/version")
                response = conn.getresponse()
                text = response.read().decode(errors="replace")
                if response.status >= 500:
                    self.server_errors += 1
                else:
                    self.ok += 1
                    with self.lock:
                        self.seen.append((time.monotonic(), text))
            except ConnectionRefusedError:
                self.refused += 1
            except (OSError, http.client.HTTPException) as exc:
                self.other_errors += 1
                self.error_kinds[type(exc).__name__] = (
                    self.error_kinds.get(type(exc).__name__, 0) + 1
                )
            finally:
                conn.close()
            time.sleep(0.01)

    def first_seen(self, text: str, after: float) -> float | None:
        with self.lock:
            for stamp, seen in self.seen:
                if stamp >= after and seen == text:
                    return stamp
        return None


def run_server(name: str, kind: str, reloads: int, watcher_settle: float, poll: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="cserver-reload-") as tmp:
        base = Path(tmp)
        make_project(base, kind)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSERVER_")}
        path = [str(base), str(ROOT)]
        if poll:
            env["WATCHFILES_FORCE_POLLING"] = "1"
        env.update(
            DJANGO_SETTINGS_MODULE="benchproj.settings",
            PYTHONPATH=os.pathsep.join(path),
            PYTHONUNBUFFERED="1",
        )
        prepare(base, kind, env)
        # A fixed port: runserver's reloader binds again in each child, so port 0 would
        # give every generation a different port.
        argv = [sys.executable, "-m", "django", *SERVERS[name], f"127.0.0.1:{free_port()}"]
        proc = subprocess.Popen(
            argv,
            cwd=base,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines: list[str] = []
        port_found = threading.Event()
        port: list[int] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                match = BANNER.search(line)
                if match and not port:
                    port.append(int(match.group(1)))
                    port_found.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            if not port_found.wait(60):
                raise RuntimeError(f"{name} did not start:\n{''.join(lines)}")
            time.sleep(watcher_settle)
            poller = Poller(port[0], limit_s=reloads * 20 + 30)
            poller.start()
            times = []
            for version in range(1, reloads + 1):
                written = time.monotonic()
                write_version(base, version)
                deadline = written + 20
                seen = None
                while seen is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                    seen = poller.first_seen(f"version {version}", written)
                if seen is None:
                    raise RuntimeError(
                        f"{name}: version {version} never served:\n{''.join(lines[-30:])}"
                    )
                times.append(seen - written)
                # Let the new generation's watcher take its baseline, as a developer would.
                time.sleep(watcher_settle)
            poller.stop.set()
            poller.join(20)
            phases = [TIMING.search(line) for line in lines]
            found = [m for m in phases if m]
            return {
                "server": name,
                "project": kind,
                "detect_ms": _median([int(m.group(1)) for m in found]),
                "start_ms": _median([int(m.group(2)) for m in found]),
                "ready_ms": _median([int(m.group(3)) for m in found]),
                "forked": sum(m.group(4) == "forked" for m in found),
                "reloads": reloads,
                "refused": poller.refused,
                "server_errors": poller.server_errors,
                "other_errors": poller.other_errors,
                "error_kinds": poller.error_kinds,
                "ok": poller.ok,
                "median_reload_s": statistics.median(times),
                "max_reload_s": max(times),
            }
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _median(values: list[int]) -> float | None:
    return statistics.median(values) if values else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--only", default=",".join(SERVERS))
    parser.add_argument("--settle", type=float, default=1.2, help="pause after each reload")
    parser.add_argument("--projects", default=",".join(PROJECTS), help="minimal, apps")
    parser.add_argument(
        "--poll",
        action="store_true",
        help="WATCHFILES_FORCE_POLLING=1, as on a mount without events",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown or args.reloads < 1:
        print(
            f"bench/reload.py: --only {args.only!r} / --reloads {args.reloads}: "
            f"servers are {', '.join(SERVERS)}, reloads >= 1",
            file=sys.stderr,
        )
        return 2
    kinds = [k.strip() for k in args.projects.split(",") if k.strip()]
    if any(k not in PROJECTS for k in kinds):
        print(
            f"bench/reload.py: --projects {args.projects!r}: choose from {PROJECTS}",
            file=sys.stderr,
        )
        return 2
    results = []
    for kind in kinds:
        results.extend(run_server(n, kind, args.reloads, args.settle, args.poll) for n in names)
    watch = "watchfiles polling (WATCHFILES_FORCE_POLLING=1)" if args.poll else "watchfiles"
    print(
        f"\n{args.reloads} reloads, client polling every 10 ms (new socket per request); {watch}\n"
    )
    print(
        "| project | server | refused | 5xx | other errors | ok | write -> new code (median) "
        "| vs runserver | detect | start | ready | forked |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        base = next(
            (b for b in results if b["server"] == "runserver" and b["project"] == r["project"]),
            None,
        )
        ratio = f"{r['median_reload_s'] / base['median_reload_s']:.2f}x" if base else "-"
        print(
            f"| {r['project']} | {r['server']} | {r['refused']} | {r['server_errors']} "
            f"| {r['other_errors']} | {r['ok']} | {r['median_reload_s'] * 1000:.0f} ms | {ratio} "
            f"| {_ms(r['detect_ms'])} | {_ms(r['start_ms'])} | {_ms(r['ready_ms'])} "
            f"| {r['forked']}/{r['reloads']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
