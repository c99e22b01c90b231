"""The supervisor's side of the warm process (cserver.zygote) that generations fork from."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Iterable
from pathlib import Path

from cserver.zygote import ZYGOTE_FD_ENV

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

    def __init__(
        self, args: list[str], env: dict[str, str], pass_fds: list[int], code_dirs: set[Path]
    ) -> None:
        self.interpreter, self.program = split_program(args)
        self.env = env
        self.pass_fds = pass_fds
        self.names, self.files = preload_names({d.resolve() for d in code_dirs})
        self.channel: socket.socket | None = None
        self.pid = 0
        self.ready = False
        self._forked: set[int] = set()
        self._buf = b""
        if self.program:
            self._start()

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        for fd in (*self.pass_fds, theirs.fileno()):
            os.set_inheritable(fd, True)
        env = {**self.env, ZYGOTE_FD_ENV: str(theirs.fileno())}
        argv = [*self.interpreter, "-m", "cserver.zygote"]
        self.pid = os.posix_spawn(argv[0], argv, env, setsigmask={signal.SIGHUP})
        theirs.close()
        self.channel = ours
        self.ready = False
        self._buf = b""
        self._send({"preload": self.names}, [])

    def _send(self, message: dict, fds: list[int]) -> None:
        assert self.channel is not None
        body = json.dumps(message).encode()
        socket.send_fds(self.channel, [f"{len(body)}\n".encode() + body], fds)

    def _reply(self, timeout: float | None) -> dict | None:
        assert self.channel is not None
        self.channel.settimeout(timeout)
        try:
            while b"\n" not in self._buf:
                chunk = self.channel.recv(65536)
                if not chunk:
                    return None
                self._buf += chunk
        except (TimeoutError, BlockingIOError):
            return None
        finally:
            self.channel.settimeout(None)
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def poll(self) -> None:
        """The channel is readable: the warm process finished importing (or died)."""
        if self.channel is None:
            return
        reply = self._reply(0)
        if reply is None:
            self._drop()
        elif "warm" in reply:
            self.ready = True

    def fork(self, env: dict[str, str], fds: list[int]) -> int | None:
        """A new generation's pid, or None when the caller should exec one instead."""
        if not self.ready or self.channel is None:
            return None
        try:
            self._send({"env": env, "cwd": os.getcwd(), "argv": self.program}, fds)
            reply = self._reply(FORK_TIMEOUT)
        except OSError:
            reply = None
        if not reply or "pid" not in reply:
            if reply and "refused" in reply:
                sys.stderr.write(f"cserver: not forking generations: {reply['refused']}\n")
            self.restart() if reply is None else self._drop()
            return None
        self._forked.add(reply["pid"])
        return int(reply["pid"])

    def forked(self, pid: int) -> bool:
        return pid in self._forked

    def exited(self, pid: int) -> bool:
        """Reaped ``pid``: True when it was the warm process (then a new one starts)."""
        self._forked.discard(pid)
        if pid != self.pid:
            return False
        self.pid = 0
        self._drop()
        self._start()
        return True

    def check_stale(self, paths: Iterable[Path]) -> None:
        """A preloaded module's file changed (cserver itself, in an editable install)."""
        if any(p.resolve() in self.files for p in paths):
            self.restart()

    def restart(self) -> None:
        self.close()
        self._start()

    def _drop(self) -> None:
        self.ready = False
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def close(self) -> None:
        self._drop()
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            # Its exit is reaped by the supervisor's waitpid(-1); forget the pid now.
            self.pid = 0
