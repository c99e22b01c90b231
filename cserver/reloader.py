"""Autoreload that keeps the listening socket.

The supervisor binds once and runs the server as a child that inherits the socket. When
code changes the child stops accepting, finishes its in-flight requests and exits with
status 3; the supervisor starts the next generation on the same socket. Connections that
arrive in between wait in the listen backlog instead of being refused, which is what
Django's reloader (a child that binds the port again) cannot offer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.utils import autoreload

from cserver.reload_errors import StderrTail, serve_error_until
from cserver.server.fork import die_with_parent

logger = logging.getLogger("cserver")

LISTEN_FD_ENV = "CSERVER_LISTEN_FD"
GENERATION_STARTED_ENV = "CSERVER_GENERATION_STARTED"
SUPERVISOR_PID_ENV = "CSERVER_SUPERVISOR_PID"
RELOAD_EXIT_CODE = 3


def is_child() -> bool:
    return LISTEN_FD_ENV in os.environ


def inherited_listener() -> socket.socket | None:
    """The socket the supervisor passed down, if this process is a server generation."""
    value = os.environ.get(LISTEN_FD_ENV)
    if not value:
        return None
    sock = socket.socket(fileno=int(value))
    sock.set_inheritable(False)
    return sock


def become_child() -> None:
    """Called first in a server generation: never outlive the supervisor."""
    die_with_parent(signal.SIGKILL)
    # The supervisor may have died before prctl() took effect. Compare with its pid, not
    # with 1: in a container without an init process the supervisor is PID 1.
    supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
    if supervisor.isdigit() and os.getppid() != int(supervisor):
        os._exit(1)


def watch_code(on_change: Callable[[str], None]) -> None:
    """Run Django's file watcher (StatReloader, or Watchman when installed) in a thread."""
    reloader: autoreload.BaseReloader = autoreload.get_reloader()

    def notify_file_changed(path: Path) -> None:
        # As Django's, but a change asks for a graceful reload instead of sys.exit(3):
        # template and static files stay handled by their own receivers, without a restart.
        results = autoreload.file_changed.send(sender=reloader, file_path=path)
        if not any(result for _receiver, result in results):
            on_change(str(path))

    reloader.notify_file_changed = notify_file_changed
    if isinstance(reloader, autoreload.StatReloader):
        # Django polls once a second; twice halves the wait before a reload starts, for
        # the cost of one more stat() of each watched file per second.
        reloader.SLEEP_TIME = 0.5
    for directory in project_dirs():
        reloader.watch_dir(directory, "*.py")
    started = float(os.environ.get(GENERATION_STARTED_ENV) or time.time())
    watched_files = reloader.watched_files

    def catch_up(sender: object, **kwargs: object) -> None:
        # A save that landed while this generation was starting predates the watcher's
        # first snapshot, which would take it as the baseline and never reload for it.
        if sender is not reloader:
            return
        now = time.time()
        for path in watched_files():
            if path.suffix != ".py":
                continue
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if started < mtime <= now + 1:
                on_change(str(path))
                return

    autoreload.autoreload_started.connect(catch_up, weak=False)
    # runserver's own line, through the same logger, so its output looks familiar.
    logging.getLogger("django.utils.autoreload").info(
        "Watching for file changes with %s", reloader.__class__.__name__
    )
    main = threading.main_thread()
    threading.Thread(
        target=reloader.run, args=(main,), name="cserver-reloader", daemon=True
    ).start()


def project_dirs() -> set[Path]:
    """Directories of the project's own modules (not the standard library or site-packages).

    Watching every ``*.py`` in them catches a fix to a module whose import failed, which
    is then missing from sys.modules and so from Django's own list of watched files.
    """
    installed = {
        Path(p).resolve() for key, p in sysconfig.get_paths().items() if key.endswith("lib")
    }
    dirs = set()
    for path in autoreload.iter_all_python_module_files():
        parent = path.parent
        if not any(parent.is_relative_to(root) for root in installed):
            dirs.add(parent)
    return dirs


