"""The side processes of a project as compose services: what the template needs of each.

A side process runs from the app image (a Celery worker, beat, an rq worker) with the same
environment as `web`, or from Node.js (an npm watch script) in a small image of its own
(docker/assets.Dockerfile: node_modules live in the image, never in the project tree).
Reloading ones get compose's `sync+restart`: an edit lands in the container and the
process restarts from the warm image, with no rebuild.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from dotenv import dotenv_values

from cserver.config import ConfigError, load_config
from cserver.config.side import SideProcess
from cserver.stack.detect import DetectError, Project, settings_paths
from cserver.stack.sides_detect import (
    Finding,
    SidesError,
    chosen,
    find_sides,
    npm_script_problem,
)

# Names init gives to services of its own: a side process cannot take one.
GENERATED_SERVICES = frozenset({"db", "migrate", "bootstrap", "web", "probe", "redis"})
REDIS_URL = "redis://redis:6379/0"
ASSETS_DOCKERFILE = "docker/assets.Dockerfile"
SIDE_VAR = "CSERVER_SIDE_PROCESSES"


class ServiceClash(ValueError):
    """A side process is named like a generated service; one line for the user."""


@dataclass(frozen=True)
class SideService:
    """One side process, in the shape compose.yaml.tmpl renders."""

    name: str
    node: bool
    command: str  # JSON list, `$` escaped for compose
    depends_on: tuple[str, ...]
    healthcheck: str | None  # JSON list for `test:`, `$` escaped
    reload: bool
    output: str | None
    origin: str = "declared in CSERVER_SIDE_PROCESSES"

    @property
    def output_volume(self) -> str | None:
        """The named volume its output directory lives on (shared with web)."""
        return volume_name(self.output) if self.output else None


def _compose_json(argv: list[str]) -> str:
    # Compose interpolates ${...} and $NAME in every string; $$ is a literal dollar.
    return json.dumps(argv).replace("$", "$$")


def side_services(
    sides: dict[str, SideProcess], redis: bool, origins: dict[str, str] | None = None
) -> list[SideService]:
    """The compose services for sides, in name order; ServiceClash for a reserved name."""
    services = []
    for name, side in sorted(sides.items()):
        if name in GENERATED_SERVICES:
            raise ServiceClash(
                f"side process {name!r} clashes with the generated service of that name: "
                "rename it in CSERVER_SIDE_PROCESSES (reserved: "
                f"{', '.join(sorted(GENERATED_SERVICES))})"
            )
        node = side.image == "node"
        needs = set(side.needs)
        if not node:
            needs |= {"db", "migrate"}  # the app's processes import settings that query
        if "redis" in needs and not redis:
            needs.discard("redis")
        order = [s for s in ("db", "redis", "migrate") if s in needs]
        check = _compose_json(["CMD-SHELL", side.healthcheck]) if side.healthcheck else None
        services.append(
            SideService(
                name=name,
                node=node,
                command=_compose_json(side.argv()),
                depends_on=tuple(order),
                healthcheck=check,
                reload=side.reload,
                output=side.output,
                origin=(origins or {}).get(name, SideService.origin),
            )
        )
    return services


@dataclass(frozen=True)
class SharedOutput:
    """A directory a side process writes and web serves, on a named volume."""

    path: str
    volume: str


def shared_outputs(services: list[SideService]) -> list[SharedOutput]:
    """Directories side processes write that web serves (a named volume each)."""
    paths = sorted({s.output for s in services if s.output})
    return [SharedOutput(path, volume_name(path)) for path in paths]


def volume_name(output: str) -> str:
    """The named volume for an output directory: static/dist -> assets_static_dist."""
    return "assets_" + "".join(c if c.isalnum() else "_" for c in output).strip("_")


def declared_sides(root: Path) -> dict[str, SideProcess]:
    """CSERVER_SIDE_PROCESSES from the environment, else the project's .env; ConfigError.

    Only that variable is read: a bad value of another one is doctor's finding, not a
    reason to lose the side processes.
    """
    env_file = root / ".env"
    value = os.environ.get(SIDE_VAR)
    if value is None and env_file.is_file():
        value = dotenv_values(env_file).get(SIDE_VAR)
    if not value:
        return {}
    resolved = load_config({}, environ={SIDE_VAR: value}, env_file=None, django_settings=False)
    return dict(resolved.config.side_processes)


def _split(names: str | None) -> set[str]:
    return {n.strip() for n in (names or "").split(",") if n.strip()}


def with_sides(project: Project, with_: str | None = None, without: str | None = None) -> Project:
    """project with its side processes and Redis: the detected ones (as --with / --without
    choose) joined by the declared ones, which win by name; DetectError when they cannot be
    set up."""
    try:
        declared = declared_sides(project.root)
    except ConfigError as exc:
        raise DetectError("; ".join(exc.problems)) from None
    findings = [] if project.demo else _findings(project)
    try:
        kept = chosen(findings, _split(with_), _split(without))
    except SidesError as exc:
        raise DetectError(str(exc)) from None
    sides = {f.kind: f.side for f in kept if f.side and not f.problem}
    origins = {f.kind: f"found by init ({f.evidence})" for f in kept if f.side}
    for name, side in sorted(declared.items()):
        problem = npm_script_problem(project.root, name, side.command)
        if problem:
            raise DetectError(problem)
    sides.update(declared)
    origins.update((name, SideService.origin) for name in declared)
    redis = any(f.kind == "redis" and not f.problem for f in kept)
    redis = redis or any("redis" in side.needs for side in declared.values())
    lines = [f.line() for f in kept]
    lines += [
        f"{'declared':<13} {name}: `{side.command}`   [{SIDE_VAR}]"
        for name, side in sorted(declared.items())
    ]
    project = replace(
        project,
        side_processes=sides,
        side_origins=origins,
        redis=redis,
        side_lines=tuple(lines),
    )
    try:
        side_services(project.side_processes, project.redis)
    except ServiceClash as exc:
        raise DetectError(str(exc)) from None
    return project


def _findings(project: Project) -> list[Finding]:
    source_root, files = settings_paths(project.root, project.settings_module)
    return find_sides(project.root, source_root, files)
