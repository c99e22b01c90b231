"""runcserver's Command honours runserver's default_addr, default_addr_ipv6 and default_port,
below every other source; and a host name with -6 stays a host name (no brackets)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.serverproc import ROOT, project_env

# Runs each case's handle() as call_command does, with run() replaced, in one process:
# what runserver's own tests inspect (addr, port, use_ipv6, _raw_ipv6), plus where addr and
# port came from. A case is [app, command, args, environment].
SCRIPT = """
import json, os, sys
import django
django.setup()
from django.core.management import call_command, load_command_class
seen = {}
for name, (app, command_name, args, env) in json.loads(sys.argv[1]).items():
    os.environ.update(env)
    command = load_command_class(app, command_name)
    command.run = lambda **options: None
    call_command(command, *args)
    for key in env:
        del os.environ[key]
    seen[name] = {
        "addr": command.addr,
        "port": command.port,
        "ipv6": command.use_ipv6,
        "raw_ipv6": command._raw_ipv6,
        "addr_source": command.resolved.sources["addr"],
        "port_source": command.resolved.sources["port"],
    }
print(json.dumps(seen))
"""
CUSTOM = "tests.project.management.commands.runcustomserver.Command"
CASES: dict[str, tuple[str, str, list[str], dict[str, str]]] = {
    "custom": ("tests.project", "runcustomserver", [], {}),
    "custom -6": ("tests.project", "runcustomserver", ["-6"], {}),
    "custom env ipv6": ("tests.project", "runcustomserver", [], {"CSERVER_IPV6": "1"}),
    "custom port flag": ("tests.project", "runcustomserver", ["7000"], {}),
    "custom env": (
        "tests.project",
        "runcustomserver",
        [],
        {"CSERVER_PORT": "9001", "CSERVER_ADDR": "127.0.0.2"},
    ),
    "plain": ("cserver", "runcserver", [], {}),
    "plain -6": ("cserver", "runcserver", ["-6"], {}),
    "host name -6": ("cserver", "runcserver", ["test.domain.local:7000", "-6"], {}),
    "literal -6": ("cserver", "runcserver", ["[::1]:7000", "-6"], {}),
}


def run_script(cases: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(cases)],
        env=project_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def seen() -> dict[str, dict[str, Any]]:
    result = run_script(CASES)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def view(seen: dict[str, Any], case: str, *keys: str) -> tuple[Any, ...]:
    return tuple(seen[case][key] for key in keys)


def test_class_defaults_apply_when_nothing_else_is_set(seen: dict[str, Any]) -> None:
    assert view(seen, "custom", "addr", "port", "ipv6", "raw_ipv6") == (
        "0.0.0.0",
        "8765",
        False,
        False,
    )
    assert view(seen, "custom", "addr_source", "port_source") == (
        f"{CUSTOM}.default_addr",
        f"{CUSTOM}.default_port",
    )


def test_ipv6_takes_the_ipv6_class_default(seen: dict[str, Any]) -> None:
    assert view(seen, "custom -6", "addr", "port", "ipv6", "raw_ipv6") == ("::", "8765", True, True)
    assert seen["custom -6"]["addr_source"] == f"{CUSTOM}.default_addr_ipv6"
    # IPv6 turned on by the environment picks the same attribute.
    assert seen["custom env ipv6"]["addr"] == "::"


def test_flags_and_environment_win_over_class_defaults(seen: dict[str, Any]) -> None:
    assert view(seen, "custom port flag", "addr", "port", "port_source") == (
        "0.0.0.0",
        "7000",
        "flag addrport",
    )
    assert view(seen, "custom env", "addr", "port", "addr_source", "port_source") == (
        "127.0.0.2",
        "9001",
        "env CSERVER_ADDR",
        "env CSERVER_PORT",
    )


def test_plain_runcserver_keeps_runservers_defaults(seen: dict[str, Any]) -> None:
    assert view(seen, "plain", "addr", "port", "addr_source") == ("127.0.0.1", "8000", "default")
    assert view(seen, "plain -6", "addr", "raw_ipv6") == ("::1", True)


def test_host_name_with_ipv6_is_not_a_raw_address(seen: dict[str, Any]) -> None:
    keys = ("addr", "port", "ipv6", "raw_ipv6")
    assert view(seen, "host name -6", *keys) == ("test.domain.local", "7000", True, False)
    assert view(seen, "literal -6", *keys) == ("::1", "7000", True, True)


def test_bad_class_default_is_one_line_naming_the_attribute() -> None:
    result = run_script({"bad": ["tests.project", "runbadportserver", [], {}]})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "runbadportserver.Command.default_port http is not valid" in lines[0]
    assert "expected an integer from 0 to 65535" in lines[0]
