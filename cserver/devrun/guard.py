"""A small process that outlives `cserver dev` only to stop what it started.

`kill -9` of `cserver dev` gives it no chance to stop its children, and a child's children
(Celery's pool, runcserver's server generations) would not notice either. So before any
child starts, `cserver dev` forks this guard and keeps the write end of a pipe to it,
announcing each child's process group. When that pipe reaches end of file, whatever the
reason, the guard sends SIGTERM to every group it was told of, waits the grace period, then
SIGKILL, and exits. A normal stop has already emptied the groups, so it has nothing to do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from cserver.procutil import group_alive, set_process_name


def _signal_groups(groups: set[int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def _guard(read_fd: int, grace: float) -> None:
    # Ctrl-C and a SIGTERM meant for `cserver dev` reach the whole terminal process group:
    # the guard must stay for its end-of-file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    set_process_name("cserver-guard")
    groups: set[int] = set()
    pending = b""
    while chunk := os.read(read_fd, 4096):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            sign, pgid = line[:1], int(line[1:])
            if sign == b"+":
                groups.add(pgid)
            else:
                groups.discard(pgid)
    groups = {g for g in groups if group_alive(g)}
    if not groups:
        return
    _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_alive(g) for g in groups):
        time.sleep(0.05)
    _signal_groups(groups, signal.SIGKILL)


class GroupGuard:
    """The parent's side of the guard: tell it about each child's process group."""

    def __init__(self, grace: float) -> None:
        read_fd, self._write_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the guard
            os.close(self._write_fd)
            code = 0
            try:
                _guard(read_fd, grace)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(read_fd)
        os.set_inheritable(self._write_fd, False)

    def started(self, pgid: int) -> None:
        self._send(b"+%d\n" % pgid)

    def ended(self, pgid: int) -> None:
        self._send(b"-%d\n" % pgid)

    def _send(self, line: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write_fd, line)

    def close(self) -> None:
        """Release the guard (it stops what is left) and collect it."""
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
