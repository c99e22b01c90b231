#!/usr/bin/env python3
"""Save-to-new-task-code in the stack's Celery worker, for each way of restarting it.

Writes the team project of tests/teamproj.py (Celery worker and beat, Redis, an npm watcher)
into a temporary directory, runs `cserver init` and `docker compose up --wait`, then, under
`docker compose watch`, N times edits the task body (jobs/tasks.py) while a client enqueues
a task through web every 100 ms and reads the rows back. The time from the write to the
first row written by the new code is the figure; medians of N.

Strategies (each on the same stack, one after the other):
  compose   what init generates: watch's `sync+restart` restarts the worker's container
  cserver   watch's `sync` only; the container runs `python -m cserver dev --only worker`,
            whose file watcher restarts the Celery process inside the running container
  local     no Docker: `cserver dev` on this machine with a redis-server of its own (the
            Debian package) and SQLite, web and worker as `cserver dev` runs them

Usage: python bench/reload_sides.py [--edits 5] [--only compose,cserver] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `tests` importable
    sys.path.insert(0, str(ROOT))

from bench.reload import free_port  # noqa: E402
from tests.teamproj import set_task_value, write_teamproj  # noqa: E402

PROJECT = "cserver-sides-bench"
STRATEGIES = ("compose", "cserver", "local")
ENQUEUE_EVERY = 0.1
DEV = [sys.executable, "-m", "cserver", "dev"]


def compose_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSERVER_", "COMPOSE_"))}
    env.update(
        CSERVER_IMAGE=f"{PROJECT}-img",
        CSERVER_HOST_PORT=str(port),
        CSERVER_HEALTHCHECK_INTERVAL="1s",
        COMPOSE_PROJECT_NAME=PROJECT,
    )
    return env


def compose(root: Path, env: dict[str, str], files: list[str], *args: str) -> str:
    argv = ["docker", "compose", "-p", PROJECT]
    for name in files:
        argv += ["-f", name]
    proc = subprocess.run(
        [*argv, *args], cwd=root, env=env, capture_output=True, text=True, timeout=900
    )
    if proc.returncode:
        raise SystemExit(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def cserver_strategy_file(root: Path, env: dict[str, str]) -> str:
    """The generated stack with the worker restarted by cserver's watcher instead of compose."""
    config: dict[str, Any] = json.loads(
        compose(root, env, ["compose.yaml"], "config", "--format", "json")
    )
    worker = config["services"]["worker"]
    worker["command"] = ["python", "-m", "cserver", "dev", "--only", "worker"]
    for rule in worker["develop"]["watch"]:
        rule["action"] = "sync"
    (root / "compose.cserver.json").write_text(json.dumps(config, indent=2))
    return "compose.cserver.json"


