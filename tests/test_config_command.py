"""addrport parsing, the shared config flags, and `manage.py cserver_config` run for real."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cserver.addrport import AddrportError, parse_addrport
from cserver.config import (
    ConfigError,
    Flag,
    add_config_arguments,
    exit_on_config_error,
    flags_from_options,
    load_config,
)

ROOT = Path(__file__).resolve().parent.parent

# --- addrport ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ipv6", "parsed"),
    [
        ("8001", False, ("", 8001, False)),
        ("0:8000", False, ("0.0.0.0", 8000, False)),
        ("0:8000", True, ("::", 8000, False)),
        ("[::1]:8000", False, ("::1", 8000, True)),
        ("[2001:db8::2]:80", True, ("2001:db8::2", 80, True)),
        ("localhost:8000", False, ("localhost", 8000, False)),
        ("localhost:8000", True, ("localhost", 8000, False)),
        ("1.2.3.4:80", False, ("1.2.3.4", 80, False)),
        ("8001", True, ("", 8001, False)),
    ],
)
def test_parse_addrport_accepts_runserver_forms(text: str, ipv6: bool, parsed: tuple):
    assert parse_addrport(text, ipv6) == parsed


@pytest.mark.parametrize(
    ("text", "ipv6", "message"),
    [
        ("xyz", False, '"xyz" is not a valid port number or address:port pair.'),
        ("1.2.3.4:", False, '"1.2.3.4:" is not a valid port number or address:port pair.'),
        ("::1:8000", False, '"::1:8000" is not a valid port number or address:port pair.'),
        ("1.2.3.4:80", True, '"1.2.3.4" is not a valid IPv6 address.'),
    ],
)
def test_parse_addrport_refuses_what_runserver_refuses(text: str, ipv6: bool, message: str):
    with pytest.raises(AddrportError) as info:
        parse_addrport(text, ipv6)
    assert str(info.value) == message


# --- flags ------------------------------------------------------------------------------------


def plain_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return parser


def runserver_parser() -> argparse.ArgumentParser:
    """The parser of Django's own runserver (what runcserver subclasses) plus our flags."""
    from django.core.management.commands.runserver import Command

    parser = Command().create_parser("manage.py", "runcserver")
    add_config_arguments(parser)
    return parser


@pytest.mark.parametrize("make_parser", [plain_parser, runserver_parser])
def test_nothing_typed_means_no_flags(make_parser):
    assert flags_from_options(vars(make_parser().parse_args([]))) == {}


@pytest.mark.parametrize("make_parser", [plain_parser, runserver_parser])
def test_typed_flags_reach_the_config(make_parser):
    argv = [
        *("--mode", "pool", "--workers", "4", "--no-delay", "--delay-min", "5"),
        *("--delay-max", "9", "--seed", "11", "--keepalive-timeout", "1.5"),
        *("--backlog", "10", "--grace-period", "0", "--diagnostics"),
        *("-6", "--noreload", "--nothreading", "[::1]:9000"),
    ]
    flags = flags_from_options(vars(make_parser().parse_args(argv)))
    assert flags == {
        "mode": "pool",
        "workers": "4",
        "delay": False,
        "delay_min_ms": "5",
        "delay_max_ms": "9",
        "seed": "11",
        "keepalive_timeout": "1.5",
        "backlog": "10",
        "grace_period": "0",
        "diagnostics": True,
        "ipv6": True,
        "reload": False,
        "threading": False,
        "addr": "::1",
        "port": 9000,
    }
    resolved = load_config(flags, environ={}, env_file=None, django_settings=False)
    c = resolved.config
    assert (c.mode, c.workers, c.delay, c.seed, c.addr, c.port) == (
        "pool",
        4,
        False,
        11,
        "::1",
        9000,
    )
    assert resolved.sources["reload"] == "flag --noreload"
    assert resolved.sources["threading"] == "flag --nothreading"
    assert resolved.sources["port"] == "flag addrport"
    assert resolved.sources["ipv6"] == "flag --ipv6"
    assert resolved.sources["delay"] == "flag --no-delay"


def test_bracketed_addrport_turns_ipv6_on_and_says_so():
    flags = flags_from_options(vars(plain_parser().parse_args(["[::1]:0"])))
    assert flags["ipv6"] == Flag(True, "addrport")
    resolved = load_config(flags, environ={}, env_file=None, django_settings=False)
    assert resolved.config.ipv6 is True
    assert resolved.sources["ipv6"] == "flag addrport"


