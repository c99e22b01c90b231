#!/usr/bin/env python3
"""Database sessions under ASGI: a sync and an async view, CONN_MAX_AGE 0, 60 and None.

Usage: python bench/asgi_connections.py [--repeat 3] [--requests 200] [--only uvicorn,pool]
       [--pg-url postgres://...] [--out results.json]. See bench/README.md.

Every cell starts a fresh server on a fresh database (cloned from a migrated template),
sends the same load with cserver's probe and counts PostgreSQL sessions opened
(pg_stat_database.sessions) and still open after the settle time (pg_stat_activity).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `cserver` importable
    sys.path.insert(0, str(ROOT))

from bench import cli, servers  # noqa: E402
from bench.scenarios import (  # noqa: E402
    BenchDatabases,
    DbLoad,
    migrated_databases,
    probe_fresh_server,
)

HOST = servers.HOST
CONN_MAX_AGES = ("0", "60", "None")


@dataclass(frozen=True)
class View:
    """One of the two measured views of the demo; both count the demo's counters."""

    key: str
    label: str
    path: str


VIEWS = (View("sync", "sync `/db`", "/db"), View("async", "async `/db/async`", "/db/async"))

SERVERS: dict[str, servers.ServerSpec] = {
    s.name: s
    for s in (
        servers.ServerSpec(
            "asgi",
            "runcserver --mode asgi",
            lambda port: [
                sys.executable,
                "-m",
                "cserver",
                "runcserver",
                f"{HOST}:{port}",
                "--noreload",
                "--mode",
                "asgi",
            ],
        ),
        servers.ServerSpec(
            "uvicorn",
            "uvicorn, 1 worker",
            servers.uvicorn_argv,
        ),
        # daphne first in INSTALLED_APPS makes `runserver` daphne's ASGI runserver.
        servers.ServerSpec(
            "daphne",
            "daphne's runserver",
            lambda port: [
                *servers.SERVERS["runserver"].argv(port),
                "--settings",
                "bench.daphne_settings",
            ],
        ),
        servers.ServerSpec(
            "runserver", "Django runserver (WSGI)", servers.SERVERS["runserver"].argv
        ),
        servers.SERVERS["pool"],
    )
}


SCRIPT = "bench/asgi_connections.py"


