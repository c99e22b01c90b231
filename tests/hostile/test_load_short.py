"""bench/load.py in its short mode: the bounds hold (never a throughput figure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from testkit.serverproc import ROOT

# Checks whose names start with these are bounds; the script also reports figures such as
# latency, which are not asserted here.
BOUNDS = (
    "threads",
    "descriptors",
    "same ",
    "serves a request right after the load",
    "server process alive",
    "no request failed",
    "no unexpected failure",
    "live children",
    "no child left behind",
    "no zombie",
    "every slow connection closed",
    "connections over the limit got 503",
    "nothing refused under the limit",
    "memory growth",
)


def test_load_script_short_mode_keeps_every_bound(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    result = subprocess.run(
        [sys.executable, "bench/load.py", "--short", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert out.exists(), result.stdout + result.stderr
    runs = json.loads(out.read_text())
    assert set(runs) == {"conn", "limit", "slowloris", "fork", "soak"}
    failed = [
        f"{name}: {what} ({detail})"
        for name, run in runs.items()
        for what, ok, detail in run["checks"]
        if not ok and what.startswith(BOUNDS)
    ]
    assert not failed, "\n".join(failed) + "\n" + result.stdout[-3000:]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The thread count of pool mode is workers + the serving thread, whatever the load.
    assert runs["conn"]["figures"]["threads_max"] == runs["conn"]["figures"]["threads_start"]
    assert runs["fork"]["figures"]["children_max"] <= runs["fork"]["figures"]["workers"]
