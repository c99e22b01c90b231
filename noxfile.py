"""Development sessions: the pinned toolchain and the Python x Django matrix.

    python -m nox -s lock      # re-pin every dependency in constraints.txt
    python -m nox -s tests     # the non-Docker suite on each supported Python x Django pair

Every session installs with ``-c constraints.txt``, so a new machine gets the same tools
as CI. The matrix sessions drop Django's pin and install the Django of their pair.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ROOT / "constraints.txt"

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests"]


def oldest_python() -> str:
    """The lower bound of pyproject's requires-python, e.g. "3.10"."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^requires-python\s*=\s*">=\s*(\d+\.\d+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError('pyproject.toml has no requires-python = ">=X.Y"')
    return match.group(1)


@nox.session(python=False)
def lock(session: nox.Session) -> None:
    """Resolve the newest allowed versions for every supported Python into constraints.txt."""
    # uv's universal lock starts from the interpreter it runs on unless told the oldest
    # supported one; it only needs the version to resolve markers, never to download it.
    session.run(
        sys.executable,  # nox's own interpreter, where the dev extra put uv
        "-m",
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--all-extras",
        "--universal",
        "--upgrade",
        "--python-version",
        oldest_python(),
        "--quiet",
        "--output-file",
        str(CONSTRAINTS),
        "--custom-compile-command",
        "python -m nox -s lock",
        env={"UV_PYTHON_DOWNLOADS": "never"},
    )
