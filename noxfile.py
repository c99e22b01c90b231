"""Development sessions: the pinned toolchain and the Python x Django matrix.

    python -m nox -s lock      # re-pin every dependency in constraints.txt
    python -m nox -s tests     # the non-Docker suite on each supported Python x Django pair

Every session installs with ``-c constraints.txt``, so a new machine gets the same tools
as CI. The matrix sessions drop Django's pin and install the Django of their pair.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ROOT / "constraints.txt"

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests"]


@nox.session(python=False)
def lock(session: nox.Session) -> None:
    """Resolve the newest allowed versions for every supported Python into constraints.txt."""
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
        "--quiet",
        "--output-file",
        str(CONSTRAINTS),
        "--custom-compile-command",
        "python -m nox -s lock",
    )
