""".env.example documents exactly the variables the server and the compose files read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cserver.config import ServerConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = ROOT / ".env.example"
# compose.yaml plus the user-facing override files next to the Dockerfile.
COMPOSE_FILES = [ROOT / "compose.yaml", *sorted((ROOT / "docker").glob("compose*.yaml"))]

# Where compose deliberately defaults differently from the server outside a container.
CONTAINER_DEFAULTS = {
    # In the container every client is "remote"; the published address limits access.
    "CSERVER_DIAGNOSTICS_ALLOW_REMOTE": "true",
}

# An entry is `NAME=value`, commented out as `#NAME=value`; prose comments start with "# ".
_ENTRY = re.compile(r"#?([A-Z][A-Z0-9_]*)=(.*)")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?")
_UNBRACED = re.compile(r"\$[A-Za-z_]")
# The innermost ${NAME:-default} (its default holds no further ${...}).
_INNER_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^${}]*)\}")


def env_example() -> dict[str, str]:
    """Entries of .env.example, name -> documented default value."""
    entries: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENTRY.fullmatch(line.strip())
        if match:
            name, value = match.groups()
            assert name not in entries, f".env.example lists {name} twice"
            entries[name] = value
    return entries


def compose_text(path: Path) -> str:
    """A compose file with `$$` (a literal dollar, not a variable) removed."""
    return path.read_text().replace("$$", "")


def compose_references() -> dict[str, set[str]]:
    """Variable name -> the operators it is used with (':-', '-', ':?', '?' or '')."""
    found: dict[str, set[str]] = {}
    for path in COMPOSE_FILES:
        text = compose_text(path)
        assert not _UNBRACED.search(text), f"{path.name}: use ${{NAME:-default}}, not $NAME"
        for name, operator in _REFERENCE.findall(text):
            found.setdefault(name, set()).add(operator or "")
    return found


def compose_defaults() -> dict[str, set[str]]:
    """Variable name -> its defaults in the compose files, nested defaults resolved."""
    defaults: dict[str, set[str]] = {}
    for path in COMPOSE_FILES:
        text = compose_text(path)
        while True:
            match = _INNER_DEFAULT.search(text)
            if match is None:
                break
            name, default = match.groups()
            defaults.setdefault(name, set()).add(default)
            # What compose would substitute with nothing set, so the outer default resolves.
            text = text[: match.start()] + default + text[match.end() :]
    return defaults


def settings_variables() -> set[str]:
    """CSERVER_<FIELD> for every field of the settings model."""
    return {f"CSERVER_{name.upper()}" for name in ServerConfig.model_fields}


def test_env_example_matches_settings_and_compose() -> None:
    documented = set(env_example())
    read = settings_variables() | set(compose_references())
    missing, unused = sorted(read - documented), sorted(documented - read)
    assert not missing, f"read but missing from .env.example: {missing}"
    assert not unused, f"in .env.example but read by nothing: {unused}"


def test_every_entry_has_a_comment() -> None:
    lines = [line.strip() for line in ENV_EXAMPLE.read_text().splitlines()]
    for index, line in enumerate(lines):
        if not _ENTRY.fullmatch(line):
            continue
        above = index - 1
        while above >= 0 and _ENTRY.fullmatch(lines[above]):
            above -= 1  # entries of one group share the comment above them
        assert above >= 0 and lines[above].startswith("# "), f"no comment above {line!r}"


def test_every_entry_is_commented_out() -> None:
    # Copied to .env as is, it must change nothing: an active line would also override
    # settings.CSERVER in Django settings for the in-process server.
    active = [
        line for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"[A-Z][A-Z0-9_]*=", line)
    ]
    assert not active, f"uncommented entries in .env.example: {active}"


def test_every_compose_variable_has_a_default_or_a_message() -> None:
    for name, operators in compose_references().items():
        assert operators <= {":-", ":?"}, f"${{{name}}} needs :-default or :?message: {operators}"


@pytest.mark.parametrize("name", sorted(compose_defaults()))
def test_compose_default_matches_env_example(name: str) -> None:
    defaults = compose_defaults()[name]
    assert len(defaults) == 1, f"{name} has different defaults in compose files: {defaults}"
    [default] = defaults
    if name in CONTAINER_DEFAULTS:
        assert default == CONTAINER_DEFAULTS[name]
    else:
        assert env_example()[name] == default, f"{name}: .env.example disagrees"


@pytest.mark.parametrize("name", sorted(settings_variables()))
def test_documented_server_default_is_the_real_default(name: str) -> None:
    value = env_example()[name]
    default = load_config({}, environ={}, env_file=None, django_settings=False).config
    documented = load_config({}, environ={name: value}, env_file=None, django_settings=False)
    field = name.removeprefix("CSERVER_").lower()
    assert getattr(documented.config, field) == getattr(default, field), (
        f".env.example says {name}={value}, the default is {getattr(default, field)!r}"
    )