def _usage_error(message: str) -> None:
    cli.usage_error(SCRIPT, message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; every bad value is a one-line error and exit 2."""
    p = cli.parser(SCRIPT, __doc__)
    p.add_argument("--repeat", type=int, default=3, help="repetitions per cell (median)")
    p.add_argument("--requests", type=int, default=200, help="requests per cell")
    p.add_argument("--concurrency", type=int, default=1, help="requests at once")
    p.add_argument("--keepalive", action="store_true", help="reuse client connections")
    p.add_argument("--settle", type=float, default=1.0, help="wait before 'left open'")
    p.add_argument(
        "--only", default="", help=f"comma-separated servers: {', '.join(SERVERS)} (default all)"
    )
    p.add_argument("--pg-url", default=None, help="use this PostgreSQL (superuser URL)")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 repetition, 20 requests")
    args = p.parse_args(argv)
    for flag, value in (
        ("--repeat", args.repeat),
        ("--requests", args.requests),
        ("--concurrency", args.concurrency),
    ):
        if value < 1:
            _usage_error(f"{flag} {value} is not valid: expected an integer >= 1")
    if args.settle < 0:
        _usage_error(f"--settle {args.settle:g} is not valid: expected seconds >= 0")
    if args.quick:
        args.repeat, args.requests = 1, min(args.requests, 20)
    names = [w.strip() for w in args.only.split(",") if w.strip()]
    for name in names:
        if name not in SERVERS:
            _usage_error(f"--only {name!r} is not valid: expected servers ({', '.join(SERVERS)})")
    args.servers = [n for n in SERVERS if n in names] or list(SERVERS)
    return args


_log = cli.log


def measure(args: argparse.Namespace, workdir: Path, failures: list[str]) -> dict[str, Any]:
    """runs[server][view][max_age] = list of per-repetition results."""
    runs: dict[str, Any] = {
        n: {v.key: {a: [] for a in CONN_MAX_AGES} for v in VIEWS} for n in args.servers
    }
    with migrated_databases(args.pg_url, workdir, "bench_asgi_template") as databases:
        # Repetition outermost: background noise spreads over every cell.
        for rep in range(args.repeat):
            for age in CONN_MAX_AGES:
                for name in args.servers:
                    for view in VIEWS:
                        cell = f"{name} {view.key} CONN_MAX_AGE={age} rep {rep + 1}"
                        result = _one_cell(args, name, view, age, databases, workdir)
                        if isinstance(result, str):
                            failures.append(f"{cell}: {result}")
                            _log(f"FAILED {cell}: {result}")
                            continue
                        runs[name][view.key][age].append(result)
                        _log(
                            f"{cell}: opened {result['sessions_opened']}, left open "
                            f"{result['left_open']}, {result['elapsed_s']:.2f} s"
                        )
    return runs


def _one_cell(
    args: argparse.Namespace,
    name: str,
    view: View,
    age: str,
    databases: BenchDatabases,
    workdir: Path,
) -> dict[str, Any] | str:
    """One fresh server on one fresh database; the error text when it broke."""
    load = DbLoad(view.path, args.requests, args.concurrency, args.keepalive, args.settle)
    try:
        with databases.fresh(f"bench_asgi_{name}_{view.key}") as url:
            env = servers.base_env(
                workdir,
                {"DATABASE_URL": url, "DJANGO_CONN_MAX_AGE": age, "DJANGO_LOG_LEVEL": "WARNING"},
            )
            result = probe_fresh_server(SERVERS[name], env, url, load, workdir)
    except Exception as exc:  # one broken server must not sink the others
        return " ".join(str(exc).split())[:300]
    if result["errors"]:
        return f"{result['errors']} failed requests: {result['error_kinds']}"
    return result


def figure(runs: list[dict[str, Any]], key: str) -> str:
    """Median of the repetitions, with the range when they differ; '-' when none."""
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return "-"
    median = statistics.median(values)
    text = f"{median:g}"
    if min(values) != max(values):
        text += f" ({min(values)}-{max(values)})"
    return text


def markdown(args: argparse.Namespace, runs: dict[str, Any]) -> str:
    """The whole table: one row per server and view, opened / left open per CONN_MAX_AGE."""
    connection = "keep-alive" if args.keepalive else "each on a new socket"
    head = [
        f"{args.requests} requests, concurrency {args.concurrency}, {connection}; "
        f"median of {args.repeat} (range when they differ); sessions opened / still open "
        f"{args.settle:g} s after the load",
        "",
        "| server | view | " + " | ".join(f"`CONN_MAX_AGE={a}`" for a in CONN_MAX_AGES) + " |",
        "| --- | --- |" + " ---: |" * len(CONN_MAX_AGES),
    ]
    rows = []
    notes = []
    for name in args.servers:
        held = []
        for view in VIEWS:
            cells = []
            for age in CONN_MAX_AGES:
                cell_runs = runs[name][view.key][age]
                opened = figure(cell_runs, "sessions_opened")
                cells.append(f"{opened} / {figure(cell_runs, 'left_open')}")
                held += [r["open_before"] for r in cell_runs if r.get("open_before") is not None]
            rows.append(f"| {SERVERS[name].label} | {view.label} | " + " | ".join(cells) + " |")
        if any(held):
            count = f"{min(held)}" if min(held) == max(held) else f"{min(held)}-{max(held)}"
            notes.append(
                f"{SERVERS[name].label} held {count} session(s) before the "
                f"load in {sum(1 for h in held if h)} of {len(held)} runs (counted as still open)"
            )
    return "\n".join([*head, *rows, *(["", *notes] if notes else [])])


def main(argv: list[str] | None = None) -> int:
    """Measure every selected server, print the markdown table, write JSON if asked."""
    args = parse_args(argv)
    failures: list[str] = []
    started = time.time()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cserver-bench-asgi-") as tmp:
        runs = measure(args, Path(tmp), failures)
    print(markdown(args, runs))
    for failure in failures:
        print(f"FAILED {failure}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "elapsed_s": round(time.time() - started, 1),
            "runs": runs,
            "failures": failures,
        }
        args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
        _log(f"results written to {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    cli.run_script(SCRIPT, main)
