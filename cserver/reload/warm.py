"""The supervisor's side of the warm process (cserver.reload.zygote) that generations fork from."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from cserver.reload.zygote import ZYGOTE_FD_ENV

# A fork answers in milliseconds; past this the warm process is taken as stuck.
FORK_TIMEOUT = 5.0


def split_program(args: list[str]) -> tuple[list[str], list[str]]:
    """Django's child arguments as (interpreter and its options, program and its arguments)."""
    for index in range(1, len(args)):
        if args[index] == "-m" or not args[index].startswith("-"):
            return args[:index], args[index:]
    return args, []


def preload_names(code_dirs: set[Path]) -> tuple[list[str], set[Path]]:
    """Modules this process loaded from outside the project: (names, their files)."""
    names, files = [], set()
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        if name in ("__main__", "__mp_main__") or not filename:
            continue
        path = Path(filename).resolve()
        ours = name == "cserver" or name.startswith("cserver.")
        if name.startswith("cserver.demo") or (path.parent in code_dirs and not ours):
            continue
        names.append(name)
        files.add(path)
    return names, files


class WarmProcess:
    """Starts, feeds and restarts the warm process; asks it for generations."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.interpreter, self.program = split_program(args)
        self.env = env
        self.names: list[str] | None = None
        self.files: set[Path] = set()
        self.channel: socket.socket | None = None
        self.pid = 0
        self.ready = False
        self.importing = False
        self._forked: set[int] = set()
        self._buf = b""
        if self.program:
            self._start()

    def feed(self, code_dirs: set[Path]) -> None:
        """Send the list of modules to import: the supervisor's own, less the project's."""
        self.names, self.files = preload_names({d.resolve() for d in code_dirs})
        self._send_preload()

    def _send_preload(self) -> None:
        if self.channel is not None and self.names is not None:
            self._send({"preload": self.names}, [])
            # Until it answers, a fork request would wait behind the imports: exec instead.
            self.importing = True

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        theirs.set_inheritable(True)
        env = {**self.env, ZYGOTE_FD_ENV: str(theirs.fileno())}
        argv = [*self.interpreter, "-m", "cserver.reload.zygote"]
        self.pid = os.posix_spawn(argv[0], argv, env, setsigmask={signal.SIGHUP})
        theirs.close()
        self.channel = ours
        self.ready = False
        self._buf = b""
        self._send_preload()

    def _send(self, message: dict, fds: list[int]) -> None:
        assert self.channel is not None
        body = json.dumps(message).encode()
        socket.send_fds(self.channel, [f"{len(body)}\n".encode() + body], fds)

    def _reply(self, timeout: float | None) -> dict | None:
        """The next message; None on timeout, or when the process is gone (channel dropped)."""
        assert self.channel is not None
        self.channel.settimeout(timeout)
        try:
            while b"\n" not in self._buf:
                chunk = self.channel.recv(65536)
                if not chunk:
                    self._drop()
                    return None
                self._buf += chunk
        except (TimeoutError, BlockingIOError):
            return None
        except OSError:
            self._drop()
            return None
        finally:
            if self.channel is not None:
                self.channel.settimeout(None)
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def _handle(self, reply: dict) -> None:
        if "warm" in reply:
            self.ready = True
        elif "preloaded" in reply:
            self.importing = False

    def poll(self) -> None:
        """The channel is readable: the warm process is warm, or done importing, or dead."""
        while self.channel is not None:
            reply = self._reply(0)
            if reply is None:
                return
            self._handle(reply)

    def wait_ready(self, timeout: float) -> None:
        """Wait until the warm process has imported what a generation needs (or died)."""
        deadline = time.monotonic() + timeout
        while not self.ready and self.channel is not None and time.monotonic() < deadline:
            reply = self._reply(max(0.0, deadline - time.monotonic()))
            if reply is not None:
                self._handle(reply)

    def fork(self, env: dict[str, str], fds: list[int]) -> int | None:
        """A new generation's pid, or None when the caller should exec one instead."""
        if not self.ready or self.importing or self.channel is None:
            return None
        try:
            self._send({"env": env, "cwd": os.getcwd(), "argv": self.program}, fds)
            reply = self._reply(FORK_TIMEOUT)
        except OSError:
            reply = None
        if reply and "pid" in reply:
            self._forked.add(reply["pid"])
            return int(reply["pid"])
        if reply and "refused" in reply:
            sys.stderr.write(f"cserver: not forking generations: {reply['refused']}\n")
            self.program = []  # for good: exec from now on
            self.close()
        else:
            self.restart()  # dead or stuck
        return None

    def forked(self, pid: int) -> bool:
        return pid in self._forked

    def exited(self, pid: int) -> bool:
        """Reaped ``pid``: True when it was the warm process (then a new one starts)."""
        self._forked.discard(pid)
        if pid != self.pid:
            return False
        self.pid = 0
        self._drop()
        if self.program:
            self._start()
        return True

    def check_stale(self, paths: Iterable[Path]) -> None:
        """A preloaded module's file changed (cserver itself, in an editable install)."""
        if any(p.resolve() in self.files for p in paths):
            self.restart()

    def restart(self) -> None:
        self.close()
        if self.program:
            self._start()

    def _drop(self) -> None:
        self.ready = False
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def detach(self) -> None:
        """In a child of the supervisor: let go of the channel, leave the process alone."""
        self._drop()
        self.pid = 0

    def close(self) -> None:
        self._drop()
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            # Its exit is reaped by the supervisor's waitpid(-1); forget the pid now.
            self.pid = 0


_early: WarmProcess | None = None


def start_early() -> None:
    """Start the warm process now, so that its imports overlap the supervisor's own start."""
    global _early
    from django.utils import autoreload

    if _early is None and sys.platform.startswith("linux"):
        _early = WarmProcess(autoreload.get_child_arguments(), dict(os.environ))


def take_early() -> WarmProcess | None:
    """The warm process start_early() started, if any; the caller owns it from now on."""
    global _early
    warm, _early = _early, None
    return warm
