"""Autoreload that keeps the listening socket: the supervisor and its state machine.

The supervisor binds once and runs the server as a child (a *generation*) that inherits
the socket. It watches the project's files itself (cserver.reload.filewatch). On a code change
it tells the current generation to stop (SIGTERM: stop accepting, finish the requests in
flight) and at once starts the next one on the same socket, so connections arriving
meanwhile wait in the listen backlog instead of being refused, which Django's reloader
(a child that binds the port again) cannot offer. The first generation is forked from
this process, whose project is loaded already; later ones from a warm process that has
imported Django and the installed packages but not the project (cserver.reload.zygote); with
``exec`` while it warms up, or where it cannot fork.

Forking is only safe where no other thread could hold a lock: this process forks once,
before its first thread (the watcher) starts, and otherwise starts processes with
``posix_spawn``; the warm process has no thread at all; in a generation, the one extra
thread (cserver.generation) never works across a fork.

Signals only queue an event and wake the main loop; every decision is taken there, in
one thread, on one state:

    RUNNING   a current generation exists (starting or serving); older ones may be
              retiring.
              code change, SIGHUP      -> retire the current one, start the next: RUNNING
              template / .mo change    -> forwarded to the current one: RUNNING
              the current one exits    -> ERROR (its traceback is the error)
    ERROR     no current generation; every request gets a 500 page with the error.
              code change, SIGHUP      -> start the next: RUNNING
    STOPPING  SIGTERM or SIGINT came, in any state: every generation (starting, serving
              or retiring) gets SIGTERM, nothing new starts; when all have exited (or
              after the grace period, killed), exit 0.

SIGCHLD queues a reap: generations are direct children (those forked from the warm
process are re-parented to this one, a child subreaper), reaped with ``waitpid``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from cserver.debug.proxy import DebugProxy
from cserver.procutil import become_subreaper, exited_children, signal_all
from cserver.reload import filewatch
from cserver.reload.errors import serve_error_until
from cserver.reload.spawn import Generation, Launcher
from cserver.reload.warm import WarmProcess, take_early

__all__ = ["Supervisor"]

RUNNING, ERROR, STOPPING = "running", "error", "stopping"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Supervisor:
    """Owns the socket and the generations; exits 0 on SIGTERM or SIGINT after the drain."""

    def __init__(
        self,
        listener: socket.socket,
        grace_period: float,
        first: Callable[[], None] | None = None,
        debug_listener: socket.socket | None = None,
    ) -> None:
        self.listener = listener
        # The IDE's port (--debugpy): forwarded to the adapter of the current generation.
        self.debug_listener = debug_listener
        self.debug: DebugProxy | None = None
        # Serves the first generation in a child forked from this very process, whose
        # project is loaded already: the first start skips a second interpreter's imports.
        self.first = first
        self.grace_period = grace_period
        self.state = RUNNING
        self.error = ""
        self.generations: dict[int, Generation] = {}
        self.current: Generation | None = None
        self.events: deque[tuple] = deque()
        self.extra_dirs: set[Path] = set()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._status_r, self._status_w = os.pipe()
        self._status_buf = b""
        self.warm: WarmProcess | None = None
        self._stop_deadline = 0.0

    def watch_also(self, path: Path | None) -> None:
        """Watch the directory of a file whose import failed, so its fix is seen."""
        if path is not None:
            self.extra_dirs.add(path.resolve().parent)

    # Signal handlers and the watcher thread only queue and wake.
    def _queue(self, *event: object) -> None:
        self.events.append(event)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _on_signal(self, signum: int, frame: object) -> None:
        self._queue("signal", signum)

    def _on_change(self, paths: set[Path]) -> None:
        self._queue("change", paths, filewatch.detect_delay(paths), time.monotonic())

    def run(self) -> int:
        for sig in (*_STOP_SIGNALS, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        private = [self._wake_r, self._wake_w, self._status_r]
        if self.debug_listener is not None:
            private.append(self.debug_listener.fileno())
        self.launcher = Launcher(self.listener, self._status_w, private)
        early = take_early()
        if self.first is not None:
            # Before the watcher thread exists: a fork must find this process single-threaded.
            self._spawn(None, early)
        if self.debug_listener is not None:
            # A thread: only after the fork above.
            self.debug = DebugProxy(self.debug_listener)
            self.debug.start()
        code_dirs = filewatch.project_dirs() | self.extra_dirs
        self.watch = filewatch.Watch(code_dirs, filewatch.restartless_globs())
        self.watcher = filewatch.Watcher(self.watch, self._on_change)
        self.watcher.start()
        # runserver's own line, through the same logger, so its output looks familiar.
        logging.getLogger("django.utils.autoreload").info(
            "Watching for file changes with %s", self.watcher.kind
        )
        if become_subreaper():
            self.warm = early or WarmProcess(self.launcher.args, self.launcher.env)
        elif early is not None:
            early.close()
        self._packages = filewatch.packages_stamp()
        if self.current is None:
            self._spawn(None)
        if self.warm is not None:
            # Only now: the first generation should not wait behind these imports.
            self.warm.feed(code_dirs)
        try:
            while self.state != STOPPING or self.generations:
                self._wait_for_events()
                self._handle_events()
        finally:
            self.watcher.stop()
            if self.warm is not None:
                self.warm.close()
            if self.debug is not None:
                self.debug.close()
        return 0

    def _wait_for_events(self) -> None:
        if self.state == ERROR:
            serve_error_until(self.listener, self.error, lambda: bool(self.events))
            return
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(self._status_r, selectors.EVENT_READ)
            if self.warm is not None and self.warm.channel is not None:
                selector.register(self.warm.channel, selectors.EVENT_READ)
            for key, _ in selector.select(1.0):
                if key.fileobj == self._status_r:
                    self._read_status()
                elif key.fileobj == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                elif self.warm is not None:
                    self.warm.poll()

    def _handle_events(self) -> None:
        events = []
        while self.events:  # popleft, not a copy and clear(): the watcher thread appends
            events.append(self.events.popleft())
        self._reap()
        if any(e[0] == "signal" and e[1] in _STOP_SIGNALS for e in events):
            self._stop()
        if self.state == STOPPING:
            if time.monotonic() > self._stop_deadline:
                self._kill_all(signal.SIGKILL)
            return
        self._check_packages()
        reload: tuple[str, float, float] | None = None
        restartless: set[Path] = set()
        for event in events:
            if event[0] == "signal" and event[1] == signal.SIGHUP:
                reload = ("SIGHUP", 0.0, time.monotonic())
            elif event[0] == "change":
                _kind, paths, detect, seen = event
                code = sorted(str(p) for p in paths if self.watch.is_code(p))
                if code:
                    reload = (code[0], detect, seen)
                    if self.warm is not None:
                        self.warm.check_stale(paths)
                restartless.update(p for p in paths if not self.watch.is_code(p))
        if reload is not None:
            self._reload(reload)
        elif restartless and self.current is not None:
            data = b"".join(os.fsencode(p) + b"\n" for p in sorted(restartless))
            with contextlib.suppress(OSError):
                os.write(self.current.changes_fd, data)

    def _reload(self, trigger: tuple[str, float, float]) -> None:
        if self.current is not None:
            self._retire(self.current)
        self.state = RUNNING
        self._spawn(trigger)

    def _retire(self, old: Generation) -> None:
        # A generation still starting dies of the signal, which is as good: it is replaced.
        with contextlib.suppress(ProcessLookupError):
            os.kill(old.pid, signal.SIGTERM)
        if self.current is old:
            self.current = None

    def _stop(self) -> None:
        if self.state != STOPPING:
            self.state = STOPPING
            self._stop_deadline = time.monotonic() + self.grace_period + 5
        self._kill_all(signal.SIGTERM)
        self.current = None

    def _kill_all(self, sig: int) -> None:
        signal_all(self.generations, sig)

    def _spawn(
        self, trigger: tuple[str, float, float] | None, early: WarmProcess | None = None
    ) -> None:
        first, self.first = self.first, None
        if threading.active_count() != 1:
            first = None  # a fork is safe only while this process has no other thread
        # The first generation: better to wait for the warm process than to import
        # everything a second time beside it.
        wait = self.current is None and not self.generations
        self.current = self.launcher.start(trigger, first, early, self.warm, wait_for_warm=wait)
        self.generations[self.current.pid] = self.current

    def _reap(self) -> None:
        for pid, status in exited_children():
            if self.warm is not None and self.warm.exited(pid):
                continue
            gone = self.generations.pop(pid, None)
            if gone is None:
                continue
            with contextlib.suppress(OSError):
                os.close(gone.changes_fd)
            if gone.debug_port is not None and self.debug is not None:
                self.debug.retire(gone.debug_port)
            if gone is self.current and self.state == RUNNING:
                self.current = None
                # Its last words, for the error page. Only here: a retiring fork-mode
                # generation's children may hold its stderr open for a while yet.
                gone.tail.join(2)
                self._failed(gone, os.waitstatus_to_exitcode(status))

    def _failed(self, gone: Generation, code: int) -> None:
        # An import error, say: keep the socket, show the error to every request, start
        # again on the next save, as runserver's reloader waits for a fix.
        sys.stderr.write(
            f"cserver: server exited with status {code}; serving the error until a file changes.\n"
        )
        sys.stderr.flush()
        self.error = gone.tail.last_error() or f"exit status {code}"
        self.state = ERROR
        if self.debug is not None:
            self.debug.switch(None)  # an IDE attaching now waits for the fixed generation

    def _read_status(self) -> None:
        with contextlib.suppress(OSError):
            self._status_buf += os.read(self._status_r, 65536)
        *lines, self._status_buf = self._status_buf.split(b"\n")
        now = time.monotonic()
        for line in lines:
            pid_text, _, rest = line.decode(errors="replace").partition(" ")
            state, _, arg = rest.partition(" ")
            gen = self.generations.get(int(pid_text)) if pid_text.isdigit() else None
            if gen is None:
                continue
            if state == "loaded":
                gen.loaded = now
            elif state == "dir":
                self._watch_more(Path(arg))
            elif state == "ready":
                self._log_timing(gen, now)
            elif state == "debugpy" and arg.isdigit():
                gen.debug_port = int(arg)
                if gen is self.current and self.debug is not None:
                    self.debug.switch(gen.debug_port)

    def _watch_more(self, directory: Path) -> None:
        if directory.resolve() in self.watch.code_dirs:
            return
        if any(directory.resolve().is_relative_to(r) for r in filewatch.installed_roots()):
            return
        self.watch.code_dirs.add(directory.resolve())
        # The set of watched directories is fixed per watcher: start one with the new set.
        self.watcher.stop()
        self.watcher = filewatch.Watcher(self.watch, self._on_change)
        self.watcher.start()

    def _log_timing(self, gen: Generation, ready: float) -> None:
        if gen.trigger is None:
            return
        reason, detect, seen = gen.trigger
        loaded = gen.loaded or ready
        total = detect + ready - seen
        how = "forked" if self.warm is not None and self.warm.forked(gen.pid) else "exec"
        print(
            f"cserver: reloaded in {total * 1000:.0f} ms (detect {detect * 1000:.0f} ms, "
            f"start {(loaded - seen) * 1000:.0f} ms, ready {(ready - loaded) * 1000:.0f} ms, "
            f"{how}) after {reason}",
            flush=True,
        )

    def _check_packages(self) -> None:
        stamp = filewatch.packages_stamp()
        if stamp != self._packages:
            self._packages = stamp
            if self.warm is not None:
                # Installed packages changed: the warm process holds the old ones.
                print("cserver: installed packages changed; restarting the warm process.")
                sys.stdout.flush()
                self.warm.restart()
