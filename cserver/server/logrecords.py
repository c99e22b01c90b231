"""Request log records made on the writer thread from what the request thread noted.

``LogRecord.__init__`` looks up the current thread, the process, the module name of the
source path and more: about 3 us, on the request thread a cost paid inside every request.
The request thread notes only the message, its level, the time and its own thread
(``Pending``); the writer turns that into the record ``Logger.makeRecord`` would have made
there, with the request's time and thread.

With the standard record factory the writer copies the attributes of one record made by
``makeRecord`` for this logger and level, and sets the few that differ per request: a
dictionary copy instead of the constructor. A project that installed its own factory
(``logging.setLogRecordFactory``) gets its factory called for every record.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

__all__ = ["Pending", "RecordMaker", "make_record", "server_time"]

_SOURCE = __file__
_FUNCTION = "log_request"


class Pending(NamedTuple):
    """What the request thread knows of a record the writer makes."""

    level: int
    message: str
    args: tuple
    extra: dict[str, Any]
    created: float
    thread: int | None
    thread_name: str


class RecordMaker:
    """Turns ``Pending`` entries into ``LogRecord``s for one logger (writer thread only)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._templates: dict[int, dict[str, Any]] = {}

    def __call__(self, pending: Pending) -> logging.LogRecord:
        created = pending.created
        if logging.getLogRecordFactory() is not logging.LogRecord:
            record = self._made(pending)
        else:
            template = self._templates.get(pending.level)
            if template is None:
                template = dict(vars(self._made(pending)))
                for key in pending.extra:  # per request: never inherited from the first one
                    template.pop(key, None)
                self._templates[pending.level] = template
            record = logging.LogRecord.__new__(logging.LogRecord)
            attrs = record.__dict__
            attrs.update(template)
            attrs["msg"] = pending.message
            attrs["args"] = pending.args
            attrs.update(pending.extra)
        # The request's moment and thread, not the writer's, computed as LogRecord does.
        record.created = created
        record.msecs = float(int((created - int(created)) * 1000))
        record.relativeCreated = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
        if logging.logThreads:
            record.thread = pending.thread
            record.threadName = pending.thread_name
        return record

    def _made(self, pending: Pending) -> logging.LogRecord:
        return make_record(self.logger, pending.level, pending.message, pending.args, pending.extra)


def make_record(
    logger: logging.Logger, level: int, message: str, args: tuple, extra: dict[str, Any]
) -> logging.LogRecord:
    """``logger.makeRecord`` for a request line, on the calling thread."""
    return logger.makeRecord(logger.name, level, _SOURCE, 0, message, args, None, _FUNCTION, extra)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_clock: tuple[int, str] = (0, "")


def server_time() -> str:
    """runserver's ``server_time``: ``06/Dec/2026 21:40:00``, local time, made once a second.

    runserver passes it with every request's record (``log_date_time_string()``);
    Django's ServerFormatter otherwise formats the record's time itself, with milliseconds.
    """
    global _clock
    now = int(time.time())
    second, text = _clock
    if second != now:
        t = time.localtime(now)
        text = f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d} "
        text += f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        _clock = (now, text)
    return text
