"""What the supervisor watches, and how: file-system events, or stat() polling without them.

The watched set is Django's: the directories of the project's modules (every ``*.py`` in
them restarts the server, so the fix to a module whose import failed is seen too), plus
whatever ``autoreload_started`` receivers register (template directories, ``locale``
directories' ``*.mo``), whose changes the running generation applies without a restart.

Events come from watchfiles (inotify on Linux, FSEvents on macOS), as for uvicorn. Where
events never arrive (a Docker Desktop bind mount from macOS or Windows, NFS or SMB, WSL's
``/mnt``), ``WATCHFILES_FORCE_POLLING=1`` makes watchfiles poll (every 0.3 s, or
``WATCHFILES_POLL_DELAY_MS``): watchfiles is a dependency, so there is no polling of our own.
"""

from __future__ import annotations

import fnmatch
import os
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.utils import autoreload

from cserver import generation

# How long to keep gathering once one event came: an editor's save is several events.
EVENT_STEP_MS = 20


def installed_roots() -> set[Path]:
    return {Path(p).resolve() for key, p in sysconfig.get_paths().items() if key.endswith("lib")}


def project_dirs(modules: Iterable[Path] | None = None) -> set[Path]:
    """Directories of the project's own modules (not the standard library or site-packages)."""
    installed = installed_roots()
    dirs = set()
    for path in autoreload.iter_all_python_module_files() if modules is None else modules:
        parent = path.parent
        if not any(parent.is_relative_to(root) for root in installed):
            dirs.add(parent)
    return dirs


class _Collector:
    """Stands in for Django's reloader so ``autoreload_started`` receivers say what to watch."""

    def __init__(self) -> None:
        self.globs: list[tuple[Path, str]] = []
        self.extra_files: set[Path] = set()

    def watch_dir(self, path: Path | str, glob: str) -> None:
        self.globs.append((Path(path).absolute(), glob))


def restartless_globs() -> list[tuple[Path, str]]:
    """(directory, glob) pairs that Django's receivers apply without a restart."""
    import django.template  # noqa: F401  (connects the template receivers)
    from django.conf import settings
    from django.utils import translation

    if settings.configured and settings.USE_I18N:
        translation.get_language()  # connects the translation receivers
    collector = _Collector()
    autoreload.autoreload_started.send_robust(sender=collector)
    return collector.globs


class Watch:
    """Which directories to watch and what a change in each means."""

    def __init__(self, code_dirs: set[Path], globs: list[tuple[Path, str]]) -> None:
        self.code_dirs = {d.resolve() for d in code_dirs}
        self.globs = [(d.resolve(), g) for d, g in globs]

    def dirs(self) -> set[Path]:
        found = {d for d in self.code_dirs if d.is_dir()}
        for directory, glob in self.globs:
            if not directory.is_dir():
                continue
            found.add(directory)
            if glob.startswith("**/"):
                found.update(Path(root) for root, _dirs, _files in os.walk(directory))
        return found

    def is_code(self, path: Path) -> bool:
        return path.suffix == ".py" and path.parent in self.code_dirs

    def is_restartless(self, path: Path) -> bool:
        for directory, glob in self.globs:
            if path.is_relative_to(directory) and fnmatch.fnmatch(path.name, glob.rsplit("/")[-1]):
                return True
        return False


def polling_asked() -> bool:
    """Whether WATCHFILES_FORCE_POLLING asks for polling (any value but false/disable[d])."""
    value = os.environ.get("WATCHFILES_FORCE_POLLING", "")
    return bool(value) and value.lower() not in {"false", "disable", "disabled"}


class Watcher:
    """A thread that calls ``on_change(paths)`` for each batch of changed files."""

    def __init__(self, watch: Watch, on_change: Callable[[set[Path]], None]) -> None:
        self.watch = watch
        self.on_change = on_change
        self._stop = threading.Event()
        # What the first output line names; watchfiles reads the same variable itself.
        self.kind = "watchfiles, polling" if polling_asked() else "watchfiles"
        self._thread = threading.Thread(target=self._events, name="cserver-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _events(self) -> None:
        import watchfiles

        dirs = [str(d) for d in self.watch.dirs()]
        if not dirs:
            return
        for batch in watchfiles.watch(
            *dirs,
            watch_filter=lambda _change, path: self._relevant(Path(path)),
            debounce=400,
            step=EVENT_STEP_MS,
            stop_event=self._stop,
            rust_timeout=500,
            recursive=False,
            raise_interrupt=False,
            ignore_permission_denied=True,
        ):
            self.on_change({Path(path) for _change, path in batch})

    def _relevant(self, path: Path) -> bool:
        return self.watch.is_code(path) or self.watch.is_restartless(path)


def packages_stamp() -> tuple[float, ...]:
    """Changes when a package is installed, upgraded or removed (its dist-info comes or goes)."""
    stamps = []
    for root in sorted(installed_roots()):
        try:
            stamps.append(root.stat().st_mtime)
        except OSError:
            stamps.append(0.0)
    return tuple(stamps)


def detect_delay(paths: set[Path]) -> float:
    """Seconds from the newest write among ``paths`` to now (0 when it cannot be known)."""
    newest = 0.0
    for path in paths:
        try:
            newest = max(newest, path.stat().st_mtime)
        except OSError:
            continue
    return max(0.0, time.time() - newest) if newest else 0.0


def report_dirs() -> None:
    """From a generation once it serves: the project directories it loaded modules from, so
    the supervisor watches them too."""
    for directory in project_dirs():
        generation.report(f"dir {directory}")
