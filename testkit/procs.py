"""The process table, read from /proc: children, states, sessions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


def _stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, fields after the command name) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses; the fields after it are fixed:
        # state, ppid, pgrp, session, ...
        yield int(entry.name), stat.rsplit(")", 1)[1].split()


def child_states(pid: int) -> dict[int, str]:
    """pid -> state letter of every child of ``pid``, zombies included."""
    return {child: fields[0] for child, fields in _stats() if int(fields[1]) == pid}


def children(pid: int) -> list[int]:
    """Every child of ``pid``, zombies included (a zombie is a child not yet reaped)."""
    return list(child_states(pid))


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie waiting for init to reap it is not alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid`` (a process started in a new session)."""
    return [pid for pid, fields in _stats() if int(fields[3]) == sid and fields[0] not in "ZX"]


def direct_children(pid: int) -> list[int]:
    """Children of ``pid`` from its tasks' lists: one small read, fast enough to spin on."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def generations(supervisor: int) -> set[int]:
    """The supervisor's children that serve, not the warm process they are forked from."""
    found = set()
    for pid in direct_children(supervisor):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if name != "cserver-warm":
            found.add(pid)
    return found
