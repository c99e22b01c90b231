"""cserver.config: precedence of every source, legacy settings, error lines, table and JSON."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from cserver.config import (
    FLAG_NAMES,
    ConfigError,
    ResolvedConfig,
    ServerConfig,
    load_config,
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory (so ./.env is ours) with no CSERVER_* variables set."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("CSERVER_"):
            monkeypatch.delenv(name)
    return tmp_path


def write_env(lines: list[str], path: str = ".env") -> Path:
    target = Path(path)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def resolve(flags: dict[str, Any] | None = None, settings: dict[str, Any] | None = None):
    """load_config with the real os.environ and ./.env, and settings given as an object."""
    return load_config(flags, django_settings=SimpleNamespace(**settings) if settings else False)


def problems_of(**kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        resolve(**kwargs)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- precedence -------------------------------------------------------------------------

SOURCES = ["flag", "env", "dotenv", "settings", "default"]
WORKERS = {"flag": 2, "env": 3, "dotenv": 4, "settings": 5, "default": 8}
LABELS = {
    "flag": "flag --workers",
    "env": "env CSERVER_WORKERS",
    "dotenv": ".env CSERVER_WORKERS",
    "settings": "settings.CSERVER['workers']",
    "default": "default",
}


@pytest.mark.parametrize(("high", "low"), list(itertools.combinations(SOURCES, 2)))
def test_each_pair_of_sources_higher_wins(high: str, low: str, monkeypatch: pytest.MonkeyPatch):
    flags: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for source in (high, low):
        value = WORKERS[source]
        if source == "flag":
            flags["workers"] = str(value)
        elif source == "env":
            monkeypatch.setenv("CSERVER_WORKERS", str(value))
        elif source == "dotenv":
            write_env([f"CSERVER_WORKERS={value}"])
        elif source == "settings":
            settings["CSERVER"] = {"workers": value}
    resolved = resolve(flags, settings)
    assert resolved.config.workers == WORKERS[high]
    assert resolved.sources["workers"] == LABELS[high]


def test_all_sources_at_once_each_field_from_its_own(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_WORKERS", "16")
    write_env(["CSERVER_PORT=9001", "CSERVER_MODE=fork"])
    resolved = resolve(
        {"backlog": 64, "mode": "pool"},
        {"CSERVER": {"keepalive_timeout": 2.5, "port": 1}, "RUNSERVER_DEFAULT_ADDR": "0.0.0.0"},
    )
    c = resolved.config
    assert (c.mode, c.workers, c.port, c.backlog, c.keepalive_timeout, c.addr) == (
        "pool",
        16,
        9001,
        64,
        2.5,
        "0.0.0.0",
    )
    assert resolved.sources["mode"] == "flag --mode"
    assert resolved.sources["port"] == ".env CSERVER_PORT"
    assert resolved.sources["keepalive_timeout"] == "settings.CSERVER['keepalive_timeout']"
    assert resolved.sources["addr"] == "settings.RUNSERVER_DEFAULT_ADDR"
    assert resolved.sources["grace_period"] == "default"
    assert resolved.env_file == ".env"


def test_defaults_match_the_contract():
    c = resolve().config
    assert (c.mode, c.workers, c.addr, c.port, c.ipv6) == ("thread", 8, "127.0.0.1", 8000, False)
    assert (c.reload, c.threading, c.delay, c.diagnostics) == (True, True, False, False)
    assert (c.delay_min_ms, c.delay_max_ms, c.seed) == (0, 300, None)
    assert (c.keepalive_timeout, c.backlog, c.grace_period) == (5.0, 128, 5.0)
    # Every setting has a flag but those of the stack, which no command line takes.
    assert set(FLAG_NAMES) == set(ServerConfig.model_fields) - {"side_processes", "bootstrap"}
    assert (c.side_processes, c.bootstrap) == ({}, None)


def test_ipv6_makes_the_default_addr_the_ipv6_loopback(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_IPV6", "yes")
    resolved = resolve()
    assert resolved.config.addr == "::1"
    assert resolved.sources["addr"] == "default"
    # ...but an address set anywhere still wins, even a low-precedence one.
    resolved = resolve(settings={"RUNSERVER_DEFAULT_ADDR": "::"})
    assert resolved.config.addr == "::"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[("1", True), ("true", True), ("YES", True), ("on", True)],
        *[("0", False), ("False", False), ("no", False), ("off", False)],
    ],
)
def test_booleans_from_the_environment(text: str, value: bool, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_DIAGNOSTICS", text)
    assert resolve().config.diagnostics is value


def test_environment_names_are_case_insensitive_and_empty_means_unset(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("cserver_backlog", "50")
    monkeypatch.setenv("CSERVER_SEED", "")  # what compose passes for an unset variable
    write_env(["CSERVER_SEED=42"])
    resolved = resolve()
    assert resolved.config.backlog == 50
    assert resolved.sources["backlog"] == "env cserver_backlog"
    assert resolved.config.seed == 42
    assert resolved.sources["seed"] == ".env CSERVER_SEED"


def test_dotenv_syntax_and_foreign_keys_are_ignored():
    write_env(
        [
            "# the demo's variables live here too",
            "export CSERVER_MODE=pool",
            'CSERVER_WORKERS="6"',
            "CSERVER_DELAY=on  # inline comment",
            "DATABASE_URL=postgres://user:secret@db:5432/app",
            "CSERVER_DEMO_SQLITE=/tmp/demo.sqlite3",
            "DJANGO_DEBUG=false",
        ]
    )
    c = resolve().config
    assert (c.mode, c.workers, c.delay) == ("pool", 6, True)


def test_env_file_named_by_cserver_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_env(["CSERVER_WORKERS=4"])  # ./.env, not used now
    custom = write_env(["CSERVER_WORKERS=5", "CSERVER_PORT=x"], str(tmp_path / "custom.env"))
    monkeypatch.setenv("CSERVER_ENV_FILE", str(custom))
    assert problems_of() == [
        f"CSERVER_PORT='x' in {custom} is not valid: expected an integer from 0 to 65535"
    ]
    custom.write_text("CSERVER_WORKERS=5\n")
    resolved = resolve()
    assert resolved.config.workers == 5
    assert resolved.env_file == str(custom)


def test_missing_env_file_named_by_the_user_is_an_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_ENV_FILE", "nope.env")
    assert problems_of() == ["CSERVER_ENV_FILE='nope.env' is not valid: expected an existing file"]


def test_explicit_environ_and_no_env_file(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_WORKERS", "3")
    write_env(["CSERVER_MODE=pool"])
    resolved = load_config(environ={"CSERVER_BACKLOG": "9"}, env_file=None, django_settings=False)
    assert (resolved.config.workers, resolved.config.mode, resolved.config.backlog) == (
        8,
        "thread",
        9,
    )


# --- legacy Django settings ---------------------------------------------------------------


@pytest.mark.parametrize(("threading", "mode"), [(False, "fork"), (True, "thread")])
def test_concurrent_threading(threading: bool, mode: str):
    resolved = resolve(settings={"CONCURRENT_THREADING": threading})
    assert resolved.config.mode == mode
    assert resolved.sources["mode"] == "settings.CONCURRENT_THREADING"


def test_concurrent_random_delay_and_runserver_defaults():
    resolved = resolve(
        settings={
            "CONCURRENT_RANDOM_DELAY": True,
            "RUNSERVER_DEFAULT_ADDR": "0.0.0.0",
            "RUNSERVER_DEFAULT_PORT": "8123",
        }
    )
    assert (resolved.config.delay, resolved.config.addr, resolved.config.port) == (
        True,
        "0.0.0.0",
        8123,
    )
    assert resolved.sources["delay"] == "settings.CONCURRENT_RANDOM_DELAY"
    assert resolved.sources["port"] == "settings.RUNSERVER_DEFAULT_PORT"


def test_cserver_dict_beats_legacy_names_and_keys_are_case_insensitive():
    settings = {
        "CONCURRENT_THREADING": False,
        "RUNSERVER_DEFAULT_PORT": 9000,
        "CSERVER": {"MODE": "pool", "port": 9100},
    }
    resolved = resolve(settings=settings)
    assert (resolved.config.mode, resolved.config.port) == ("pool", 9100)
    assert resolved.sources["mode"] == "settings.CSERVER['MODE']"


def test_environment_beats_legacy_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_MODE", "pool")
    resolved = resolve(settings={"CONCURRENT_THREADING": False})
    assert resolved.sources["mode"] == "env CSERVER_MODE"


# --- errors ---------------------------------------------------------------------------------


def test_contract_error_lines(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_PORT", "abc")
    monkeypatch.setenv("CSERVER_MODE", "forking")
    monkeypatch.setenv("CSERVER_DELAY_MIN_MS", "500")
    problems = problems_of(flags={"workers": 0, "delay_max_ms": "100"})
    assert problems == [
        "CSERVER_MODE='forking' is not valid: expected one of thread, pool, fork, asgi",
        "--workers 0 is not valid: expected an integer from 1 to 1024",
        "CSERVER_PORT='abc' is not valid: expected an integer from 0 to 65535",
        "delay min 500 (CSERVER_DELAY_MIN_MS) is above delay max 100 (--delay-max): "
        "min must be <= max",
    ]


def test_delay_range_names_both_sources_whatever_they_are():
    write_env(["CSERVER_DELAY_MAX_MS=20"])
    assert problems_of(settings={"CSERVER": {"delay_min_ms": 50}}) == [
        "delay min 50 (settings.CSERVER['delay_min_ms']) is above delay max 20 "
        "(CSERVER_DELAY_MAX_MS in .env): min must be <= max"
    ]
    Path(".env").unlink()
    assert problems_of(flags={"delay_min_ms": 301}) == [
        "delay min 301 (--delay-min) is above delay max 300 (default): min must be <= max"
    ]


@pytest.mark.parametrize(
    ("var", "value", "line"),
    [
        ("CSERVER_DELAY", "maybe", "expected true or false (1/0, yes/no and on/off also work)"),
        ("CSERVER_KEEPALIVE_TIMEOUT", "0", "expected a number above 0 and up to 3600"),
        ("CSERVER_GRACE_PERIOD", "nan", "expected a number from 0 to 3600"),
        ("CSERVER_BACKLOG", "70000", "expected an integer from 1 to 65535"),
        ("CSERVER_SEED", "1.5", "expected an integer"),
        ("CSERVER_ADDR", "[::1", "expected a host name or IP address (IPv6 without brackets)"),
    ],
)
def test_bad_environment_values(var: str, value: str, line: str, monkeypatch):
    monkeypatch.setenv(var, value)
    assert problems_of() == [f"{var}={value!r} is not valid: {line}"]


def test_bad_value_in_dotenv_names_the_file():
    write_env(["CSERVER_WORKERS=lots"])
    assert problems_of() == [
        "CSERVER_WORKERS='lots' in .env is not valid: expected an integer from 1 to 1024"
    ]


def test_bad_values_in_django_settings():
    settings = {
        "RUNSERVER_DEFAULT_PORT": "x",
        "CONCURRENT_THREADING": "sometimes",
        "CSERVER": {"workers": 0, "wrkers": 3, "delay": "perhaps"},
    }
    assert problems_of(settings=settings) == [
        "settings.CONCURRENT_THREADING='sometimes' is not valid: expected True or False",
        "settings.CSERVER['wrkers'] is not a known setting: expected one of "
        + ", ".join(ServerConfig.model_fields),
        "settings.CSERVER['workers']=0 is not valid: expected an integer from 1 to 1024",
        "settings.RUNSERVER_DEFAULT_PORT='x' is not valid: expected an integer from 0 to 65535",
        "settings.CSERVER['delay']='perhaps' is not valid: "
        "expected true or false (1/0, yes/no and on/off also work)",
    ]


def test_cserver_setting_must_be_a_dict():
    assert problems_of(settings={"CSERVER": ["pool"]}) == [
        "settings.CSERVER=['pool'] is not valid: expected a dict such as "
        "{'mode': 'pool', 'workers': 8}"
    ]


def test_every_source_reports_at_once(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_PORT", "-1")
    write_env(["CSERVER_BACKLOG=0"])
    problems = problems_of(flags={"mode": "forking"}, settings={"CSERVER": {"grace_period": -1}})
    assert [p.split(" is not valid")[0] for p in problems] == [
        "--mode forking",
        "CSERVER_PORT='-1'",
        "CSERVER_BACKLOG='0' in .env",
        "settings.CSERVER['grace_period']=-1",
    ]


def test_a_bad_value_hidden_by_a_higher_source_is_not_an_error(monkeypatch: pytest.MonkeyPatch):
    write_env(["CSERVER_PORT=abc"])
    monkeypatch.setenv("CSERVER_PORT", "9000")
    assert resolve().config.port == 9000


def test_unknown_flag_field_is_a_programming_error():
    with pytest.raises(TypeError, match="'wrkers'"):
        resolve(flags={"wrkers": 3})


# --- the model on its own -------------------------------------------------------------------


def test_server_config_alone_reads_env_and_dotenv(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_WORKERS", "3")
    write_env(["CSERVER_MODE=pool", "CSERVER_WORKERS=99", "UNRELATED=1"])
    config = ServerConfig()
    assert (config.workers, config.mode) == (3, "pool")
    with pytest.raises(ValidationError):
        config.workers = 4  # type: ignore[misc]
    with pytest.raises(ValidationError, match="min must be <= max"):
        ServerConfig(delay_min_ms=10, delay_max_ms=5)


# --- output -------------------------------------------------------------------------------


class SecretConfig(ServerConfig):
    api_token: SecretStr = SecretStr("hunter2")


def test_format_table_is_aligned_and_readable():
    resolved = resolve(flags={"workers": 3, "delay": False})
    lines = resolved.format_table().splitlines()
    header = lines[0]
    assert header.split() == ["setting", "env", "var", "value", "source"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    columns = [header.index(title) for title in ("env var", "value", "source")]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == list(ServerConfig.model_fields)
    for line in rows.values():
        for start in columns:  # every cell starts right under its title
            assert line[start - 2 : start] == "  " and line[start] != " "
    assert rows["workers"].split() == ["workers", "CSERVER_WORKERS", "3", "flag", "--workers"]
    assert rows["delay"].split() == ["delay", "CSERVER_DELAY", "false", "flag", "--no-delay"]
    assert rows["reload"].split()[2] == "true"
    assert rows["seed"].split()[2] == "-"


def test_secrets_are_masked_in_table_and_json():
    config = SecretConfig.model_construct()
    resolved = ResolvedConfig(config, {name: "default" for name in SecretConfig.model_fields})
    table = resolved.format_table()
    assert "hunter2" not in table
    assert table.splitlines()[-1].split()[:3] == ["api_token", "CSERVER_API_TOKEN", "********"]
    dumped = json.dumps(resolved.as_json())
    assert "hunter2" not in dumped
    assert resolved.as_json()["api_token"]["value"] == "********"


def test_as_json_shape(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSERVER_SEED", "7")
    data = json.loads(json.dumps(resolve().as_json()))
    assert data["seed"] == {"value": 7, "source": "env CSERVER_SEED", "env": "CSERVER_SEED"}
    assert data["reload"] == {"value": True, "source": "default", "env": "CSERVER_RELOAD"}
    assert list(data) == list(ServerConfig.model_fields)
