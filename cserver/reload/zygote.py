"""A warm process that server generations are forked from, so a reload skips the imports.

The supervisor starts it as early as it can (``python -m cserver.reload.zygote``); it imports
what every generation needs (Django's management and server parts, pydantic, cserver),
says it is warm, and later gets the names of the other modules the supervisor loaded from
outside the project (third-party apps, say) to import too. It imports them with
``DJANGO_SETTINGS_MODULE`` unset, so nothing can import the project's settings or code,
which every generation must load fresh. Then, for each request, it forks: the child
forks the generation and exits at once, so the generation is re-parented to the
supervisor (a child subreaper) and is its direct child, as one started by ``exec`` is.

Forking is only safe with no other thread alive (a thread holding a lock at the moment
of the fork leaves the child with a lock no one releases): this process never starts
one, and it refuses to fork, which sends the supervisor back to exec, when an import did.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import signal
import socket
import sys
import threading
import time
import warnings

from cserver.procutil import die_with_parent, run_then_exit, set_process_name

ZYGOTE_FD_ENV = "CSERVER_ZYGOTE_FD"
SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"
# The name the warm process shows in ps and /proc/PID/comm.
PROCESS_NAME = "cserver-warm"
BASE_PRELOAD = ["cserver.management.commands.runcserver", "cserver.generation"]


def preload(names: list[str]) -> int:
    """Import what can be imported without the project's settings; how many modules loaded."""
    settings = os.environ.pop(SETTINGS_ENV, None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in names:
                if name in sys.modules:
                    continue
                # Modules that need settings or a ready app registry (models) fail here and
                # are imported by the generation instead.
                with contextlib.suppress(Exception):
                    importlib.import_module(name)
    finally:
        if settings is not None:
            os.environ[SETTINGS_ENV] = settings
    return len(sys.modules)


def serve(channel: socket.socket) -> None:
    """Import or fork, as each message asks, until the supervisor closes the channel."""
    while True:
        message, fds = _receive(channel)
        if message is None:
            return
        if "preload" in message:
            _send(channel, {"preloaded": preload(message["preload"])})
            continue
        if threading.active_count() > 1:
            _send(channel, {"refused": "a preloaded module started a thread"})
            for fd in fds:
                os.close(fd)
            continue
        middle = os.fork()
        if middle == 0:
            _middle(channel, message, fds)
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(middle, 0)


def _receive(channel: socket.socket) -> tuple[dict | None, list[int]]:
    # A header line with the length, then the JSON body; descriptors ride on the header.
    try:
        header, fds, _flags, _addr = socket.recv_fds(channel, 64, 8)
        for fd in fds:
            os.set_inheritable(fd, False)
    except OSError:
        return None, []
    if not header:
        return None, []
    length_text, _, rest = header.partition(b"\n")
    body = rest
    while len(body) < int(length_text):
        chunk = channel.recv(int(length_text) - len(body))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body), fds


def _send(channel: socket.socket, message: dict) -> None:
    with contextlib.suppress(OSError):
        channel.sendall(json.dumps(message).encode() + b"\n")


def _middle(channel: socket.socket, message: dict, fds: list[int]) -> None:
    """In the first child: fork the generation, report its pid, and leave."""
    try:
        generation = os.fork()
        if generation == 0:
            _generation(channel, message, fds)
        _send(channel, {"pid": generation})
    finally:
        os._exit(0)


def _generation(channel: socket.socket, message: dict, fds: list[int]) -> None:
    def start() -> None:
        channel.close()
        set_process_name(os.path.basename(sys.executable))
        supervisor = int(message["env"]["CSERVER_SUPERVISOR_PID"])
        # The middle process exits at once; wait to be the supervisor's child before asking
        # to die with it (a parent's death signal follows the parent of the moment).
        deadline = time.monotonic() + 5
        while os.getppid() != supervisor and time.monotonic() < deadline:
            time.sleep(0.001)
        listen_fd, status_fd, stderr_fd, changes_fd = fds
        os.dup2(stderr_fd, 2)
        os.close(stderr_fd)
        env = dict(
            message["env"],
            CSERVER_LISTEN_FD=str(listen_fd),
            CSERVER_STATUS_FD=str(status_fd),
            CSERVER_CHANGES_FD=str(changes_fd),
        )
        os.environ.clear()
        os.environ.update(env)
        os.chdir(message["cwd"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        run_program(message["argv"])

    run_then_exit(start)


def run_program(argv: list[str]) -> int:
    """Run ``argv`` (the supervisor's own command line, less the interpreter) as its
    ``__main__``: ``-m module ...`` or ``script ...``."""
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        sys.path[0] = os.getcwd()
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


def main() -> None:
    set_process_name(PROCESS_NAME)
    # The supervisor decides about SIGHUP and Ctrl-C; generations inherit the ignored SIGHUP.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    die_with_parent()
    channel = socket.socket(fileno=int(os.environ.pop(ZYGOTE_FD_ENV)))
    # What every generation needs, while the supervisor is still loading the project and
    # has not said which other modules it loaded.
    _send(channel, {"warm": preload(BASE_PRELOAD)})
    serve(channel)


if __name__ == "__main__":
    main()