def _snapshot(dirs: set[Path]) -> dict[Path, float]:
    stamps = {}
    files = set(autoreload.iter_all_python_module_files())
    for directory in dirs:
        files.update(directory.glob("*.py"))
    for path in files:
        try:
            stamps[path] = path.stat().st_mtime
        except OSError:
            continue
    return stamps


class Supervisor:
    """Owns the socket and the generations; exits 0 on SIGTERM or SIGINT after the drain.

    A generation that sees a change signals SIGUSR1 before it drains, so the next one
    boots while the old one finishes its requests: the reload costs one start-up, not a
    drain plus a start-up.
    """

    def __init__(self, listener: socket.socket, grace_period: float) -> None:
        self.listener = listener
        self.grace_period = grace_period
        self.child: subprocess.Popen | None = None
        self.retiring: list[subprocess.Popen] = []
        self.stopping = False
        self.next_generation = False
        # Directories to watch besides those of the loaded modules (see watch_also).
        self.extra_dirs: set[Path] = set()

    def watch_also(self, path: Path | None) -> None:
        """Watch the directory of a file whose import failed, so its fix is seen."""
        if path is not None:
            self.extra_dirs.add(path.resolve().parent)

    def _signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            self._send(signal.SIGHUP)
        elif signum == signal.SIGUSR1:
            self.next_generation = True
        else:
            self.stopping = True
            self._send(signal.SIGTERM, everyone=True)

    def _send(self, sig: int, everyone: bool = False) -> None:
        targets = [self.child, *(self.retiring if everyone else [])]
        for child in targets:
            if child is not None and child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(sig)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, self._signal)
        fd = self.listener.fileno()
        os.set_inheritable(fd, True)
        env = {**os.environ, LISTEN_FD_ENV: str(fd), SUPERVISOR_PID_ENV: str(os.getpid())}
        args = autoreload.get_child_arguments()
        while True:
            env[GENERATION_STARTED_ENV] = repr(time.time())
            # stderr goes through us so that a failed generation's traceback can be shown.
            self.child = subprocess.Popen(args, env=env, pass_fds=(fd,), stderr=subprocess.PIPE)
            assert self.child.stderr is not None
            tail = StderrTail(self.child.stderr)
            code = self._wait()
            if code is None:
                # The old generation is draining; the new one starts now, beside it.
                self.retiring.append(self.child)
                continue
            tail.join(2)
            if self.stopping:
                self._wait_retiring()
                return 0
            if code == RELOAD_EXIT_CODE:
                continue
            # The generation failed (an import error, say): keep the socket, show the error
            # to every request, and start again on the next save, as runserver's reloader
            # waits for a fix instead of exiting.
            sys.stderr.write(
                f"cserver: server exited with status {code}; "
                "serving the error until a file changes.\n"
            )
            sys.stderr.flush()
            if not self._serve_error_until_change(tail.last_error() or f"exit status {code}"):
                self._wait_retiring()
                return 0

    def _wait(self) -> int | None:
        """The current generation's exit status, or None when it asked for a successor."""
        assert self.child is not None
        self.next_generation = False
        while True:
            try:
                code = self.child.poll()
                if code is not None:
                    return code
                if self.next_generation and not self.stopping:
                    return None
                self.retiring = [old for old in self.retiring if old.poll() is None]
                time.sleep(0.02)
            except KeyboardInterrupt:
                self.stopping = True
                self._send(signal.SIGTERM, everyone=True)

    def _wait_retiring(self) -> None:
        for old in self.retiring:
            with contextlib.suppress(subprocess.TimeoutExpired):
                old.wait(self.grace_period + 5)

    def _serve_error_until_change(self, error: str) -> bool:
        dirs = project_dirs() | self.extra_dirs
        before = _snapshot(dirs)
        state = {"next": 0.0, "changed": False}

        def done() -> bool:
            if self.stopping or state["changed"]:
                return True
            now = time.monotonic()
            if now >= state["next"]:
                state["next"] = now + 0.3
                state["changed"] = _snapshot(dirs) != before
            return bool(state["changed"])

        serve_error_until(self.listener, error, done)
        return not self.stopping
