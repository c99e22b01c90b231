"""runcserver's Command honours runserver's default_addr, default_addr_ipv6 and default_port,
below every other source; and a host name with -6 stays a host name (no brackets)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.serverproc import ROOT, project_env

# Runs the command's handle() as call_command does, with run() replaced: what runserver's
# own tests inspect (addr, port, use_ipv6, _raw_ipv6), plus where addr and port came from.
SCRIPT = """
import json, sys
import django
django.setup()
from django.core.management import call_command, load_command_class
command = load_command_class(sys.argv[1], sys.argv[2])
command.run = lambda **options: None
call_command(command, *sys.argv[3:])
print(json.dumps({
    "addr": command.addr,
    "port": command.port,
    "ipv6": command.use_ipv6,
    "raw_ipv6": command._raw_ipv6,
    "addr_source": command.resolved.sources["addr"],
    "port_source": command.resolved.sources["port"],
}))
"""
CUSTOM = "tests.project.management.commands.runcustomserver.Command"


def handle(command: str, *args: str, app: str = "tests.project", **env: str):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, app, command, *args],
        env=project_env(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_of(command: str, *args: str, app: str = "tests.project", **env: str) -> dict:
    result = handle(command, *args, app=app, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_class_defaults_apply_when_nothing_else_is_set() -> None:
    seen = settings_of("runcustomserver")
    assert (seen["addr"], seen["port"], seen["ipv6"], seen["raw_ipv6"]) == (
        "0.0.0.0",
        "8765",
        False,
        False,
    )
    assert seen["addr_source"] == f"{CUSTOM}.default_addr"
    assert seen["port_source"] == f"{CUSTOM}.default_port"


def test_ipv6_takes_the_ipv6_class_default() -> None:
    seen = settings_of("runcustomserver", "-6")
    assert (seen["addr"], seen["port"], seen["ipv6"], seen["raw_ipv6"]) == (
        "::",
        "8765",
        True,
        True,
    )
    assert seen["addr_source"] == f"{CUSTOM}.default_addr_ipv6"
    # IPv6 turned on by the environment picks the same attribute.
    assert settings_of("runcustomserver", CSERVER_IPV6="1")["addr"] == "::"


def test_flags_and_environment_win_over_class_defaults() -> None:
    seen = settings_of("runcustomserver", "7000")
    assert (seen["addr"], seen["port"]) == ("0.0.0.0", "7000")
    assert seen["port_source"] == "flag addrport"
    seen = settings_of("runcustomserver", CSERVER_PORT="9001", CSERVER_ADDR="127.0.0.2")
    assert (seen["addr"], seen["port"]) == ("127.0.0.2", "9001")
    assert (seen["addr_source"], seen["port_source"]) == ("env CSERVER_ADDR", "env CSERVER_PORT")


def test_plain_runcserver_keeps_runservers_defaults() -> None:
    seen = settings_of("runcserver", app="cserver")
    assert (seen["addr"], seen["port"], seen["addr_source"]) == ("127.0.0.1", "8000", "default")
    seen = settings_of("runcserver", "-6", app="cserver")
    assert (seen["addr"], seen["raw_ipv6"]) == ("::1", True)


@pytest.mark.parametrize(
    ("addrport", "addr", "raw_ipv6"),
    [("test.domain.local:7000", "test.domain.local", False), ("[::1]:7000", "::1", True)],
)
def test_host_name_with_ipv6_is_not_a_raw_address(addrport: str, addr: str, raw_ipv6: bool) -> None:
    seen = settings_of("runcserver", addrport, "-6", app="cserver")
    assert (seen["addr"], seen["port"], seen["ipv6"], seen["raw_ipv6"]) == (
        addr,
        "7000",
        True,
        raw_ipv6,
    )


def test_bad_class_default_is_one_line_naming_the_attribute() -> None:
    result = handle("runbadportserver")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "runbadportserver.Command.default_port http is not valid" in lines[0]
    assert "expected an integer from 0 to 65535" in lines[0]
