"""What `cserver dev` runs: runcserver as `web`, then each side process, and what it watches."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from cserver.config.model import ServerConfig
from cserver.config.side import SideProcess
from cserver.devrun.runner import Spec

WEB = "web"
# Directories never holding the project's own code: watching them costs descriptors and
# restarts workers on an install.
_SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "static", "media"})
MAX_WATCHED_DIRS = 2000


class NoSuchProcess(ValueError):
    """--without names a process that is not there."""


def dev_specs(
    config: ServerConfig,
    root: Path,
    web_args: list[str],
    without: set[str],
    *,
    only_web: bool = False,
    only: set[str] | frozenset[str] = frozenset(),
) -> tuple[list[Spec], dict[str, SideProcess]]:
    """The processes to run, web first, and the side processes among them; with only, just
    those side processes (web is not started)."""
    sides = {} if only_web else project_sides(config, root)
    for option, names in (("--without", without), ("--only", only)):
        unknown = names - set(sides) - {WEB}
        if unknown:
            found = ", ".join(sorted(sides)) or "none"
            raise NoSuchProcess(
                f"{option} {','.join(sorted(unknown))}: no such side process "
                f"(this project has: {found}; declare more in CSERVER_SIDE_PROCESSES)"
            )
    if WEB in without:
        raise NoSuchProcess("--without web: web is what cserver dev runs; use runcserver alone")
    if WEB in only:
        raise NoSuchProcess("--only web: use --only-web, or runcserver alone")
    sides = {
        name: side
        for name, side in sides.items()
        if name not in without and (not only or name in only)
    }
    from cserver.stack.sides_detect import npm_script_problem

    for name, side in sorted(sides.items()):
        problem = npm_script_problem(root, name, side.command)
        if problem:
            raise NoSuchProcess(problem)
    web = Spec(WEB, [sys.executable, "-m", "cserver", "runcserver", *web_args], web=True)
    specs = [] if only else [web]
    specs += [Spec(name, side.argv(), reload=side.reload) for name, side in sorted(sides.items())]
    return specs, sides


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What every child gets: this environment, unbuffered output, and this Python's scripts
    first on PATH, so that `celery` is the one installed next to cserver even when the
    virtual environment is not activated (`.venv/bin/cserver dev`)."""
    scripts = os.path.dirname(sys.executable)
    path = environ.get("PATH", os.defpath)
    if scripts not in path.split(os.pathsep):
        path = scripts + os.pathsep + path
    return {**environ, "PATH": path, "PYTHONUNBUFFERED": "1"}


def project_sides(config: ServerConfig, root: Path) -> dict[str, SideProcess]:
    """The detected side processes, with the declared ones added and replacing by name."""
    from cserver.stack.sides_detect import detected_sides

    detected = detected_sides(root, os.environ.get("DJANGO_SETTINGS_MODULE"))
    return {**detected, **config.side_processes}


def code_dirs(root: Path) -> set[Path]:
    """Every directory under root with a Python file, skipping environments and caches."""
    found: set[Path] = set()
    for current, dirs, files in os.walk(root):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIPPED_DIRS
            and not (Path(current) / d / "pyvenv.cfg").exists()
        ]
        if any(f.endswith(".py") for f in files):
            found.add(Path(current))
        if len(found) >= MAX_WATCHED_DIRS:
            break
    return found


def code_watch(root: Path) -> Callable[[Callable[[set[Path]], None]], Callable[[], None]]:
    """Starts the same watcher runcserver's reloader uses on the project's code directories."""

    def start(on_change: Callable[[set[Path]], None]) -> Callable[[], None]:
        from cserver.reload.filewatch import Watch, Watcher, project_dirs

        watcher = Watcher(Watch(code_dirs(root) | project_dirs(), []), on_change)
        watcher.start()
        return watcher.stop

    return start
