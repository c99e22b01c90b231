"""The server's variables, written out from the settings model for .env.example and compose."""

from __future__ import annotations

from typing import Any

from cserver.config import ServerConfig, env_name

# Inside the container the server binds 0.0.0.0 on the model's default port, and compose
# publishes it there unless told otherwise: one number, declared once, in ServerConfig.
CONTAINER_PORT: int = ServerConfig.model_fields["port"].default

# Inside the container the server always binds 0.0.0.0:CONTAINER_PORT: these choose the
# published port.
NOT_PASSED_TO_WEB = frozenset({"addr", "port", "ipv6", "side_processes", "bootstrap"})

# Where the stack deliberately defaults differently from the server outside a container.
CONTAINER_DEFAULTS = {
    # In the container every client is "remote"; the published address limits access.
    "diagnostics_allow_remote": "true",
}

# Comments in compose.yaml next to a variable whose container value needs a word.
_COMPOSE_NOTES = {
    "seed": ['# Empty means "not set": the server picks a seed and prints it.'],
    "diagnostics_allow_remote": [
        "# Inside the container every client is remote (requests come from the Docker",
        "# network); who can connect at all is decided by where the port is published.",
    ],
}

# What a setting means in the stack, beyond its description in the model.
_STACK_NOTES = {
    "ipv6": "Not used by compose: publish on an IPv6 address with CSERVER_HOST_ADDR=::1.",
    "addr": f"In compose the server listens on 0.0.0.0:{CONTAINER_PORT} inside `web`; "
    "CSERVER_ADDR and CSERVER_PORT choose where it is published on your machine unless "
    "CSERVER_HOST_ADDR / CSERVER_HOST_PORT are set.",
    "diagnostics_allow_remote": "Default true in compose: there every request comes from the "
    "Docker network, and the published address (CSERVER_HOST_ADDR) decides who can connect.",
}

WIDTH = 90


def _wrap(text: str) -> list[str]:
    """text as '# ' comment lines of at most WIDTH characters."""
    lines: list[str] = []
    current = "#"
    for word in text.split():
        if len(current) + 1 + len(word) > WIDTH and current != "#":
            lines.append(current)
            current = "#"
        current += " " + word
    if current != "#":
        lines.append(current)
    return lines


def default_text(name: str) -> str:
    """A field's default as it is written in .env files ('' for None)."""
    # model_construct() applies defaults (and default factories) and reads no source.
    value: Any = getattr(ServerConfig.model_construct(), name)
    if value is None or value == {}:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _note(name: str) -> str:
    # The model's description is the one place a setting's meaning is written.
    description = ServerConfig.model_fields[name].description or ""
    return f"{description}. {_STACK_NOTES[name]}" if name in _STACK_NOTES else description


def env_example_lines(stack_defaults: dict[str, str] | None = None) -> list[str]:
    """The server section of .env.example: each field's note, then `#CSERVER_X=default`.

    stack_defaults: fields whose compose default init chose for the project (its bootstrap
    command); an empty value keeps the model's default.
    """
    chosen = {k: v for k, v in (stack_defaults or {}).items() if v}
    lines: list[str] = []
    for name in ServerConfig.model_fields:
        lines += _wrap(_note(name))
        lines.append(f"#{env_name(name)}={chosen.get(name, default_text(name))}")
    return lines


def compose_environment_lines() -> list[str]:
    """web's `CSERVER_X: ${CSERVER_X:-default}` lines, for every field the container uses."""
    lines: list[str] = []
    for name in ServerConfig.model_fields:
        if name in NOT_PASSED_TO_WEB:
            continue
        lines += _COMPOSE_NOTES.get(name, [])
        default = CONTAINER_DEFAULTS.get(name, default_text(name))
        variable = env_name(name)
        lines.append(f"{variable}: ${{{variable}:-{default}}}")
    return lines
