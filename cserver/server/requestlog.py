"""The request log's hand-off: records made on the request thread, handlers run on one writer.

Every request logs one line on ``django.server``. Run inline, the handlers (a formatter
calling strftime, a stream write and flush under the handler's lock) cost a worker about a
quarter of its time under load, and the workers queue up on that one lock. Here the
request thread only builds the ``LogRecord`` (so its time, thread name and the logger's
own filters are those of the request, as before) and appends it to a deque; one writer
thread runs the logger's handlers, whatever the user's LOGGING config put there, in
arrival order.

The writer sleeps until there is something to write and then collects for a short moment
before writing, so a busy server wakes it about a hundred times a second, not once per
request, and the request thread never takes a lock (``deque.append`` is atomic). While no
writer runs (the ASGI mode, a fork-mode child, tests calling the handler directly, after
shutdown) records are handled inline, exactly as ``Logger.handle`` would.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import threading
import time
from typing import Any

from cserver.server.logbatch import handle_batch
from cserver.server.logrecords import Pending, RecordMaker, make_record, server_time

__all__ = ["RequestLogWriter", "emit", "start_writer", "stop_writer"]

# How long the writer gathers records after waking: short enough that a developer sees the
# line "at once", long enough that a loaded server pays one wake-up for many requests.
BATCH_WINDOW_S = 0.01
# Lines written in one go at most, so a backlog does not become one huge string.
MAX_BATCH = 256


class RequestLogWriter:
    """One thread that runs a logger's handlers for records other threads made."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._records: collections.deque[logging.LogRecord | Pending] = collections.deque()
        self._wake = threading.Event()
        self._idle = False
        self._stopping = False
        self._make = RecordMaker(logger)
        self._thread = threading.Thread(target=self._run, name="cserver-request-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, record: logging.LogRecord | Pending) -> None:
        """Queue a record (any thread); wakes the writer only if it sleeps."""
        self._records.append(record)
        if self._idle:
            self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Write everything queued so far, then end the thread (bounded by ``timeout``)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        # Whatever is still queued (the thread never started, or timed out): write it here.
        self._write_queued()

    def _run(self) -> None:
        wait = self._wake.wait
        sleep = threading.Event().wait  # an Event nobody sets: a sleep that is not time.sleep
        while True:
            # Announce the sleep before the last look at the deque: a record appended after
            # that look sees _idle set and wakes us (both sides run under the GIL).
            self._idle = True
            if not self._records and not self._stopping:
                wait()
            self._idle = False
            self._wake.clear()
            if self._stopping:
                self._write_queued()
                return
            sleep(BATCH_WINDOW_S)
            self._write_queued()

    def _write_queued(self) -> None:
        records = self._records
        while records:
            batch = []
            try:
                for _ in range(MAX_BATCH):
                    entry = records.popleft()
                    if isinstance(entry, Pending):
                        entry = self._make(entry)
                    batch.append(entry)
            except IndexError:  # emptied (by us, or by stop() on another thread)
                pass
            try:
                handle_batch(self.logger, batch)
            except Exception:  # a broken handler must not end the writer
                with contextlib.suppress(Exception):
                    logging.getLogger("cserver").exception("cserver: request log handler failed")


_writer: RequestLogWriter | None = None
_writer_lock = threading.Lock()


def start_writer(logger: logging.Logger) -> RequestLogWriter:
    """Start the process's writer for ``logger`` (one per process; again is a no-op)."""
    global _writer
    with _writer_lock:
        if _writer is None or _writer.logger is not logger:
            if _writer is not None:
                _writer.stop()
            _writer = RequestLogWriter(logger)
            _writer.start()
        return _writer


def stop_writer() -> None:
    """Write every queued line and stop the writer; later records are handled inline."""
    global _writer
    with _writer_lock:
        writer, _writer = _writer, None
    if writer is not None:
        writer.stop()


def emit(
    logger: logging.Logger, level: int, message: str, args: tuple, extra: dict[str, Any]
) -> None:
    """Log like ``logger.log(level, message, *args, extra=extra)``, handlers on the writer.

    The caller has checked ``logger.isEnabledFor(level)``. If the logger has filters of its
    own, the record is made and filtered here, on the request thread, so that a filter
    reading thread-local or context state still sees the request's. Without filters (the
    usual case) the request thread only notes the time and its thread; the writer makes the
    record from that, with the same attributes (``Pending.record``).
    """
    if logger.disabled:
        return
    extra["server_time"] = server_time()
    writer = _writer
    if writer is not None and not logger.filters:
        thread = threading.current_thread()
        writer.put(Pending(level, message, args, extra, time.time(), thread.ident, thread.name))
        return
    record = make_record(logger, level, message, args, extra)
    if not logger.filter(record):
        return
    if writer is None:
        logger.callHandlers(record)
    else:
        writer.put(record)


def _forget_in_child() -> None:
    # A forked child has no writer thread, only its deque: log inline there.
    global _writer, _writer_lock
    _writer = None
    _writer_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
# Registered after logging's own atexit hook, so it runs first: no queued line is lost
# to logging.shutdown() closing the handlers.
atexit.register(stop_writer)