def test_bad_addrport_and_out_of_range_port():
    with pytest.raises(ConfigError) as info:
        flags_from_options({"addrport": "xyz"})
    assert info.value.problems == ['"xyz" is not a valid port number or address:port pair.']
    flags = flags_from_options({"addrport": "99999"})
    with pytest.raises(ConfigError) as info:
        load_config(flags, environ={}, env_file=None, django_settings=False)
    assert info.value.problems == [
        "addrport 99999 is not valid: expected an integer from 0 to 65535"
    ]


def test_exit_on_config_error_prints_error_lines_and_exits_2():
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as info:
        exit_on_config_error(ConfigError(["first problem", "second problem"]), stderr)
    assert info.value.code == 2
    assert stderr.getvalue() == "Error: first problem\nError: second problem\n"


# --- the management command, in a real process -------------------------------------------------


def run_command(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, settings: Any = None
) -> subprocess.CompletedProcess[str]:
    """`python -m django cserver_config ARGS` with the tiny test settings, in directory cwd."""
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("CSERVER_")}
    environ.update(
        DJANGO_SETTINGS_MODULE="tests.settings_config",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        CONFIG_TEST_SETTINGS=json.dumps(settings or {}),
        **(env or {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "django", "cserver_config", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_command_prints_the_table(tmp_path: Path):
    (tmp_path / ".env").write_text("CSERVER_MODE=pool\nDATABASE_URL=sqlite:///x\n")
    result = run_command(["--workers", "3", "--delay"], tmp_path, {"CSERVER_PORT": "8123"})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["workers"] == ["workers", "CSERVER_WORKERS", "3", "flag", "--workers"]
    assert rows["delay"] == ["delay", "CSERVER_DELAY", "true", "flag", "--delay"]
    assert rows["port"] == ["port", "CSERVER_PORT", "8123", "env", "CSERVER_PORT"]
    assert rows["mode"] == ["mode", "CSERVER_MODE", "pool", ".env", "CSERVER_MODE"]
    assert rows["seed"] == ["seed", "CSERVER_SEED", "-", "default"]


def test_command_json_reads_real_django_settings(tmp_path: Path):
    settings = {
        "CONCURRENT_THREADING": False,
        "CONCURRENT_RANDOM_DELAY": True,
        "RUNSERVER_DEFAULT_PORT": 8765,
        "RUNSERVER_DEFAULT_ADDR": "0.0.0.0",
        "CSERVER": {"Workers": 5},
    }
    result = run_command(["--json", "-6"], tmp_path, settings=settings)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode"] == {
        "value": "fork",
        "source": "settings.CONCURRENT_THREADING",
        "env": "CSERVER_MODE",
    }
    assert data["delay"]["value"] is True
    assert data["port"] == {
        "value": 8765,
        "source": "settings.RUNSERVER_DEFAULT_PORT",
        "env": "CSERVER_PORT",
    }
    assert data["addr"]["value"] == "0.0.0.0"
    assert data["workers"]["source"] == "settings.CSERVER['Workers']"
    assert data["ipv6"] == {"value": True, "source": "flag --ipv6", "env": "CSERVER_IPV6"}


def test_command_bad_config_exits_2_with_one_line_each(tmp_path: Path):
    (tmp_path / ".env").write_text("CSERVER_DELAY=maybe\n")
    result = run_command(
        ["--workers", "0", "8000"],
        tmp_path,
        {"CSERVER_PORT": "abc", "CSERVER_MODE": "forking"},
        settings={"RUNSERVER_DEFAULT_ADDR": "a b"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: CSERVER_MODE='forking' is not valid: expected one of thread, pool, fork, asgi",
        "Error: --workers 0 is not valid: expected an integer from 1 to 1024",
        "Error: settings.RUNSERVER_DEFAULT_ADDR='a b' is not valid: "
        "expected a host name or IP address (IPv6 without brackets)",
        "Error: CSERVER_DELAY='maybe' in .env is not valid: "
        "expected true or false (1/0, yes/no and on/off also work)",
    ]


def test_command_bad_addrport_exits_2(tmp_path: Path):
    result = run_command(["localhost:port"], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        'Error: "localhost:port" is not a valid port number or address:port pair.'
    )
