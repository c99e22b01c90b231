"""Starting one server generation: forked from the supervisor, from the warm process, or exec'd.

Whichever way it starts, a generation inherits the listening socket, the write end of the
status pipe (it reports "loaded", "ready" and its directories there), a stderr pipe of its
own (the error page's source, cserver.reload.errors) and the read end of its changes pipe
(templates and translations to reload without a restart).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.utils import autoreload

from cserver import generation
from cserver.generation import LISTEN_FD_ENV, STATUS_FD_ENV, SUPERVISOR_PID_ENV
from cserver.procutil import run_then_exit
from cserver.reload.errors import StderrTail
from cserver.reload.warm import WarmProcess

# How long the first generation waits for the warm process before it is exec'd instead.
FIRST_START_WAIT = 30.0


@dataclass
class Generation:
    pid: int
    tail: StderrTail
    changes_fd: int
    spawned: float
    # Set when a change or SIGHUP started it: (reason, seconds from the write to detection).
    trigger: tuple[str, float, float] | None = None
    loaded: float = 0.0
    debug_port: int | None = None  # its debugpy adapter's (--debugpy)
    dirs: set[Path] = field(default_factory=set)


class Launcher:
    """Starts generations on one socket; ``private_fds`` are the supervisor's own descriptors,
    closed in a child forked from it."""

    def __init__(self, listener: socket.socket, status_w: int, private_fds: Iterable[int]) -> None:
        self.listener = listener
        self.status_w = status_w
        self.private_fds = tuple(private_fds)
        self.env = {
            **os.environ,
            LISTEN_FD_ENV: str(listener.fileno()),
            SUPERVISOR_PID_ENV: str(os.getpid()),
            STATUS_FD_ENV: str(status_w),
        }
        self.args = autoreload.get_child_arguments()
        self.started = 0

    def start(
        self,
        trigger: tuple[str, float, float] | None,
        first: Callable[[], None] | None,
        early: WarmProcess | None,
        warm: WarmProcess | None,
        wait_for_warm: bool,
    ) -> Generation:
        """A new generation: ``first`` run in a fork of this process if given, else forked from
        the warm process if it is ready (``wait_for_warm``: wait for it), else exec'd."""
        stderr_r, stderr_w = os.pipe()
        changes_r, changes_w = os.pipe()
        spawned = time.monotonic()
        self.started += 1
        self.env[generation.NUMBER_ENV] = str(self.started)
        pid = None
        if first is not None:
            pid = self._fork_here(first, early, (stderr_r, changes_w), stderr_w, changes_r)
        if pid is None and warm is not None:
            if wait_for_warm:
                warm.wait_ready(FIRST_START_WAIT)
            pid = warm.fork(self.env, [self.listener.fileno(), self.status_w, stderr_w, changes_r])
        if pid is None:
            pid = self._exec(stderr_w, changes_r)
        os.close(stderr_w)
        os.close(changes_r)
        return Generation(pid, StderrTail(os.fdopen(stderr_r, "rb")), changes_w, spawned, trigger)

    def _fork_here(
        self,
        first: Callable[[], None],
        early: WarmProcess | None,
        parent_ends: tuple[int, int],
        stderr_w: int,
        changes_r: int,
    ) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return pid

        def start() -> None:
            if early is not None:
                early.detach()
            for fd in (*parent_ends, *self.private_fds):
                os.close(fd)
            os.dup2(stderr_w, 2)
            os.close(stderr_w)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            os.environ.update(
                {
                    key: self.env[key]
                    for key in (
                        LISTEN_FD_ENV,
                        SUPERVISOR_PID_ENV,
                        STATUS_FD_ENV,
                        generation.NUMBER_ENV,
                    )
                }
            )
            os.environ[generation.CHANGES_FD_ENV] = str(changes_r)
            first()

        run_then_exit(start)

    def _exec(self, stderr_w: int, changes_r: int) -> int:
        os.set_inheritable(changes_r, True)
        for fd in (self.listener.fileno(), self.status_w):
            os.set_inheritable(fd, True)
        env = {**self.env, generation.CHANGES_FD_ENV: str(changes_r)}
        return os.posix_spawn(
            self.args[0],
            self.args,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, stderr_w, 2)],
            # SIGHUP waits, blocked, until the generation ignores it (become_child).
            setsigmask={signal.SIGHUP},
        )
