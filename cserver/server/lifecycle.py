"""The hooks a server calls at each point of a worker's life, for the framework to own resources."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _noop() -> None:
    return None


@dataclass
class Lifecycle:
    """Hooks through which the framework integration owns per-worker resources.

    The server itself knows nothing of Django; the runcserver command passes hooks that
    close a worker's database connections at the right moment for each mode.
    """

    connection_finished: Callable[[], None] = _noop  # thread mode, in the connection's thread
    worker_stopped: Callable[[], None] = _noop  # pool mode, in each worker as it exits
    child_started: Callable[[], None] = _noop  # fork mode, in the child right after fork
    child_finished: Callable[[], None] = _noop  # fork mode, in the child before it exits
    server_stopped: Callable[[], None] = _noop  # every mode, in the serving thread at the end
    process_started: Callable[[], None] = _noop  # --processes, in each worker before its server
