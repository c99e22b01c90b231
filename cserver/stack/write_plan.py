"""What `cserver init` does with each file: write it, leave it, merge into it, or replace it.

Nothing the user wrote is lost. An ignore file (.dockerignore, .gitignore) that exists gets
the lines it lacks appended, its own lines kept as they are; a devcontainer.json that exists
gets the keys and list items it lacks, its own values kept (and, if it had comments, which
JSON output drops, the original kept as NAME.orig). Any other file that exists and differs is
shown as a diff and replaced only with --force, which keeps the old one as NAME.orig.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cserver.stack.devcontainer import DEVCONTAINER_JSON, DevcontainerError, merged_devcontainer

# One pattern per line, order-insensitive enough that a union keeps both meanings.
MERGEABLE = frozenset({".dockerignore", ".gitignore"})
MERGED_HEADER = "# Added by cserver init"

Action = Literal["new", "unchanged", "merge", "differs", "refresh"]


@dataclass(frozen=True)
class FileChange:
    """One file of the plan: what is there, and what init would write."""

    name: str
    action: Action
    data: bytes  # the content init writes (for "merge": the existing lines plus the new)
    current: bytes = b""
    keep_original: bool = False  # a merge that drops the user's comments keeps NAME.orig

    def diff(self) -> list[str]:
        """A unified diff from what is there to what init writes."""
        old = self.current.decode("utf-8", "replace").splitlines(keepends=True)
        new = self.data.decode("utf-8", "replace").splitlines(keepends=True)
        lines = difflib.unified_diff(old, new, f"{self.name} (yours)", f"{self.name} (init)")
        return [line.rstrip("\n") for line in lines]

    def added_lines(self) -> list[str]:
        """For a merge: the lines appended."""
        old = set(self.current.decode("utf-8", "replace").splitlines())
        new = self.data.decode("utf-8", "replace").splitlines()
        return [line for line in new if line not in old and line != MERGED_HEADER]


def merged_ignore_file(current: bytes, generated: bytes) -> bytes:
    """current with the patterns of generated it lacks appended (comments not copied)."""
    text = current.decode("utf-8", "replace")
    have = {line.strip() for line in text.splitlines()}
    missing = [
        line.strip()
        for line in generated.decode().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and line.strip() not in have
    ]
    if not missing:
        return current
    if text and not text.endswith("\n"):
        text += "\n"
    return (text + "\n".join([MERGED_HEADER, *missing]) + "\n").encode()


def plan_files(root: Path, files: dict[str, bytes]) -> list[FileChange]:
    """The change for each file init renders, sorted by name."""
    changes = []
    for name, data in sorted(files.items()):
        path = root / name
        if not path.exists():
            changes.append(FileChange(name, "new", data))
            continue
        current = path.read_bytes() if path.is_file() else b""
        if current == data:
            changes.append(FileChange(name, "unchanged", data, current))
        elif name.startswith("docker/cserver-") and name.endswith(".whl"):
            # cserver's own build, never edited by hand: always the one that ran init.
            changes.append(FileChange(name, "refresh", data, current))
        elif name in MERGEABLE and path.is_file():
            merged = merged_ignore_file(current, data)
            action: Action = "unchanged" if merged == current else "merge"
            changes.append(FileChange(name, action, merged, current))
        elif name == DEVCONTAINER_JSON and path.is_file():
            try:
                merged, drops_comments = merged_devcontainer(current, data)
            except DevcontainerError:
                # Not JSON at all: only --force replaces it (keeping the original).
                changes.append(FileChange(name, "differs", data, current))
                continue
            action = "unchanged" if merged == current else "merge"
            changes.append(FileChange(name, action, merged, current, drops_comments))
        else:
            changes.append(FileChange(name, "differs", data, current))
    return changes


def apply_plan(root: Path, changes: list[FileChange], force: bool) -> list[str]:
    """Write the plan; with force, replaced files keep a NAME.orig copy. Lines to print."""
    lines = []
    for change in changes:
        target = root / change.name
        if change.action == "unchanged":
            lines.append(f"unchanged    {change.name}")
            continue
        if change.action == "differs":
            if not force:
                continue
            backup = target.with_name(target.name + ".orig")
            backup.write_bytes(change.current)
            kept = Path(change.name).with_name(backup.name).as_posix()
            lines.append(f"replaced     {change.name} (yours kept as {kept})")
        else:
            verb = {"merge": "merged", "refresh": "refreshed"}.get(change.action, "wrote")
            line = f"{verb:<12} {change.name}"
            if change.keep_original:
                backup = target.with_name(target.name + ".orig")
                backup.write_bytes(change.current)
                line += f" (yours, with its comments, kept as {backup.name})"
            lines.append(line)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(change.data)
    return lines
