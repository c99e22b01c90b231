"""`cserver doctor [PATH]`: what would go wrong with `docker compose up`, one line per finding."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from cserver.stack.detect import DetectError, Project, detect
from cserver.stack.doctor_devcontainer import check_devcontainer
from cserver.stack.doctor_engine import check_engine, check_stack_on_engine, is_remote, located
from cserver.stack.doctor_findings import Finding, one_line
from cserver.stack.doctor_stack import (
    check_inside_image,
    check_override,
    compose_view,
    image_exists,
)
from cserver.stack.envdoc import CONTAINER_PORT
from cserver.stack.envmap import project_variables, unset_required
from cserver.stack.recorded import recorded_overrides
from cserver.stack.services import with_sides

PROG = "cserver doctor"
# `develop.watch` became part of Compose in 2.22.
WATCH_SINCE = (2, 22)
TIMEOUT = 20


def check_compose() -> Iterator[Finding]:
    """Compose v2 is installed and new enough for `develop.watch`."""
    try:
        proc = subprocess.run(
            ["docker", "compose", "version", "--short"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        yield Finding("problem", f"`docker compose version` failed: {one_line(exc)}")
        return
    if proc.returncode != 0:
        yield Finding("problem", "Docker Compose v2 (`docker compose`) is not installed")
        return
    text = proc.stdout.strip().lstrip("v")
    match = re.match(r"(\d+)\.(\d+)", text)
    if not match:
        yield Finding("problem", f"cannot read the Compose version from {text!r}")
        return
    found = (int(match.group(1)), int(match.group(2)))
    if found < WATCH_SINCE:
        yield Finding(
            "problem",
            f"Docker Compose {text} has no `develop.watch` (needs 2.22 or newer): "
            "`docker compose up` works, `docker compose watch` does not",
        )
    else:
        yield Finding("ok", f"Docker Compose {text} (develop.watch supported)")


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of a .env file, as Compose reads them for interpolation."""
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def published_address(variables: Mapping[str, str]) -> tuple[str, str]:
    """(host address, port) web is published on, resolved like compose.yaml does.

    Only for a machine where `docker compose config` cannot run (no compose, no compose.yaml
    yet): where it runs, stack_checks takes the address compose itself resolved.
    """

    def first(*names: str, default: str) -> str:
        return next((variables[n] for n in names if variables.get(n)), default)

    host = first("CSERVER_HOST_ADDR", "CSERVER_ADDR", default="127.0.0.1")
    port = first("CSERVER_HOST_PORT", "CSERVER_PORT", default=str(CONTAINER_PORT))
    return host, port


def check_port(variables: Mapping[str, str]) -> Iterator[Finding]:
    """The address web is published on can be bound now."""
    host, port = published_address(variables)
    if not port.isdigit() or not 0 < int(port) < 65536:
        yield Finding("problem", f"published port {port!r} is not valid: expected 1 to 65535")
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, int(port)))
    except OSError as exc:
        yield Finding(
            "problem",
            f"{host}:{port} is not free ({exc.strerror or exc}): set CSERVER_HOST_PORT in .env "
            "(or stop what uses it; a running stack of this project holds it too)",
        )
        return
    yield Finding("ok", f"{host}:{port} is free for web")


def check_env(env_file: Path, environ: Mapping[str, str]) -> Iterator[Finding]:
    """Every CSERVER_* value in .env and the environment is valid for the settings model.

    env_file is the path as the user typed the project, so messages name it like runcserver's.
    """
    from cserver.config import ConfigError, load_config

    where = ".env and the environment" if env_file.is_file() else "the environment (no .env)"
    try:
        load_config(
            {},
            environ=environ,
            env_file=env_file if env_file.is_file() else None,
            django_settings=False,
        )
    except ConfigError as exc:
        for problem in exc.problems:
            yield Finding("problem", problem)
        return
    yield Finding("ok", f"CSERVER_* values in {where} are valid")


def check_settings(
    root: Path, project: Project, stack_environment: Mapping[str, str]
) -> Iterator[Finding]:
    """The settings module imports here (with the host's packages and web's environment)."""
    module = project.settings_module
    path = str(root / project.source_root) if project.source_root else str(root)
    code = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {path!r})\n"
        "try:\n"
        f"    importlib.import_module({module!r})\n"
        "except ModuleNotFoundError as exc:\n"
        "    print('missing', exc.name); sys.exit(3)\n"
        "except BaseException as exc:\n"
        "    print(type(exc).__name__ + ': ' + ' '.join(str(exc).split())); sys.exit(4)\n"
    )
    # What web gets (its .env and the stack's values), minus what points into the image.
    inside_only = {"DJANGO_SETTINGS_MODULE", "PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME"}
    env = {**os.environ, **{k: v for k, v in stack_environment.items() if k not in inside_only}}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        yield Finding("problem", f"importing {module} took longer than 60 s")
        return
    lines = proc.stdout.strip().splitlines() or proc.stderr.strip().splitlines() or [""]
    detail = lines[-1]
    if proc.returncode == 0:
        yield Finding("ok", f"settings {module} import")
    elif proc.returncode == 3:
        missing = detail.removeprefix("missing ").strip()
        top = module.split(".")[0]
        if missing.split(".")[0] == top:
            yield Finding("problem", f"settings {module} do not import: no module named {missing}")
        else:
            yield Finding(
                "note",
                f"settings {module} need {missing!r}, not installed here; "
                "the image installs the project's dependencies",
            )
    else:
        yield Finding("problem", f"settings {module} do not import: {detail}")


