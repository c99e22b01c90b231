"""The stack described for Dev Container tools (VS Code, Codespaces, JetBrains, the reference CLI).

devcontainer.json names the generated compose file plus a small override of its own: the
editor's workspace is this checkout, mounted over the image's copy of the project, so an edit
reaches runcserver's reloader at once (no `docker compose watch` needed inside a dev
container). The file is JSON with comments (JSONC); a file that exists is merged into, key by
key, never losing one of the user's.
"""

from __future__ import annotations

import json
import re
from typing import Any

DEVCONTAINER_JSON = ".devcontainer/devcontainer.json"
DEVCONTAINER_COMPOSE = ".devcontainer/compose.devcontainer.yaml"
# Where the image keeps the project, the web service's working directory.
WORKSPACE = "/app"
# The image's non-root user (docker/Dockerfile creates it).
REMOTE_USER = "app"
COMPOSE_FILES = ["../compose.yaml", "compose.devcontainer.yaml"]

# A string, a // comment or a /* */ comment; only the comments are dropped.
_JSONC_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.S)
_TRAILING_COMMA = re.compile(r'("(?:\\.|[^"\\])*")|,(\s*[}\]])')


class DevcontainerError(ValueError):
    """devcontainer.json is not JSON (with comments) or not an object."""


def devcontainer_config(
    name: str, services: list[str], container_port: str, extra_ports: list[int] | None = None
) -> dict[str, Any]:
    """The devcontainer.json init writes: the web service of the generated compose files."""
    ports = [int(container_port), *(extra_ports or [])]
    return {
        "name": name,
        "dockerComposeFile": list(COMPOSE_FILES),
        "service": "web",
        "runServices": services,
        "workspaceFolder": WORKSPACE,
        # Leaving the editor stops the stack; `docker compose down -v` still deletes data.
        "shutdownAction": "stopCompose",
        "forwardPorts": ports,
        "portsAttributes": {str(container_port): {"label": "web (runcserver)"}},
        "remoteUser": REMOTE_USER,
        "customizations": {
            "vscode": {
                "extensions": ["ms-python.python", "ms-python.debugpy"],
                "settings": {"python.defaultInterpreterPath": "/opt/venv/bin/python"},
            }
        },
    }


def render_devcontainer(config: dict[str, Any]) -> bytes:
    return (json.dumps(config, indent=2) + "\n").encode()


def strip_jsonc(text: str) -> str:
    """JSON with comments and trailing commas -> plain JSON (strings left intact)."""

    def drop_comment(match: re.Match[str]) -> str:
        token = match.group(0)
        return token if token.startswith('"') else ""

    plain = _JSONC_TOKEN.sub(drop_comment, text)
    return _TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), plain)


def parse_jsonc(text: str) -> dict[str, Any]:
    """devcontainer.json's content as a dict, or DevcontainerError naming what is wrong."""
    try:
        value = json.loads(strip_jsonc(text))
    except json.JSONDecodeError as exc:
        raise DevcontainerError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(value, dict):
        raise DevcontainerError(f"not a JSON object but {type(value).__name__}")
    return value


def merge_config(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """theirs with what ours adds: missing keys, missing list items, nested objects merged.
    Where both set a value, theirs stays (doctor says when it disagrees with the stack)."""
    merged = dict(theirs)
    for key, value in ours.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = merge_config(merged[key], value)
        elif isinstance(merged[key], list) and isinstance(value, list):
            merged[key] = [*merged[key], *(item for item in value if item not in merged[key])]
    return merged


def merged_devcontainer(current: bytes, generated: bytes) -> tuple[bytes, bool]:
    """(the merged file, whether the user's text had comments that JSON output drops).

    The content is kept, so the caller writes the original beside it when comments go."""
    text = current.decode("utf-8", "replace")
    theirs = parse_jsonc(text)
    merged = merge_config(theirs, json.loads(generated))
    if merged == theirs:
        return current, False
    return render_devcontainer(merged), strip_jsonc(text) != text


def compose_override() -> str:
    """The override devcontainer.json adds to compose.yaml: the checkout mounted into web."""
    return (
        "# Read by .devcontainer/devcontainer.json only (Dev Containers, Codespaces, the\n"
        "# devcontainer CLI), never by a plain `docker compose up`: the editor's workspace is\n"
        "# this checkout, mounted over the image's copy of the project, so an edit reaches\n"
        "# runcserver's reloader without `docker compose watch`. Paths are relative to\n"
        "# compose.yaml's directory, the project root. On a remote Docker engine the mount\n"
        "# would name a path on the engine's machine: `cserver doctor` warns about it.\n"
        "services:\n"
        "  web:\n"
        "    volumes:\n"
        "      - type: bind\n"
        "        source: .\n"
        f"        target: {WORKSPACE}\n"
    )
