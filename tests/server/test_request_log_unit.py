"""The request log's writer in one process: what the handlers receive, and from which thread."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator

import pytest

from cserver.server import requestlog
from cserver.server.logbatch import handle_batch
from cserver.server.logrecords import Pending, RecordMaker


class Collect(logging.Handler):
    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.requestlog")
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log
    log.handlers.clear()
    log.filters.clear()
    requestlog.stop_writer()


def _record(log: logging.Logger, level: int, text: str) -> logging.LogRecord:
    return log.makeRecord(log.name, level, __file__, 0, text, (), None)


def test_a_batch_to_a_stream_handler_keeps_order_levels_and_filters(logger) -> None:
    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    console.setLevel(logging.WARNING)
    console.addFilter(lambda record: "skip" not in record.getMessage())
    other = Collect()
    logger.addHandler(console)
    logger.addHandler(other)
    records = [
        _record(logger, logging.WARNING, "one"),
        _record(logger, logging.INFO, "quiet"),
        _record(logger, logging.ERROR, "skip me"),
        _record(logger, logging.ERROR, "two"),
    ]
    handle_batch(logger, records)
    assert stream.getvalue() == "one\ntwo\n"
    assert [r.getMessage() for r in other.records] == ["one", "quiet", "skip me", "two"]


def test_a_batch_reaches_the_parents_handlers_while_loggers_propagate(logger) -> None:
    child = logging.getLogger("tests.requestlog.child")
    parent_handler = Collect()
    logger.addHandler(parent_handler)
    try:
        handle_batch(child, [_record(child, logging.INFO, "up")])
        assert [r.getMessage() for r in parent_handler.records] == ["up"]
    finally:
        child.handlers.clear()


def test_pending_records_carry_the_request_threads_name_and_time(logger) -> None:
    made = RecordMaker(logger)
    first = made(Pending(logging.INFO, '"%s" %s', ("GET / HTTP/1.1", 200), {"a": 1}, 1e9, 7, "w"))
    second = made(Pending(logging.WARNING, "%s", ("x",), {}, 1e9 + 0.25, 8, "v"))
    assert first.getMessage() == '"GET / HTTP/1.1" 200'
    assert (first.threadName, first.thread, first.created, first.a) == ("w", 7, 1e9, 1)
    assert (second.levelname, second.threadName, second.msecs) == ("WARNING", "v", 250.0)
    assert not hasattr(second, "a")  # extra of one record never leaks into the next


def test_the_writer_delivers_every_line_in_order_and_stop_flushes(logger) -> None:
    handler = Collect()
    logger.addHandler(handler)
    requestlog.start_writer(logger)
    names = []

    def request_thread(n: int) -> None:
        names.append(threading.current_thread().name)
        for i in range(200):
            requestlog.emit(logger, logging.INFO, "%d %d", (n, i), {})

    threads = [threading.Thread(target=request_thread, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requestlog.stop_writer()
    assert len(handler.records) == 800
    for n in range(4):
        mine = [r for r in handler.records if r.args[0] == n]
        assert [r.args[1] for r in mine] == list(range(200))
        assert {r.threadName for r in mine} == {threads[n].name}
    assert all(r.server_time for r in handler.records)


def test_a_logger_filter_runs_on_the_request_thread(logger) -> None:
    seen = []

    def note_thread(record: logging.LogRecord) -> bool:
        seen.append(threading.current_thread().name)
        return True

    logger.addFilter(note_thread)
    logger.addHandler(Collect())
    requestlog.start_writer(logger)
    requestlog.emit(logger, logging.INFO, "x", (), {})
    requestlog.stop_writer()
    assert seen == [threading.current_thread().name]
