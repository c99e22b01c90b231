"""The debugger address as users write it: ``5678``, ``0.0.0.0:5678``, ``[::1]:5678``, or
``true``/``false`` (on at the default address, or off)."""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5678
_ON = {"1", "true", "yes", "on"}
_OFF = {"", "0", "false", "no", "off"}


class DebugAddressError(ValueError):
    pass


def parse_debug_address(value: str) -> tuple[str, int] | None:
    """(host, port) to listen on, None for off; DebugAddressError naming what is accepted."""
    text = value.strip()
    if text.lower() in _OFF:
        return None
    if text.lower() in _ON:
        return DEFAULT_HOST, DEFAULT_PORT
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port_text.isdigit() or any(c.isspace() or c in "[]/" for c in host):
        raise DebugAddressError(
            f"{value!r}: expected PORT or HOST:PORT "
            f"(e.g. {DEFAULT_PORT}, 0.0.0.0:{DEFAULT_PORT}, [::1]:{DEFAULT_PORT}), or true/false"
        )
    port = int(port_text)
    if not 1024 <= port <= 65535:
        raise DebugAddressError(
            f"{value!r}: expected a debugger port from 1024 to 65535 "
            f"(true means {DEFAULT_HOST}:{DEFAULT_PORT})"
        )
    return host, port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
