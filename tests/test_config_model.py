"""The settings model is the one declaration: flags, help, limits and both ways of resolving."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import pytest

from cserver.booleans import FALSE_WORDS, TRUE_WORDS, parse_bool
from cserver.config import ServerConfig, add_config_arguments, env_name, load_config
from cserver.config.model import NO_FLAG, cli_of
from cserver.server.limits import Limits


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith(("CSERVER_", "DJANGO_SETTINGS_MODULE")):
            monkeypatch.delenv(name)
    return tmp_path


def test_every_setting_has_a_flag_with_its_description_and_variable() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    by_flag = {opt: action for action in parser._actions for opt in action.option_strings}
    for name, info in ServerConfig.model_fields.items():
        cli = cli_of(info)
        assert info.description, name
        if cli.flag == "addrport":
            continue
        if cli.flag == NO_FLAG:  # a setting of the stack: runcserver must not offer it
            assert not any(a.dest == name for a in parser._actions), name
            continue
        action = by_flag[cli.flag]
        assert action.dest == (cli.dest or name)
        assert action.help is not None and action.help.endswith(f"[{env_name(name)}]")
        if not cli.help:
            assert info.description[1:] in action.help


def test_the_model_alone_resolves_like_load_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # One resolver: the same sources give the same values whichever way they are read.
    monkeypatch.setenv("CSERVER_WORKERS", "3")
    monkeypatch.setenv("CSERVER_DELAY", "yes")
    Path(".env").write_text("CSERVER_WORKERS=99\nCSERVER_MODE=pool\nCSERVER_BACKLOG=7\n")
    alone = ServerConfig(backlog=9)
    resolved = load_config({"backlog": 9}, django_settings=False).config
    assert alone == resolved
    assert (alone.workers, alone.mode, alone.backlog, alone.delay) == (3, "pool", 9, True)


def test_limits_have_no_defaults_and_come_from_the_config() -> None:
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(Limits))
    flags = {"keepalive_timeout": 1.5, "header_timeout": 2.5, "grace_period": 0.5}
    flags |= {"workers": 3, "connection_limit": 7, "max_body_bytes": 11}
    flags |= {"max_request_line_bytes": 40, "max_header_bytes": 50, "max_headers": 6}
    flags |= {"linger_timeout": 4.5, "linger_idle": 0.25, "linger_bytes": 13}
    config = load_config(flags, environ={}, env_file=None, django_settings=False).config
    limits = Limits.from_config(config)
    for name, value in flags.items():
        assert getattr(limits, name) == value
    assert (limits.head.request_line_bytes, limits.head.header_bytes, limits.head.headers) == (
        40,
        50,
        6,
    )


@pytest.mark.parametrize("word", sorted(TRUE_WORDS | FALSE_WORDS | {"maybe", "2", "yes!"}))
def test_one_boolean_parser_everywhere(word: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from cserver.config import ConfigError
    from cserver.demo.dburl import parse_database_url
    from cserver.demo.env import load_demo_env

    expected = parse_bool(word.upper())
    assert expected == (True if word in TRUE_WORDS else False if word in FALSE_WORDS else None)
    try:
        config = load_config(
            environ={"CSERVER_DIAGNOSTICS": word}, env_file=None, django_settings=False
        )
        from_config: bool | None = config.config.diagnostics
    except ConfigError:
        from_config = None
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DJANGO_DEBUG", word)
            from_demo: bool | None = load_demo_env().debug
    except ImproperlyConfigured:
        from_demo = None
    try:
        url = parse_database_url(f"postgres://u@h/db?server_side_binding={word}")
        from_url: bool | None = url["OPTIONS"]["server_side_binding"]
    except ImproperlyConfigured:
        from_url = None
    assert from_config == from_demo == from_url == expected
