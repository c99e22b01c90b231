"""Run wrk and read its summary: requests/s, latency percentiles, errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class WrkResult:
    """What one wrk run reported."""

    requests_per_s: float
    requests: int
    latency_ms: dict[str, float | None]
    errors: dict[str, int] = field(default_factory=dict)


def wrk_path() -> str | None:
    """Where wrk is installed, or None."""
    return shutil.which("wrk")


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse(output: str) -> WrkResult:
    """Parse wrk's text output (with --latency)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    latency: dict[str, float | None] = {"p50": None, "p90": None, "p99": None}
    for pct, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M):
        latency[f"p{pct}"] = round(_ms(value, unit), 3)
    errors: dict[str, int] = {}
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sock:
        for name, count in zip(("connect", "read", "write", "timeout"), sock.groups(), strict=True):
            if int(count):
                errors[name] = int(count)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors["non-2xx/3xx"] = int(non2xx.group(1))
    return WrkResult(float(rps.group(1)), int(total.group(1)), latency, errors)


def run(
    url: str,
    *,
    connections: int,
    duration: int,
    threads: int = 2,
    headers: tuple[str, ...] = (),
    timeout_s: int = 10,
) -> WrkResult:
    """Run wrk against url for duration seconds; bounded by duration plus a margin."""
    wrk = wrk_path()
    if wrk is None:
        raise FileNotFoundError("wrk is not installed (Debian package 'wrk')")
    argv = [
        wrk,
        "--threads",
        str(max(1, min(threads, connections))),
        "--connections",
        str(connections),
        "--duration",
        f"{duration}s",
        "--timeout",
        f"{timeout_s}s",
        "--latency",
    ]
    for header in headers:
        argv += ["--header", header]
    argv.append(url)
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + timeout_s + 30, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    return parse(proc.stdout)
