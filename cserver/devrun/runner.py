"""Run the web server and the side processes together, as a Procfile runner would, for Django.

Every child starts in a session (and so a process group) of its own: a Celery worker's pool
or runcserver's server generations are stopped with it, by signalling the group, and a
Ctrl-C at the terminal reaches `cserver dev` alone, which then stops each group in order
instead of every process at once. The guard (guard.py) stops the groups when `cserver dev`
itself is killed without a chance to do it.

All decisions are taken by one loop in the main thread: starting, restarting after a crash
(with back-off) or a code change, and stopping. Threads only read the children's output and
report file changes, so no two decisions race.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from cserver.devrun.guard import GroupGuard
from cserver.devrun.output import Output
from cserver.procutil import exit_description, group_alive

TAIL_LINES = 10
SHOWN_TAIL = 5
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# A process that ran this long before exiting was working: its next crash starts the
# back-off from the beginning again.
HEALTHY_UPTIME = 10.0
TICK = 0.1


@dataclass(frozen=True)
class Spec:
    """What to run under one name."""

    name: str
    argv: Sequence[str]
    reload: bool = False
    web: bool = False


@dataclass
class _Child:
    spec: Spec
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    backoff: float = 0.0
    restart_at: float | None = None
    # Why the running process was asked to stop, when it was: its exit then is no crash.
    stopping_for: str | None = None
    kill_at: float | None = None
    reader: threading.Thread | None = None


def _backoff(previous: float, uptime: float) -> float:
    """1, 2, 4 ... 30 s between restarts of a process that keeps crashing."""
    if uptime >= HEALTHY_UPTIME or previous <= 0:
        return FIRST_BACKOFF
    return min(previous * 2, MAX_BACKOFF)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class DevRunner:
    """Starts the processes, keeps the side ones running, stops them all within the grace."""

    def __init__(
        self,
        specs: Sequence[Spec],
        output: Output,
        *,
        grace: float,
        env: dict[str, str],
        cwd: Path,
        watch: Callable[[Callable[[set[Path]], None]], Callable[[], None]] | None = None,
    ) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._out = output
        self._grace = grace
        self._env = env
        self._cwd = cwd
        self._watch = watch
        self._changes: queue.SimpleQueue[set[Path]] = queue.SimpleQueue()
        self._signals: list[int] = []
        self._wake = threading.Event()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Run until web exits (its status) or a stop signal comes (0 after a clean stop)."""
        guard = GroupGuard(self._grace)
        self._guard = guard
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in stops}
        stop_watch = None
        try:
            for child in self._children:
                self._start(child)
            if self._watch and any(c.spec.reload for c in self._children):
                stop_watch = self._watch(self._on_change)
            return self._loop()
        finally:
            if stop_watch:
                stop_watch()
            self._stop_all()
            guard.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self) -> int:
        while True:
            if self._signals:
                name = signal.Signals(self._signals[0]).name
                self._out.say(f"{name} received: stopping every process (grace {self._grace:g} s)")
                return 0
            now = time.monotonic()
            for child in self._children:
                web_status = self._tend(child, now)
                if web_status is not None:
                    return web_status
            self._reload_changed()
            self._wake.wait(TICK)
            self._wake.clear()

    def _tend(self, child: _Child, now: float) -> int | None:
        """Notice an exit, enforce a reload's grace, start what is due; web's exit status."""
        if child.proc is not None:
            status = child.proc.poll()
            if status is not None:
                return self._exited(child, status, now)
            if child.kill_at is not None and now >= child.kill_at:
                self._out.say(f"{child.spec.name} did not stop within {self._grace:g} s: SIGKILL")
                _killpg(child.proc.pid, signal.SIGKILL)
                child.kill_at = None
        elif child.restart_at is not None and now >= child.restart_at:
            self._start(child)
        return None

    def _exited(self, child: _Child, returncode: int, now: float) -> int | None:
        """Handle one exit; web's exit status when it is web (everything then stops)."""
        uptime = now - child.started
        proc, reason = child.proc, child.stopping_for
        child.proc, child.stopping_for, child.kill_at = None, None, None
        if child.reader:
            child.reader.join(timeout=1)
        assert proc is not None
        self._guard.ended(proc.pid)
        self._reap_group(proc.pid)
        if reason is not None:  # asked to stop for a reload: start the new code at once
            child.restart_at = now
            return None
        described = exit_description(_wait_status(returncode))
        if child.spec.web:
            self._out.say(f"{child.spec.name} {described} after {_duration(uptime)}: stopping")
            return returncode if returncode > 0 else 1 if returncode < 0 else 0
        child.backoff = _backoff(child.backoff, uptime)
        child.restart_at = now + child.backoff
        lines = list(child.tail)[-SHOWN_TAIL:]
        head = f"{child.spec.name} {described} after {_duration(uptime)}"
        head += f"; restarting in {child.backoff:g} s"
        self._out.say(head + ("; last lines:" if lines else " (no output)"))
        for line in lines:
            self._out.say(f"  {child.spec.name}: {line}")
        return None

    # -- starting and stopping ---------------------------------------------------------------

    def _start(self, child: _Child) -> None:
        child.restart_at = None
        child.tail.clear()
        try:
            proc = subprocess.Popen(
                list(child.spec.argv),
                cwd=self._cwd,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            # A command that is not installed is a crash like any other: reported, retried.
            child.backoff = _backoff(child.backoff, 0.0)
            child.restart_at = time.monotonic() + child.backoff
            self._out.say(
                f"{child.spec.name}: cannot start {child.spec.argv[0]!r}: {exc.strerror}; "
                f"retrying in {child.backoff:g} s"
            )
            if child.spec.web:
                raise
            return
        self._guard.started(proc.pid)
        child.proc, child.started = proc, time.monotonic()
        self._out.say(f"{child.spec.name} started (pid {proc.pid}): {' '.join(child.spec.argv)}")
        name = f"cserver-dev-{child.spec.name}"
        child.reader = threading.Thread(
            target=self._read, args=(child, proc), name=name, daemon=True
        )
        child.reader.start()

    def _read(self, child: _Child, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for raw in proc.stdout:
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                child.tail.append(text)
                self._out.line(child.spec.name, text)
        self._wake.set()

    def _stop_all(self) -> None:
        """SIGTERM to every group; SIGKILL to what is left after the grace, or on a 2nd signal."""
        running = [c.proc for c in self._children if c.proc is not None]
        for child in self._children:
            child.restart_at = None
        groups = [p.pid for p in running]
        for pgid in groups:
            _killpg(pgid, signal.SIGTERM)
        seen = len(self._signals)
        deadline = time.monotonic() + self._grace
        while any(group_alive(g) for g in groups):
            for proc in running:
                proc.poll()
            if time.monotonic() >= deadline or len(self._signals) > max(seen, 1):
                left = [g for g in groups if group_alive(g)]
                self._out.say(f"killing what is still running (groups {left}) with SIGKILL")
                for pgid in left:
                    _killpg(pgid, signal.SIGKILL)
                break
            time.sleep(0.05)
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
            self._guard.ended(proc.pid)
        for child in self._children:
            if child.reader:
                child.reader.join(timeout=1)
            child.proc = None

    def _reap_group(self, pgid: int) -> None:
        """What a crashed leader left in its group (a pool child) goes with it."""
        if group_alive(pgid):
            _killpg(pgid, signal.SIGTERM)

    # -- signals and file changes --------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)
        self._wake.set()

    def _on_change(self, paths: set[Path]) -> None:
        self._changes.put(paths)
        self._wake.set()

    def _reload_changed(self) -> None:
        changed: set[Path] = set()
        while True:
            try:
                changed |= self._changes.get_nowait()
            except queue.Empty:
                break
        if not changed:
            return
        names = ", ".join(sorted(_shown(p, self._cwd) for p in changed)[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        for child in self._children:
            if not child.spec.reload:
                continue
            if child.proc is None:  # waiting out a back-off: the fix may be in this edit
                child.backoff = 0.0
                child.restart_at = time.monotonic()
                continue
            if child.stopping_for is None:
                self._out.say(f"{child.spec.name}: {names}{more} changed, restarting")
                child.stopping_for = "reload"
                child.kill_at = time.monotonic() + self._grace
                _killpg(child.proc.pid, signal.SIGTERM)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_status(returncode: int) -> int:
    """Popen's returncode (negative for a signal) as a wait status for exit_description."""
    return -returncode if returncode < 0 else returncode << 8


def _shown(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)
