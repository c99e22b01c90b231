"""Scenarios (e) and (f): the time one response takes to reach a client that reads fast.

curl (C, decodes chunked framing at no cost worth measuring) downloads each response and
reports its total time; the servers run side by side and the repetitions interleave, like
the wrk scenarios.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import servers


@dataclass(frozen=True)
class TransferScenario:
    key: str
    label: str
    path: str
    size: int  # bytes the client must receive, checked on every download


TRANSFER_SCENARIOS = {
    s.key: s
    for s in (
        TransferScenario("e", "50 MB FileResponse", "/download?mb=50", 50 << 20),
        TransferScenario(
            "f",
            "StreamingHttpResponse, 100,000 parts",
            "/stream?parts=100000",
            sum(len(b"part %d\n" % n) for n in range(100_000)),
        ),
    )
}
DOWNLOADS_PER_REP = 3  # the median of these is one repetition's figure


def curl_path() -> str | None:
    return shutil.which("curl")


def download_seconds(url: str, size: int | None, timeout: float = 120) -> float:
    """Total time of one download with curl; RuntimeError unless it is a 200 of ``size``
    bytes (any size when None)."""
    proc = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download} %{time_total}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"curl {url}: {proc.stderr.strip() or proc.returncode}")
    code, got, seconds = proc.stdout.split()
    if code != "200" or (size is not None and int(got) != size):
        raise RuntimeError(f"{url}: status {code}, {got} bytes instead of {size}")
    return float(seconds)


def run_transfer(
    names: list[str],
    keys: list[str],
    *,
    repeat: int,
    env: dict[str, str],
    workdir: Path,
    log: Callable[[str], None],
    failures: list[str],
) -> dict[str, dict[str, list[float]]]:
    """Seconds per response, one median of DOWNLOADS_PER_REP per repetition and server."""
    results: dict[str, dict[str, list[float]]] = {k: {n: [] for n in names} for k in keys}
    with contextlib.ExitStack() as stack:
        running = {}
        for name in names:
            try:
                srv = servers.start(servers.SERVERS[name], env, workdir)
            except servers.ServerStartError as exc:
                failures.append(f"{name}: {exc}")
                continue
            stack.callback(srv.stop)
            running[name] = srv
        for key in keys:  # a first download writes the demo's file and warms up
            for srv in running.values():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    download_seconds(srv.url(TRANSFER_SCENARIOS[key].path), None)
        for rep in range(repeat):
            for key in keys:
                sc = TRANSFER_SCENARIOS[key]
                for name, srv in running.items():
                    try:
                        times = [
                            download_seconds(srv.url(sc.path), sc.size)
                            for _ in range(DOWNLOADS_PER_REP)
                        ]
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        failures.append(f"({key}) {name}: {exc}")
                        log(f"FAILED ({key}) {name}: {exc}")
                        continue
                    results[key][name].append(statistics.median(times))
                    log(f"rep {rep + 1}/{repeat} ({key}) {name:9s} {results[key][name][-1]:.3f} s")
    return results


def summarise(transfer: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    """Median seconds per server and scenario, and time ratios (lower is better)."""
    out: dict[str, dict[str, Any]] = {}
    for key, by_server in transfer.items():
        medians = {n: statistics.median(v) if v else None for n, v in by_server.items()}
        out[key] = {}
        for name, seconds in medians.items():
            entry: dict[str, Any] = {"seconds": seconds}
            for base in ("runserver", "waitress"):
                other = medians.get(base)
                entry[f"vs_{base}"] = round(seconds / other, 3) if seconds and other else None
            out[key][name] = entry
    return out


def markdown(summary: dict[str, dict[str, Any]], labels: dict[str, str]) -> list[str]:
    keys = [k for k in TRANSFER_SCENARIOS if k in summary]
    if not keys:
        return []
    lines = [
        f"Seconds per response, median of {DOWNLOADS_PER_REP} downloads per repetition "
        "(time ratio vs runserver / vs waitress; lower is faster):",
        "",
        "| server | " + " | ".join(f"({k}) {TRANSFER_SCENARIOS[k].label}" for k in keys) + " |",
        "| --- |" + " ---: |" * len(keys),
    ]
    for name, label in labels.items():
        cells = []
        for key in keys:
            entry = summary[key].get(name, {})
            if entry.get("seconds") is None:
                cells.append("-")
                continue
            ratios = [
                "-" if entry[f"vs_{b}"] is None else f"{entry[f'vs_{b}']:.2f}x"
                for b in ("runserver", "waitress")
            ]
            cells.append(f"{entry['seconds']:.3f} s ({' / '.join(ratios)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines
