"""The server generation's side of the reloader: what a process started by the supervisor does.

A generation inherits the listening socket and three descriptors' numbers through the
environment: the socket, a pipe on which it reports progress to the supervisor
("loaded", then "ready"), and a pipe on which the supervisor sends the paths of changed
files that need no restart (templates, translations). It never watches files itself and
never decides to reload: the supervisor does both.

A thread reads that pipe. In fork mode this process forks for each connection, and a fork
while that thread held a lock (stdout's, a logging handler's) would leave the child with
a lock nobody releases. The thread is idle in ``os.read`` (no Python lock held) except
while it handles a message, and it does that under ``_quiet``, which ``os.fork`` takes
first (``os.register_at_fork``): a fork never happens in the middle of that work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from cserver.procutil import die_with_parent

LISTEN_FD_ENV = "CSERVER_LISTEN_FD"
SUPERVISOR_PID_ENV = "CSERVER_SUPERVISOR_PID"
STATUS_FD_ENV = "CSERVER_STATUS_FD"
CHANGES_FD_ENV = "CSERVER_CHANGES_FD"
# 1 for the first generation of a run, 2 after the first reload, ...
NUMBER_ENV = "CSERVER_GENERATION"

_quiet = threading.Lock()


def _fresh_lock_in_child() -> None:
    global _quiet
    _quiet = threading.Lock()


os.register_at_fork(
    before=lambda: _quiet.acquire(),
    after_in_parent=lambda: _quiet.release(),
    after_in_child=_fresh_lock_in_child,
)


def is_child() -> bool:
    """True in a server generation started by the supervisor."""
    return LISTEN_FD_ENV in os.environ


def number() -> int:
    """Which generation of the run this process is (1 without the supervisor)."""
    value = os.environ.get(NUMBER_ENV, "")
    return int(value) if value.isdigit() else 1


def inherited_listener() -> socket.socket | None:
    """The socket the supervisor passed down, if this process is a server generation."""
    value = os.environ.get(LISTEN_FD_ENV)
    if not value:
        return None
    sock = socket.socket(fileno=int(value))
    sock.set_inheritable(False)
    return sock


def become_child() -> None:
    """Called first in a server generation: never outlive the supervisor, leave SIGHUP to it."""
    # SIGHUP is the supervisor's to act on (a reload); sent to the whole process group it
    # reaches this process and its fork-mode children too, which must ignore it. The
    # supervisor starts generations with SIGHUP blocked, so none is lost before this line.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
    die_with_parent(int(supervisor) if supervisor.isdigit() else None)


def report(state: str) -> None:
    """Tell the supervisor how far this generation got ("loaded", "ready")."""
    fd = os.environ.get(STATUS_FD_ENV, "")
    if fd.isdigit():
        # One short write to a pipe is atomic, so generations never interleave their lines.
        with contextlib.suppress(OSError):
            os.write(int(fd), f"{os.getpid()} {state}\n".encode())


def follow_changes(first: Callable[[], None]) -> None:
    """In a thread: call ``first``, then apply the supervisor's file-change messages
    (templates, translations)."""
    fd = os.environ.get(CHANGES_FD_ENV, "")
    if not fd.isdigit():
        return
    threading.Thread(
        target=_apply_changes, args=(int(fd), first), name="cserver-changes", daemon=True
    ).start()


def _apply_changes(fd: int, first: Callable[[], None]) -> None:
    with _quiet:
        first()
    pending = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        pending += data
        *lines, pending = pending.split(b"\n")
        with _quiet:
            apply_changes(lines)


def apply_changes(lines: list[bytes]) -> None:
    """Tell Django that these files changed (one path per line)."""
    from django.utils import autoreload

    for line in lines:
        if line:
            # Django's own receivers reset the template loaders and translation caches.
            # A receiver that fails must not end the thread: later edits still count.
            autoreload.file_changed.send_robust(sender=None, file_path=Path(os.fsdecode(line)))