def check_files(root: Path) -> Iterator[Finding]:
    """compose.yaml and the Dockerfile are there (`cserver init` writes them)."""
    missing = [n for n in ("compose.yaml", "docker/Dockerfile") if not (root / n).is_file()]
    if missing:
        yield Finding("problem", f"{', '.join(missing)} missing in {root}: run cserver init first")
    else:
        yield Finding("ok", "compose.yaml and docker/Dockerfile present")


def check_environment(project: Project, variables: Mapping[str, str]) -> Iterator[Finding]:
    """Variables the settings cannot import without, that neither the stack nor .env sets."""
    for variable in unset_required(project_variables(project)):
        name = variable.read.name
        if name not in variables:
            yield Finding(
                "problem",
                f"not ready: the settings need {name} ({variable.read.where} reads it) and "
                f"nothing sets it: add {name}=... to .env (every service reads it)",
            )


def _project(root: Path, module: str | None) -> Project | Finding:
    """The project as init saw it (its recorded choices), with the module compose names."""
    chosen = recorded_overrides(root)
    if module and not module.startswith("cserver."):
        chosen = replace(chosen, settings=module)
    try:
        return with_sides(detect(root, chosen), chosen.with_sides, chosen.without_sides)
    except DetectError as exc:
        return Finding("problem", str(exc))


def stack_checks(root: Path, variables: Mapping[str, str]) -> Iterator[Finding]:
    """The port web is published on, and the settings every process of the image sees."""
    environ = {**os.environ}
    view = compose_view(root, environ) if (root / "compose.yaml").is_file() else None
    if isinstance(view, Finding):
        yield view
        view = None
    where, facts = located(environ)
    remote = facts is not None and is_remote(where, facts)
    if view is not None:
        yield from check_override(root, environ)
        yield from check_devcontainer(root, environ)
        yield from check_stack_on_engine(root, environ, view, where, facts)
    if remote:
        pass  # the port is the engine machine's: check_stack_on_engine said how to reach it
    elif view is not None and view.published:
        host, port = view.published
        yield from check_port({"CSERVER_HOST_ADDR": host, "CSERVER_HOST_PORT": port})
    else:
        yield from check_port(variables)
    project = _project(root, view.settings if view else None)
    if isinstance(project, Finding):
        yield project
        return
    for line in project.side_lines:
        kind, _, text = line.partition(" ")
        if kind == "problem":
            yield Finding("problem", text.strip())
        else:
            yield Finding("ok", f"{kind}: {text.strip()}")
    if view is not None and view.image and image_exists(view.image, environ):
        yield from check_inside_image(root, view, environ)
        return
    if view is not None:
        yield Finding(
            "note",
            f"image {view.image or '?'} not built yet: after `docker compose build`, doctor "
            "checks the settings inside it",
        )
    missing = list(check_environment(project, variables))
    yield from missing
    if not missing:  # importing them here would only fail on the same variable
        yield from check_settings(root, project, view.environment if view else {})


def main(argv: list[str]) -> int:
    """Run every check; print one line per finding; 1 if any is a problem."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Check what `docker compose up` needs, one line per finding."
    )
    parser.add_argument("path", nargs="?", default=".", help="the project (default: .)")
    options = parser.parse_args(argv)
    root = Path(options.path).resolve()
    if not root.is_dir():
        print(f"{PROG}: error: {options.path!r} is not a directory", file=sys.stderr)
        return 1
    env_file = root / ".env"
    # Compose reads .env for interpolation; the process environment wins over it.
    variables = {**(read_env_file(env_file) if env_file.is_file() else {}), **os.environ}
    checks: list[Callable[[], Iterator[Finding]]] = [
        lambda: check_files(root),
        lambda: check_engine(os.environ),
        check_compose,
        lambda: check_env(Path(options.path) / ".env", os.environ),
        lambda: stack_checks(root, variables),
    ]
    problems = 0
    for check in checks:
        for finding in check():
            print(finding.line(), flush=True)
            problems += finding.level == "problem"
    print(f"{problems} problem(s)" if problems else "ready: docker compose up --build")
    return 1 if problems else 0
