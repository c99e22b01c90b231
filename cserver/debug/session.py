"""A server process's side of the debugger: debugpy listening, and stopped with the process.

debugpy starts an adapter process that the IDE talks to (the DAP port) and that this process
connects to. With ``subProcess`` on (debugpy's default) a process forked from this one, a
fork-mode child or a ``--processes`` worker, joins the same adapter as a child session, so
one port covers every process of the server; the IDE attaches to each as it appears.

Behind the reloader this process listens on a free loopback port and reports it; the
supervisor forwards the user's port to it (cserver.debug.proxy), so the IDE keeps one
address across reloads.
"""

from __future__ import annotations

import os
from typing import Any


class DebugpyMissing(RuntimeError):
    pass


MISSING = (
    "--debugpy needs debugpy, which is not installed: pip install 'cserver[debug]' "
    "(or pip install debugpy)"
)


def require_debugpy() -> Any:
    """The debugpy module, or DebugpyMissing with the one line that says how to get it."""
    # Forked generations cannot pass -Xfrozen_modules=off; the warning it asks for is about
    # breakpoints in the standard library's frozen modules only.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    try:
        import debugpy
    except ImportError:
        raise DebugpyMissing(MISSING) from None
    return debugpy


def listen(host: str, port: int) -> tuple[str, int]:
    """debugpy listening on host:port (0: a free one); the address it listens on."""
    debugpy = require_debugpy()
    debugpy.configure(subProcess=True)
    # The adapter is a daemon process of its own that outlives this one while an IDE is
    # attached; behind the supervisor, the proxy ends those sessions when this process
    # exits, and the adapter leaves with them.
    address = debugpy.listen((host, port))
    return str(address[0]), int(address[1])


def wait_for_client() -> None:
    require_debugpy().wait_for_client()


def start_debugger(address: str, behind_supervisor: bool, wait: bool) -> list[str]:
    """Listen for the IDE as configured; the lines to print. Behind the supervisor, the
    adapter's own port goes to it (cserver.generation) and the IDE uses the user's port."""
    from cserver import generation
    from cserver.debug.address import format_address, parse_debug_address

    parsed = parse_debug_address(address)
    if parsed is None:
        return []
    host, port = parsed
    shown = format_address(host, port)
    try:
        if behind_supervisor:
            _, adapter_port = listen("127.0.0.1", 0)
            generation.report(f"debugpy {adapter_port}")
        else:
            listen(host, port)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, DebugpyMissing):
            raise
        raise DebugpyMissing(f"debugpy cannot listen on {shown}: {exc}") from None
    lines = [
        f"cserver: debugpy on {shown}: attach your IDE there; processes this server forks "
        "(fork mode, --processes) join as child sessions"
        + (", and it stays the same across reloads" if behind_supervisor else "")
    ]
    if wait:
        lines.append(f"cserver: waiting for a debugger on {shown} before serving (--debugpy-wait)")
    return lines
