"""The project's dependency list: which file the image installs from, and its driver."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

POSTGRES_DRIVERS = frozenset(
    {"psycopg", "psycopg-binary", "psycopg-c", "psycopg2", "psycopg2-binary"}
)
# Added to the image when the project names no PostgreSQL driver.
DEFAULT_DRIVER = "psycopg[binary]"
# Preferred first: a development requirements file usually includes the base one.
REQUIREMENTS_FILES = (
    "requirements-dev.txt",
    "requirements/dev.txt",
    "requirements/local.txt",
    "requirements/development.txt",
    "requirements.txt",
    "requirements/base.txt",
)
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)[\s=]+(\S+)")

DepsKind = Literal["requirements", "pyproject", "uv", "cserver"]


class DetectError(Exception):
    """The project cannot be set up as found; the message is one line for the user."""


def read_toml(path: Path) -> dict:
    """A TOML file, or a one-line DetectError."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DetectError(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class Deps:
    """How the image installs the project's dependencies."""

    kind: DepsKind
    files: tuple[str, ...]  # relative to the project root; the first is the one named
    has_driver: bool

    @property
    def label(self) -> str:
        """e.g. 'requirements.txt', 'uv.lock (uv export)'."""
        names = {"uv": "uv.lock (uv export)", "pyproject": "pyproject.toml [project].dependencies"}
        return names.get(self.kind, self.files[0] if self.files else "pyproject.toml")


def _requirement_names(lines: list[str]) -> set[str]:
    names: set[str] = set()
    for line in lines:
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            names.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            continue
    return names


def _requirements_closure(root: Path, first: str) -> tuple[list[str], set[str]]:
    """The file, every file it includes (-r / -c), and the package names they list."""
    files: list[str] = []
    names: set[str] = set()
    pending = [first]
    while pending:
        name = pending.pop(0)
        if name in files:
            continue
        path = root / name
        if not path.is_file():
            raise DetectError(f"requirements file {name!r} not found in {root}")
        files.append(name)
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        names |= _requirement_names(lines)
        for line in lines:
            match = _INCLUDE.match(line)
            if match:
                included = (Path(name).parent / match.group(1)).as_posix()
                if included.startswith("../") or included.startswith("/"):
                    raise DetectError(f"{name} includes {match.group(1)!r}, outside the project")
                pending.append(included)
    return files, names


def _pyproject_names(pyproject: dict) -> set[str]:
    return _requirement_names(list(pyproject.get("project", {}).get("dependencies", [])))


def find_deps(root: Path, wanted: str | None, pyproject: dict | None) -> tuple[Deps, str]:
    if wanted:
        choice, source = wanted, "--deps"
    elif (root / "uv.lock").is_file() and pyproject is not None:
        choice, source = "uv.lock", "uv.lock next to pyproject.toml"
    else:
        found = [name for name in REQUIREMENTS_FILES if (root / name).is_file()]
        if found:
            choice, source = found[0], f"{found[0]} found"
        elif pyproject is not None and "dependencies" in pyproject.get("project", {}):
            choice, source = "pyproject.toml", "pyproject.toml [project].dependencies"
        else:
            raise DetectError(
                f"no dependency list in {root}: expected requirements.txt, pyproject.toml "
                "with [project].dependencies, or uv.lock; pass --deps FILE"
            )
    if not (root / choice).is_file():
        raise DetectError(f"--deps {choice!r} is not a file in {root}")
    if choice.endswith("uv.lock") or choice.endswith("pyproject.toml"):
        if pyproject is None:
            raise DetectError(f"--deps {choice!r} needs pyproject.toml in {root}")
        names = _pyproject_names(pyproject)
        if choice.endswith("uv.lock"):
            return Deps("uv", ("pyproject.toml", "uv.lock"), bool(names & POSTGRES_DRIVERS)), source
        return Deps("pyproject", ("pyproject.toml",), bool(names & POSTGRES_DRIVERS)), source
    files, names = _requirements_closure(root, choice)
    return Deps("requirements", tuple(files), bool(names & POSTGRES_DRIVERS)), source
