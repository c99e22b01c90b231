"""runserver's class-level defaults (``default_addr``, ``default_addr_ipv6``, ``default_port``).

A project changes runserver's defaults by subclassing the command and setting these
attributes; runcserver honours the same attributes on its own Command. They are defaults:
any other source (flag, environment, .env, Django settings) wins, so precedence is
flags > env > .env > settings > the command's attributes > cserver's built-in defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from cserver.config import Flag, ResolvedConfig, load_config


def attribute_defaults(command: Any, resolved: ResolvedConfig) -> dict[str, Flag]:
    """addr/port values the command's attributes give where no source set them."""
    config = resolved.config
    cls = type(command)
    where = f"{cls.__module__}.{cls.__qualname__}"
    found: dict[str, Flag] = {}
    if resolved.sources["addr"] == "default":
        # As runserver: the IPv6 attribute when IPv6 is on, whichever source turned it on.
        attr = "default_addr_ipv6" if config.ipv6 else "default_addr"
        value = getattr(command, attr)
        if value != config.addr:
            found["addr"] = Flag(value, f"{where}.{attr}")
    if resolved.sources["port"] == "default" and str(command.default_port) != str(config.port):
        found["port"] = Flag(command.default_port, f"{where}.default_port")
    return found


def with_command_defaults(
    command: Any, flags: Mapping[str, Any], resolved: ResolvedConfig
) -> ResolvedConfig:
    """The config again with the command's attributes filled in, checked like any source."""
    extra = attribute_defaults(command, resolved)
    if not extra:
        return resolved
    # Through load_config, so a bad attribute gets the same one-line error as a bad flag.
    again = load_config({**flags, **extra})
    sources = dict(again.sources)
    for name, flag in extra.items():
        sources[name] = flag.typed  # a class attribute, not something typed on the command line
    return dataclasses.replace(again, sources=MappingProxyType(sources))
