"""ruff and mypy are part of the test command, so a lint failure fails the suite.

Each tool runs as ``sys.executable -m TOOL``: the one pinned in constraints.txt and
installed next to this interpreter, whether or not its virtual environment is activated.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from testkit.serverproc import ROOT


@pytest.mark.parametrize(
    "args",
    [
        ["ruff", "check", "cserver", "tests", "bench", "testkit", "noxfile.py"],
        ["ruff", "format", "--check", "cserver", "tests", "bench", "testkit", "noxfile.py"],
        ["mypy", "cserver"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_lint(args: list[str]) -> None:
    command = [sys.executable, "-m", *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
