"""``--processes N``: a parent and N worker processes, each a full server on the one socket.

This is how Django usually runs in production (gunicorn ``-w N --threads M``): module
globals, local-memory caches and database connections exist once per process. The
parent forks the workers from the loaded project and then only supervises them:

* each worker builds its own server *after* the fork, with the factory it was given (so
  every mode make_server() knows works here, unchanged), and serves the shared socket;
* a worker that dies is replaced and the death logged; one that dies again right after
  starting is replaced after a growing pause, so a crash at start cannot become a fork
  storm;
* ``request_shutdown()`` (SIGTERM, SIGINT, or the reloader retiring this generation)
  sends SIGTERM to every worker, which drains like a single server, and waits for them;
* template and translation changes the reloader sends this generation go to every
  worker through a pipe of its own (the parent applies them too, for workers forked later);
* workers die with the parent (PR_SET_PDEATHSIG), as the parent dies with the supervisor.

The parent never starts a thread: its loop waits on a pipe that signal handlers write
to, so each fork happens in a single-threaded process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol

from cserver import generation
from cserver.delay import RandomDelay
from cserver.procutil import (
    die_with_parent,
    exit_description,
    exited_children,
    run_then_exit,
    signal_all,
)
from cserver.server.shared_limit import ConnectionBudget

logger = logging.getLogger("cserver")

# A worker that lives shorter than this counts as failing at start; each such failure in a
# row doubles the pause before the next replacement, up to the maximum.
QUICK_DEATH = 2.0
FIRST_PAUSE = 0.1
MAX_PAUSE = 5.0
# After the grace period, how long workers still get before SIGKILL.
KILL_AFTER = 2.0
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class Server(Protocol):
    """What a worker needs of the server the factory builds."""

    def serve_forever(self) -> None: ...

    def request_shutdown(self) -> None: ...


# Called in the worker right after the fork with the worker's index (0 to N-1; a
# replacement gets the index of the worker it replaces).
ServerFactory = Callable[[int], Server]


@dataclass
class Worker:
    index: int
    pid: int = 0
    started: float = 0.0
    changes_w: int = -1  # the parent's end of this worker's change pipe
    quick_deaths: int = 0  # deaths in a row soon after start
    start_at: float = 0.0  # when a dead worker is due to be replaced


class ProcessGroup:
    """Forks and supervises the worker processes; the surface runcserver serves through."""

    def __init__(
        self,
        factory: ServerFactory,
        count: int,
        listener_address: tuple,
        mode: str,
        *,
        grace_period: float,
        connection_limit: int,
        changes_fd: int | None = None,
        on_changes: Callable[[list[bytes]], None] | None = None,
        delay: RandomDelay | None = None,
    ) -> None:
        self.factory = factory
        self.count = count
        self.server_address = listener_address
        self.mode = mode
        self.grace_period = grace_period
        # The reloader's pipe of changed template/translation paths (one per line), and
        # what applies them in this process.
        self.changes_fd = changes_fd
        self.on_changes = on_changes
        # Worker 0's delay, for the banner: worker i draws from seed + i.
        self.delay = delay
        self.budget = ConnectionBudget(connection_limit, count)
        self.workers = [Worker(index) for index in range(count)]
        self._pid = os.getpid()
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid]

    def follow_changes(self, report: Callable[[], None]) -> None:
        """In a server generation: the workers apply the supervisor's changed templates and
        translations themselves (each follows its own pipe), so only ``report`` is left."""
        report()

    def request_shutdown(self) -> None:
        """Stop every worker gracefully; safe from a signal handler."""
        self._stopping = True
        self._wake()

    def _wake(self, *_: object) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def serve_forever(self) -> None:
        """Start the workers, keep them running until request_shutdown(), then drain them."""
        previous = signal.signal(signal.SIGCHLD, self._wake)
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        if self.changes_fd is not None:
            selector.register(self.changes_fd, selectors.EVENT_READ)
        try:
            for worker in self.workers:
                self._start(worker)
            while not self._stopping:
                for key, _ in selector.select(self._next_timeout()):
                    if key.fd == self._wake_r:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 4096)
                    else:
                        self._forward_changes(selector)
                self._reap()
                self._replace_due()
        finally:
            selector.close()
            self._stop_all()
            signal.signal(signal.SIGCHLD, previous)
            self.budget.close()

    # -- starting and replacing ----------------------------------------------------------

    def _start(self, worker: Worker) -> None:
        changes_r, worker.changes_w = os.pipe()
        os.set_blocking(worker.changes_w, False)
        sys.stdout.flush()
        sys.stderr.flush()
        # Until the child has its own handlers, a stop signal must not run the parent's.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            logger.error("cserver: cannot start worker process %d: %s", worker.index + 1, exc)
            os.close(changes_r)
            os.close(worker.changes_w)
            worker.changes_w = -1
            self._schedule(worker, quick=True)
            return
        if pid == 0:
            self._run_worker(worker, changes_r)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        os.close(changes_r)
        worker.pid = pid
        worker.started = time.monotonic()
        worker.start_at = 0.0

    def _run_worker(self, worker: Worker, changes_r: int) -> NoReturn:
        """In the child: build the server, serve until SIGTERM, exit; never return."""

        def serve() -> None:
            die_with_parent(self._pid)
            self._leave_parent_state(worker)
            server = self.factory(worker.index)
            share = getattr(server, "share_connection_limit", None)
            if share is not None:
                self.budget.attach(worker.index)
                share(self.budget)
            signal.signal(signal.SIGTERM, lambda *_: server.request_shutdown())
            # Ctrl-C reaches the whole process group: the parent decides, then sends SIGTERM.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            if self.changes_fd is not None:
                os.environ[generation.CHANGES_FD_ENV] = str(changes_r)
                generation.follow_changes(lambda: None)
            else:
                os.close(changes_r)
            number = f"{worker.index + 1}/{self.count}"
            print(f"cserver: worker process {number} started, pid {os.getpid()}", flush=True)
            server.serve_forever()

        run_then_exit(serve)

    def _leave_parent_state(self, worker: Worker) -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        if self.changes_fd is not None:
            os.close(self.changes_fd)
        for other in self.workers:
            if other.changes_w >= 0:
                with contextlib.suppress(OSError):
                    os.close(other.changes_w)

    def _schedule(self, worker: Worker, quick: bool) -> None:
        worker.quick_deaths = worker.quick_deaths + 1 if quick else 0
        pause = 0.0
        if worker.quick_deaths:
            pause = min(MAX_PAUSE, FIRST_PAUSE * 2 ** (worker.quick_deaths - 1))
        worker.start_at = time.monotonic() + pause

    def _replace_due(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if not worker.pid and worker.start_at and worker.start_at <= now:
                self._start(worker)

    def _next_timeout(self) -> float:
        due = [w.start_at for w in self.workers if not w.pid and w.start_at]
        if not due:
            return 1.0
        return max(0.0, min(due) - time.monotonic())

    def _reap(self) -> None:
        for pid, status in exited_children():
            worker = next((w for w in self.workers if w.pid == pid), None)
            if worker is None:
                continue
            self._forget(worker)
            if self._stopping:
                continue
            quick = time.monotonic() - worker.started < QUICK_DEATH
            self._schedule(worker, quick)
            pause = worker.start_at - time.monotonic()
            when = f"in {pause:.1f} s" if pause > 0.05 else "now"
            logger.warning(
                "cserver: worker process %d (pid %d) %s; starting a new one %s",
                worker.index + 1,
                pid,
                exit_description(status),
                when,
            )

    def _forget(self, worker: Worker) -> None:
        worker.pid = 0
        # The kernel closed the dead process's connections: its count goes with them.
        self.budget.clear(worker.index)
        if worker.changes_w >= 0:
            with contextlib.suppress(OSError):
                os.close(worker.changes_w)
            worker.changes_w = -1

    # -- template and translation changes ------------------------------------------------

    def _forward_changes(self, selector: selectors.BaseSelector) -> None:
        assert self.changes_fd is not None
        try:
            data = os.read(self.changes_fd, 65536)
        except OSError:
            data = b""
        if not data:
            selector.unregister(self.changes_fd)
            self.changes_fd = None
            return
        for worker in self.workers:
            if worker.changes_w >= 0:
                # A worker too busy to read a full pipe misses a message rather than
                # blocking the parent; the supervisor writes whole lines in one write.
                with contextlib.suppress(OSError):
                    os.write(worker.changes_w, data)
        if self.on_changes is not None:
            # Here too: a worker forked from now on must not start from the old caches.
            self.on_changes(data.split(b"\n"))

    # -- stopping ------------------------------------------------------------------------

    def _stop_all(self) -> None:
        for worker in self.workers:
            worker.start_at = 0.0
        signal_all(self.pids(), signal.SIGTERM)
        deadline = time.monotonic() + self.grace_period + KILL_AFTER / 2
        killed = False
        while self.pids():
            self._reap()
            if not self.pids():
                break
            if not killed and time.monotonic() > deadline:
                signal_all(self.pids(), signal.SIGKILL)
                killed = True
                deadline = time.monotonic() + KILL_AFTER
            elif killed and time.monotonic() > deadline:
                break
            time.sleep(0.02)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
