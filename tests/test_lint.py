"""ruff and mypy are part of the test command, so a lint failure fails the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.serverproc import ROOT


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "cserver", "tests", "bench"],
        ["ruff", "format", "--check", "cserver", "tests", "bench"],
        [sys.executable, "-m", "mypy", "cserver"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_lint(command: list[str]) -> None:
    if command[0] == "ruff":
        ruff = shutil.which("ruff")
        assert ruff, "ruff is a dev dependency: pip install -e '.[dev]'"
        command = [ruff, *command[1:]]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
