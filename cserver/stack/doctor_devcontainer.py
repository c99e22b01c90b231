"""Doctor's check that .devcontainer/devcontainer.json and the compose files agree.

A Dev Container tool (VS Code, Codespaces, the devcontainer CLI) starts the compose files the
JSON names and opens the editor in one service at workspaceFolder. When a name or a path in
it drifts from the compose files (a renamed service, a moved mount, a new port), the tool
fails late and vaguely, or opens an editor on a copy of the code that the server never
reloads. Each disagreement is one line here, named in the JSON's own terms.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cserver.stack.devcontainer import DEVCONTAINER_JSON, DevcontainerError, parse_jsonc
from cserver.stack.doctor_findings import Finding
from cserver.stack.doctor_stack import resolved_services


def compose_files(config: Mapping[str, Any], json_dir: Path) -> list[Path]:
    """The compose files devcontainer.json names (relative to its own directory)."""
    named = config.get("dockerComposeFile") or []
    if isinstance(named, str):
        named = [named]
    return [(json_dir / str(name)).resolve() for name in named]


def forwarded(value: Any) -> set[int]:
    """forwardPorts as numbers: 8000, "8000" and "web:8000" all forward 8000."""
    ports: set[int] = set()
    for item in value or []:
        text = str(item).rpartition(":")[2]
        if text.isdigit():
            ports.add(int(text))
    return ports


def mounted_at(service: Mapping[str, Any], target: str) -> str | None:
    """The host path bind-mounted at target in the service, or None."""
    for volume in service.get("volumes") or []:
        if volume.get("type") == "bind" and volume.get("target") == target:
            return str(volume.get("source"))
    return None


def _agreement(config: Mapping[str, Any], services: dict, root: Path) -> Iterator[Finding]:
    """One problem per disagreement, then one ok line when there is none."""
    name = str(config.get("service") or "")
    if name not in services:
        known = ", ".join(sorted(services)) or "none"
        yield Finding(
            "problem",
            f"{DEVCONTAINER_JSON}: service {name!r} is not in its compose files "
            f"(services: {known})",
        )
        return
    service = services[name]
    problems = 0
    unknown = [s for s in config.get("runServices") or [] if s not in services]
    if unknown:
        problems += 1
        yield Finding(
            "problem",
            f"{DEVCONTAINER_JSON}: runServices names {', '.join(map(str, unknown))}, "
            "not in the compose files",
        )
    workspace = str(config.get("workspaceFolder") or "")
    source = mounted_at(service, workspace) if workspace else None
    if not workspace:
        problems += 1
        yield Finding("problem", f"{DEVCONTAINER_JSON}: no workspaceFolder")
    elif source is None:
        problems += 1
        yield Finding(
            "problem",
            f"{DEVCONTAINER_JSON}: workspaceFolder {workspace} is not where the checkout is "
            f"mounted in {name}: the editor would change a copy that the server never reloads",
        )
    elif Path(source).resolve() != root:
        yield Finding(
            "note", f"{DEVCONTAINER_JSON}: {workspace} in {name} is {source}, not this checkout"
        )
    container_ports = {int(p["target"]) for p in service.get("ports") or [] if "target" in p}
    missing = sorted(container_ports - forwarded(config.get("forwardPorts")))
    if missing:
        problems += 1
        yield Finding(
            "problem",
            f"{DEVCONTAINER_JSON}: forwardPorts lacks {', '.join(map(str, missing))}, "
            f"the port {name} listens on: the editor would not forward it",
        )
    if not problems:
        ports = ", ".join(map(str, sorted(container_ports))) or "none"
        yield Finding(
            "ok",
            f"{DEVCONTAINER_JSON} agrees with its compose files: service {name}, "
            f"{workspace} mounted from the checkout, port(s) {ports} forwarded",
        )


def check_devcontainer(root: Path, environ: Mapping[str, str]) -> Iterator[Finding]:
    """devcontainer.json parses, names compose files that exist and agrees with them."""
    path = root / DEVCONTAINER_JSON
    if not path.is_file():
        return
    try:
        config = parse_jsonc(path.read_text(encoding="utf-8", errors="replace"))
    except DevcontainerError as exc:
        yield Finding("problem", f"{DEVCONTAINER_JSON} is {exc}")
        return
    files = compose_files(config, path.parent)
    if not files:
        yield Finding(
            "note", f"{DEVCONTAINER_JSON} does not use compose (no dockerComposeFile): not checked"
        )
        return
    missing = [str(f.relative_to(root)) if f.is_relative_to(root) else str(f) for f in files]
    missing = [m for m, f in zip(missing, files, strict=True) if not f.is_file()]
    if missing:
        yield Finding(
            "problem", f"{DEVCONTAINER_JSON}: dockerComposeFile {', '.join(missing)} not found"
        )
        return
    services = resolved_services(root, environ, [str(f) for f in files])
    if isinstance(services, Finding):
        yield services
        return
    yield from _agreement(config, services, root)
