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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.utils import autoreload

from cserver.server.fork import die_with_parent

logger = logging.getLogger("cserver")

LISTEN_FD_ENV = "CSERVER_LISTEN_FD"
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
    if os.getppid() == 1:
        os._exit(1)


def watch_code(on_change: Callable[[str], None]) -> None:
    """Run Django's file watcher (StatReloader, or Watchman when installed) in a thread."""
    reloader = autoreload.get_reloader()

    def notify_file_changed(path: Path) -> None:
        # As Django's, but a change asks for a graceful reload instead of sys.exit(3):
        # template and static files stay handled by their own receivers, without a restart.
        results = autoreload.file_changed.send(sender=reloader, file_path=path)
        if not any(result for _receiver, result in results):
            on_change(str(path))

    reloader.notify_file_changed = notify_file_changed
    main = threading.main_thread()
    threading.Thread(
        target=reloader.run, args=(main,), name="cserver-reloader", daemon=True
    ).start()


def _project_files() -> Iterator[Path]:
    yield from autoreload.iter_all_python_module_files()
    yield from Path.cwd().rglob("*.py")


def _snapshot() -> dict[Path, float]:
    stamps = {}
    for path in _project_files():
        try:
            stamps[path] = path.stat().st_mtime
        except OSError:
            continue
    return stamps


class Supervisor:
    """Owns the socket and the generations; exits 0 on SIGTERM or SIGINT after the drain."""

    def __init__(self, listener: socket.socket, grace_period: float) -> None:
        self.listener = listener
        self.grace_period = grace_period
        self.child: subprocess.Popen | None = None
        self.stopping = False

    def _signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            self._send(signal.SIGHUP)
            return
        self.stopping = True
        self._send(signal.SIGTERM)

    def _send(self, sig: int) -> None:
        if self.child is not None and self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(sig)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        fd = self.listener.fileno()
        os.set_inheritable(fd, True)
        env = {**os.environ, LISTEN_FD_ENV: str(fd)}
        args = autoreload.get_child_arguments()
        while True:
            self.child = subprocess.Popen(args, env=env, pass_fds=(fd,))
            code = self._wait()
            if self.stopping:
                return 0
            if code == RELOAD_EXIT_CODE:
                continue
            # The generation failed (an import error, say): keep the socket and wait for
            # the next save instead of exiting, as runserver's reloader does.
            sys.stderr.write(
                f"cserver: server exited with status {code}; "
                "waiting for a file change to restart.\n"
            )
            sys.stderr.flush()
            if not self._wait_for_change():
                return 0

    def _wait(self) -> int:
        assert self.child is not None
        while True:
            try:
                return self.child.wait()
            except KeyboardInterrupt:
                self.stopping = True
                self._send(signal.SIGTERM)

    def _wait_for_change(self) -> bool:
        before = _snapshot()
        while not self.stopping:
            time.sleep(0.5)
            if _snapshot() != before:
                return True
        return False
