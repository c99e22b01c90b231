#!/usr/bin/env python3
"""Reload benchmark: refused connections and errors across code reloads, runserver vs runcserver.

A client polls every 10 ms (a new socket each time) while the script saves a view N times.
For each server it prints refused connections, 5xx answers, other errors, and the median
time from the file write to the first response from the new code.

Usage: python bench/reload.py [--reloads 20] [--only runserver,thread,pool,fork] [--out F]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `testkit` importable
    sys.path.insert(0, str(ROOT))

from testkit.files import write_later  # noqa: E402
from testkit.ports import free_port  # noqa: E402
from testkit.serverproc import ServerProcess  # noqa: E402

SERVERS = {
    "runserver": ["runserver"],
    "thread": ["runcserver", "--mode", "thread"],
    "pool": ["runcserver", "--mode", "pool", "--workers", "8"],
    "fork": ["runcserver", "--mode", "fork", "--workers", "8"],
}
SETTINGS = """
DEBUG = True
SECRET_KEY = "reload-bench"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "benchproj.urls"
INSTALLED_APPS = ["cserver"]
MIDDLEWARE = []
DATABASES = {}
"""
URLS = """
from django.urls import path
from benchproj import views
urlpatterns = [path("version", views.version)]
"""
VIEWS = """
from django.http import HttpResponse
def version(request):
    return HttpResponse("version {version}", content_type="text/plain")
"""


def make_project(base: Path) -> None:
    package = base / "benchproj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS)
    (package / "urls.py").write_text(URLS)
    write_version(base, 0)


def write_version(base: Path, version: int) -> None:
    write_later(base / "benchproj" / "views.py", VIEWS.format(version=version))


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


def run_server(name: str, reloads: int, watcher_settle: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="cserver-reload-") as tmp:
        base = Path(tmp)
        make_project(base)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSERVER_")}
        env.update(
            DJANGO_SETTINGS_MODULE="benchproj.settings",
            PYTHONPATH=f"{base}{os.pathsep}{ROOT}",
            PYTHONUNBUFFERED="1",
        )
        # A fixed port: runserver's reloader binds again in each child, so port 0 would
        # give every generation a different port.
        argv = [sys.executable, "-m", "django", *SERVERS[name], f"127.0.0.1:{free_port()}"]
        server = ServerProcess(argv, env, base)
        try:
            server.wait_bound(60)
            time.sleep(watcher_settle)
            poller = Poller(server.port, limit_s=reloads * 20 + 30)
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
                        f"{name}: version {version} never served:\n{''.join(server.lines[-30:])}"
                    )
                times.append(seen - written)
                # Let the new generation's watcher take its baseline, as a developer would.
                time.sleep(watcher_settle)
            poller.stop.set()
            poller.join(20)
            return {
                "server": name,
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
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--only", default=",".join(SERVERS))
    parser.add_argument("--settle", type=float, default=1.2, help="pause after each reload")
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
    results = [run_server(name, args.reloads, args.settle) for name in names]
    base = next((r for r in results if r["server"] == "runserver"), None)
    print(f"\n{args.reloads} reloads, client polling every 10 ms (new socket per request)\n")
    print(
        "| server | refused | 5xx | other errors | ok | write -> new code (median) | vs runserver |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        ratio = f"{r['median_reload_s'] / base['median_reload_s']:.2f}x" if base else "-"
        print(
            f"| {r['server']} | {r['refused']} | {r['server_errors']} | {r['other_errors']} "
            f"| {r['ok']} | {r['median_reload_s'] * 1000:.0f} ms | {ratio} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
