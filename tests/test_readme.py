"""README.md's configuration reference and commands match the code."""

from __future__ import annotations

import re
from pathlib import Path

from cserver.config import FLAG_NAMES, ServerConfig, env_name
from cserver.config.model import NO_FLAG, cli_of

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _reference_rows() -> dict[str, list[str]]:
    rows = {}
    for line in README.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ServerConfig.model_fields:
            rows[cells[0]] = cells
    return rows


def _shown(value: object) -> str:
    if value is None or value == {} or value == "":
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def test_every_setting_is_documented_with_its_names_and_default() -> None:
    rows = _reference_rows()
    assert set(rows) == set(ServerConfig.model_fields), "README config table vs the model"
    for name, field in ServerConfig.model_fields.items():
        _, env, flag, default, meaning = rows[name]
        assert env == f"`{env_name(name)}`"
        if cli_of(field).flag == NO_FLAG:
            assert flag == "-" and name not in FLAG_NAMES
        else:
            assert flag == f"`{FLAG_NAMES[name]}`" == f"`{cli_of(field).flag}`"
        # The model's description is the meaning; README may only add code formatting.
        assert meaning.replace("`", "") == field.description, name
        if name == "addr":
            assert default == "`127.0.0.1`"
            continue
        default_value = field.get_default(call_default_factory=True)
        assert default == f"`{_shown(default_value)}`", name


def test_readme_opens_with_the_demo_and_test_commands() -> None:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block is not None
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert lines[0].endswith("cserver demo")
    assert lines[1].endswith("python -m pytest")
    assert lines[2] == "docker compose up"


def test_ci_runs_the_readme_test_command_in_a_fresh_venv() -> None:
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    # .ci/run takes the command from README.md itself, so the two cannot drift apart.
    assert "sed -n 2p" in ci and 'eval "$test_command"' in ci
    assert "-m venv .venv" in ci


def test_readme_installs_with_the_pinned_constraints() -> None:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block is not None
    first, second = block.group(1).splitlines()[:2]
    assert "-c constraints.txt" in first and "-c constraints.txt" in second
    constraints = (Path(__file__).resolve().parent.parent / "constraints.txt").read_text()
    for tool in ("ruff", "mypy", "pytest"):
        assert re.search(rf"^{tool}==\S+", constraints, re.M), f"{tool} is not pinned"
