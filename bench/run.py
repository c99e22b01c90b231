#!/usr/bin/env python3
"""Benchmark: the demo project under runserver, gunicorn, waitress and runcserver's modes.

Usage: python bench/run.py [--repeat 3] [--duration 6] [--quick] [--only pool,waitress,a]
       [--out results.json]. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `cserver` importable
    sys.path.insert(0, str(ROOT))

from bench import cli, report, servers, transfer, wrk  # noqa: E402
from bench.scenarios import (  # noqa: E402
    ALL_SCENARIOS,
    DB_KEY,
    HTTP_SCENARIOS,
    migrate,
    run_db,
    run_http,
)

SCRIPT = "bench/run.py"


def _usage_error(message: str) -> None:
    cli.usage_error(SCRIPT, message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; every bad value is a one-line error and exit 2."""
    p = cli.parser(SCRIPT, __doc__)
    p.add_argument("--repeat", type=int, default=3, help="repetitions per scenario (median)")
    p.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    p.add_argument("--warmup", type=int, default=1, help="wrk warm-up seconds before rep 1")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk --threads (default 2)")
    p.add_argument("--db-requests", type=int, default=200, help="requests in scenario (d)")
    p.add_argument("--settle", type=float, default=1.0, help="(d): wait before 'left open'")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 repeat of 1 s")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated servers and/or scenarios, e.g. 'runserver,pool,a,d'; servers: "
        f"{', '.join(servers.SERVERS)}; scenarios: {', '.join(ALL_SCENARIOS)}",
    )
    p.add_argument("--pg-url", default=None, help="use this PostgreSQL (superuser URL) for (d)")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    for flag, value, low in (
        ("--repeat", args.repeat, 1),
        ("--duration", args.duration, 1),
        ("--warmup", args.warmup, 0),
        ("--wrk-threads", args.wrk_threads, 1),
        ("--db-requests", args.db_requests, 1),
    ):
        if value < low:
            _usage_error(f"{flag} {value} is not valid: expected an integer >= {low}")
    if args.quick:
        args.repeat, args.duration, args.warmup = 1, 1, 0
        args.db_requests = min(args.db_requests, 20)
    names, keys = [], []
    for word in filter(None, (w.strip() for w in args.only.split(","))):
        if word in servers.SERVERS:
            names.append(word)
        elif word in ALL_SCENARIOS:
            keys.append(word)
        else:
            _usage_error(
                f"--only {word!r} is not valid: expected servers "
                f"({', '.join(servers.SERVERS)}) and/or scenarios ({', '.join(ALL_SCENARIOS)})"
            )
    args.servers = [n for n in servers.SERVERS if n in names] or list(servers.SERVERS)
    args.scenarios = [k for k in ALL_SCENARIOS if k in keys] or list(ALL_SCENARIOS)
    return args


_log = cli.log


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios, print the markdown report, write JSON if asked."""
    args = parse_args(argv)
    http_keys = [k for k in args.scenarios if k in HTTP_SCENARIOS]
    if http_keys and wrk.wrk_path() is None:
        _usage_error("wrk is not installed (apt-get install wrk); or use --only d")
    started = time.time()
    results: dict[str, Any] = {
        "settings": {
            "repeat": args.repeat,
            "duration_s": args.duration,
            "wrk_threads": args.wrk_threads,
            "db_requests": args.db_requests,
            "servers": {n: servers.SERVERS[n].label for n in args.servers},
            "scenarios": args.scenarios,
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}",
        },
        "http": {},
        "db": {},
        "transfer": {},
        "failures": [],
    }
    load1 = os.getloadavg()[0]
    results["settings"]["load_at_start"] = round(load1, 2)
    if load1 > 1.0:
        _log(f"warning: load average {load1:.2f} at start; figures will be noisy")
    with tempfile.TemporaryDirectory(prefix="cserver-bench-") as tmp:
        workdir = Path(tmp)
        if http_keys:
            results["http"] = run_http(
                args.servers,
                http_keys,
                repeat=args.repeat,
                duration=args.duration,
                warmup=args.warmup,
                wrk_threads=args.wrk_threads,
                workdir=workdir,
                log=_log,
                failures=results["failures"],
            )
        transfer_keys = [k for k in args.scenarios if k in transfer.TRANSFER_SCENARIOS]
        if transfer_keys:
            if transfer.curl_path() is None:
                _usage_error("curl is not installed (apt-get install curl); or leave out e,f")
            env = servers.base_env(workdir)
            migrate(env, workdir)
            results["transfer"] = transfer.run_transfer(
                args.servers,
                transfer_keys,
                repeat=args.repeat,
                env=env,
                workdir=workdir,
                log=_log,
                failures=results["failures"],
            )
        if DB_KEY in args.scenarios:
            results["db"] = run_db(
                args.servers,
                repeat=args.repeat,
                requests=args.db_requests,
                settle=args.settle,
                workdir=workdir,
                pg_url=args.pg_url,
                log=_log,
                failures=results["failures"],
            )
    results["elapsed_s"] = round(time.time() - started, 1)
    results["settings"]["load_at_end"] = round(os.getloadavg()[0], 2)
    summary = report.summarise(results)
    results["summary"] = summary
    print(report.markdown(results, summary))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        _log(f"results written to {args.out}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    cli.run_script(SCRIPT, main)
