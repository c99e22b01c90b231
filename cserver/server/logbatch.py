"""Running a logger's handlers over a batch of records: one write per stream, not per line.

``Logger.callHandlers`` walks the logger and its parents (while they propagate) and calls
each handler whose level lets the record through; a ``StreamHandler`` then formats, writes
and flushes every record on its own, a system call per line. For a batch the writer thread
does the same walk once, and for a handler of exactly ``logging.StreamHandler`` (the class
Django's and most LOGGING configs use for the console) it applies the handler's filters and
formatter to each record, then writes the joined lines and flushes once under the
handler's lock. Any other handler (files, sockets, a user's own class) gets each record
through its own ``handle()``, unchanged. Lines keep their order within every handler.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["handle_batch"]


def _handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers ``callHandlers`` would reach from ``logger``, in its order."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    if not found and logging.lastResort is not None:
        found.append(logging.lastResort)
    return found


def handle_batch(logger: logging.Logger, records: list[logging.LogRecord]) -> None:
    """Hand ``records`` (already through the logger's own filters) to its handlers."""
    for handler in _handlers(logger):
        if type(handler) is logging.StreamHandler:
            _write_stream(handler, records)
            continue
        for record in records:
            if record.levelno >= handler.level:
                handler.handle(record)


def _write_stream(handler: logging.StreamHandler, records: list[logging.LogRecord]) -> None:
    lines = []
    for record in records:
        if record.levelno < handler.level or not handler.filter(record):
            continue
        try:
            lines.append(handler.format(record) + handler.terminator)
        except Exception:
            handler.handleError(record)
    if not lines:
        return
    handler.acquire()
    try:
        try:
            handler.stream.write("".join(lines))
            handler.flush()
        except RecursionError:
            raise
        except Exception:
            # As StreamHandler.emit would report it: once, for the batch's first record.
            if logging.raiseExceptions and sys.stderr:
                handler.handleError(records[0])
    finally:
        handler.release()
