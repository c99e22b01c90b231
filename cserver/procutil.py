"""Process utilities below both the server and the reloader: nothing here imports cserver.

The fork-mode server, the ``--processes`` group, the reloader's supervisor, its server
generations and the warm process all fork, guard against outliving a parent, reap and
signal children. The Linux-only parts (``prctl``) are no-ops elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn

__all__ = [
    "become_subreaper",
    "die_with_parent",
    "exit_description",
    "exited_children",
    "group_alive",
    "process_alive",
    "run_then_exit",
    "set_process_name",
    "signal_all",
]

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, arg: int | bytes) -> bool:
    """One prctl() call (Linux); False where it is not available or failed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, arg, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int | None = None, sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (no-op elsewhere).

    With ``parent``, exit at once when that is no longer the parent: it died before the
    request took effect. (Compared with a pid, not with 1: in a container without an init
    process the supervisor is PID 1.)
    """
    _prctl(_PR_SET_PDEATHSIG, sig)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def become_subreaper() -> bool:
    """Orphaned descendants become our children (Linux); False where that is not possible."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def set_process_name(name: str) -> None:
    """What ``ps`` and /proc/PID/comm show (Linux; 15 bytes at most)."""
    _prctl(_PR_SET_NAME, name.encode()[:15])


def exited_children(strict: bool = False) -> Iterator[tuple[int, int]]:
    """(pid, wait status) of each child that has exited, without waiting for more.

    With ``strict``, ChildProcessError says that this process has no child left at all.
    """
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            if strict:
                raise
            return
        if pid == 0:
            return
        yield pid, status


def signal_all(pids: Iterable[int], sig: int) -> None:
    """Send ``sig`` to each process; one that has exited already is skipped."""
    for pid in list(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def exit_description(status: int) -> str:
    """``exited with status 1`` or ``was killed by signal 9 (SIGKILL)``."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown"
        return f"was killed by signal {sig} ({name})"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def process_alive(pid: int) -> bool:
    """True if ``pid`` runs; a zombie (exited, not yet reaped) counts as ended."""
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                data = stat.read()
        except FileNotFoundError:
            return False
        except OSError:
            pass
        else:
            fields = data.rpartition(b")")[2].split()
            return bool(fields) and fields[0] not in (b"Z", b"X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """True while any process of the process group ``pgid`` exists (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_then_exit(start: Callable[[], object]) -> NoReturn:
    """In a freshly forked process: run ``start``, then leave with its exit status,
    never returning into the stack (or the atexit work) of the process it was forked from."""
    code = 1
    try:
        start()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