class Enqueuer(threading.Thread):
    """A task every 100 ms through web; notes when a row with the wanted value shows up."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.base = f"http://127.0.0.1:{port}"
        self.stop = threading.Event()
        self.pending: list[str] = []
        self.seen: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            key = secrets.token_hex(4)
            with contextlib.suppress(requests.RequestException):
                session.get(f"{self.base}/enqueue?key={key}", timeout=5)
                self.pending.append(key)
            for old in list(self.pending):
                with contextlib.suppress(requests.RequestException, ValueError):
                    value = session.get(f"{self.base}/result?key={old}", timeout=5).json()["value"]
                    if value:
                        self.pending.remove(old)
                        with self.lock:
                            self.seen.append((time.monotonic(), value))
            self.pending = self.pending[-50:]
            time.sleep(ENQUEUE_EVERY)

    def first(self, value: str, since: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                hits = [t for t, v in self.seen if v == value and t >= since]
            if hits:
                return min(hits) - since
            time.sleep(0.02)
        return None


def measure(
    root: Path, env: dict[str, str], files: list[str], port: int, edits: int
) -> list[float]:
    argv = ["docker", "compose", "-p", PROJECT] + [a for f in files for a in ("-f", f)]
    compose(root, env, files, "up", "--wait", "--quiet-pull")
    return run_and_time([*argv, "watch", "--no-up"], root, env, port, edits)


def run_and_time(
    argv: list[str], root: Path, env: dict[str, str], port: int, edits: int
) -> list[float]:
    """Run argv (watch, or cserver dev) while timing the edits; stop it afterwards."""
    proc = subprocess.Popen(
        argv, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    enqueuer = Enqueuer(port)
    enqueuer.start()
    try:
        time.sleep(5)  # watch (or the worker) sets up before anything is synced
        # The first edit is not counted: watch's initial sync, the worker's first restart.
        return edit_and_time(root, enqueuer, edits)
    finally:
        enqueuer.stop.set()
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def edit_and_time(root: Path, enqueuer: Enqueuer, edits: int) -> list[float]:
    """N timed edits of the task body (after one that is not counted)."""
    times: list[float] = []
    for n in range(edits + 1):
        value = f"v{n}-{secrets.token_hex(2)}"
        started = time.monotonic()
        set_task_value(root, value)
        took = enqueuer.first(value, started, timeout=60)
        if took is None:
            raise SystemExit(f"edit {n}: the worker never ran {value!r} within 60 s")
        if n:
            times.append(took)
            print(f"  edit {n}: {took * 1000:.0f} ms", flush=True)
        time.sleep(3)  # let the worker settle before the next edit
    return times


def measure_local(root: Path, edits: int) -> list[float]:
    """`cserver dev` (web + worker) against a redis-server of its own, on this machine."""
    redis_port, port = free_port(), free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSERVER_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="teamproj.settings",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        TEAMPROJ_SQLITE=str(root / "local.sqlite3"),
        PYTHONPATH=f"{root}{os.pathsep}{ROOT}",
    )
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=root, env=env, check=True
        )
        argv = [*DEV, f"127.0.0.1:{port}", "--noreload", "--without", "beat,assets"]
        return run_and_time(argv, root, env, port, edits)
    finally:
        redis.kill()
        redis.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--only", default=",".join(STRATEGIES))
    parser.add_argument("--keep", action="store_true", help="leave the stack up at the end")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    if not chosen or set(chosen) - set(STRATEGIES) or args.edits < 1:
        print(f"bench/reload_sides.py: --only from {', '.join(STRATEGIES)}; --edits >= 1")
        return 2
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="cserver-sides-") as tmp:
        root = write_teamproj(Path(tmp))
        init = subprocess.run(
            [sys.executable, "-m", "cserver", "init"], cwd=root, capture_output=True, text=True
        )
        if init.returncode:
            raise SystemExit(init.stderr)
        for path in [Path(tmp), *Path(tmp).rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if "local" in chosen:
            print("local:", flush=True)
            results["local"] = measure_local(root, args.edits)
        docker = [s for s in chosen if s != "local"]
        port = free_port()
        env = compose_env(port)
        if docker:
            started = time.monotonic()
            compose(root, env, ["compose.yaml"], "up", "--build", "--wait", "--quiet-pull")
            print(f"up --build --wait: {time.monotonic() - started:.1f} s", flush=True)
        try:
            for strategy in docker:
                files = ["compose.yaml"]
                if strategy == "cserver":
                    files = [cserver_strategy_file(root, env)]
                print(f"{strategy}:", flush=True)
                results[strategy] = measure(root, env, files, port, args.edits)
        finally:
            if docker and not args.keep:
                compose(root, env, ["compose.yaml"], "down", "-v", "--timeout", "5")
    print(f"\nSave to the first task run by the new code, median of {args.edits}\n")
    print("| strategy | median | min | max |")
    print("| --- | ---: | ---: | ---: |")
    for strategy, values in results.items():
        median = statistics.median(values)
        print(f"| {strategy} | {median:.2f} s | {min(values):.2f} s | {max(values):.2f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
