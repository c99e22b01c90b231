#!/usr/bin/env python3
"""Startup benchmark: from the command to the first 200 response, runserver vs runcserver.

Each case starts a fresh process on a free port, polls GET every 5 ms until it answers
200, records the elapsed time and stops the process group. Cases (medians of --runs):
runserver and runcserver (reloader on, as people run them) on the minimal and the apps
project of bench/reload.py, and the demo: `python -m django runserver` against
`cserver demo`, both on an already migrated SQLite database.

With --baseline PATH (a checkout of another cserver version, e.g. from `git worktree add`)
the runcserver cases also run with that version first on PYTHONPATH, in the same run.

Usage: python bench/startup.py [--runs 7] [--only NAME,...] [--baseline PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench.reload import free_port  # noqa: E402
from bench.reload_projects import make_project, prepare  # noqa: E402

DJANGO = [sys.executable, "-m", "django"]
CSERVER = [sys.executable, "-m", "cserver"]
# `cserver dev` with two side processes of its own starting beside web: what it adds over
# runcserver alone is its own Django start, detection and the spawn (target <= 0.5 s).
SIDES = {"CSERVER_SIDE_PROCESSES": '{"one": "sleep 600", "two": "sleep 600"}'}
# name -> (project, command, path to poll, extra environment)
CASES: dict[str, tuple[str, list[str], str, dict[str, str]]] = {
    "minimal runserver": ("minimal", [*DJANGO, "runserver"], "/version", {}),
    "minimal runcserver": ("minimal", [*DJANGO, "runcserver"], "/version", {}),
    "apps runserver": ("apps", [*DJANGO, "runserver"], "/version", {}),
    "apps runcserver": ("apps", [*DJANGO, "runcserver"], "/version", {}),
    "apps cserver dev": ("apps", [*CSERVER, "dev"], "/version", SIDES),
    "demo runserver": ("demo", [*DJANGO, "runserver"], "/", {}),
    "demo cserver demo": ("demo", [*CSERVER, "demo"], "/", {}),
}


def first_response(port: int, path: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return True
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.005)
    return False


def time_one(argv: list[str], path: str, env: dict[str, str], cwd: Path) -> float:
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen(
        [*argv, f"127.0.0.1:{port}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if not first_response(port, path, start + 60):
            raise RuntimeError(f"{argv} did not answer within 60 s")
        return time.monotonic() - start
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def environment(kind: str, base: Path) -> tuple[dict[str, str], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSERVER_", "DJANGO_"))}
    env["PYTHONUNBUFFERED"] = "1"
    if kind == "demo":
        env.update(
            DJANGO_SETTINGS_MODULE="cserver.demo.settings",
            CSERVER_DEMO_SQLITE=str(base / "demo.sqlite3"),
            PYTHONPATH=str(ROOT),
        )
        subprocess.run([*CSERVER, "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)
        return env, ROOT
    make_project(base, kind)
    env.update(DJANGO_SETTINGS_MODULE="benchproj.settings", PYTHONPATH=f"{base}{os.pathsep}{ROOT}")
    prepare(base, kind, env)
    return env, base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated case names (substrings)")
    parser.add_argument("--baseline", type=Path, help="another cserver checkout to compare")
    args = parser.parse_args(argv)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    cases = {n: c for n, c in CASES.items() if not wanted or any(w in n for w in wanted)}
    if args.baseline:
        cases.update(
            {f"{n} (baseline)": c for n, c in cases.items() if "runserver" not in n.split()[1:]}
        )
    if not cases or args.runs < 1:
        print(f"bench/startup.py: choose --only from {', '.join(CASES)}; --runs >= 1")
        return 2
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cserver-startup-") as tmp:
        setups = {}
        for kind in {c[0] for c in cases.values()}:
            (Path(tmp) / kind).mkdir()
            setups[kind] = environment(kind, Path(tmp) / kind)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):  # interleaved, so background noise spreads over every case
            for name, (kind, command, path, extra) in cases.items():
                env, cwd = setups[kind]
                env = {**env, **extra}
                if name.endswith("(baseline)"):
                    env = {**env, "PYTHONPATH": f"{args.baseline}{os.pathsep}{env['PYTHONPATH']}"}
                times[name].append(time_one(command, path, env, cwd))
        results = {name: statistics.median(values) for name, values in times.items()}
    print(f"\nCommand to first 200 response, median of {args.runs}\n")
    print("| case | median | vs runserver | over runcserver |")
    print("| --- | ---: | ---: | ---: |")
    for name, value in results.items():
        anchor = results.get(name.split()[0] + " runserver")
        ratio = f"{value / anchor:.2f}x" if anchor else "-"
        own = results.get(name.split()[0] + " runcserver")
        over = f"{(value - own) * 1000:+.0f} ms" if own and "dev" in name else "-"
        print(f"| {name} | {value * 1000:.0f} ms | {ratio} | {over} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
