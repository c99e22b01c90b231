"""Fixed-size tables for the diagnostics state, in memory every process of a server can see.

Fork mode serves each client connection in a child process, so counters kept in ordinary
Python objects would only ever show one child. The tables below live in an anonymous
shared mapping created before the first fork, and a lock made from a POSIX semaphore
guards them, so every child adds to the same numbers. The other modes use the same
layout in ordinary memory with a thread lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger("cserver")

MAX_WORKERS = 512
MAX_CONNECTIONS = 512
RECENT = 50
# A process killed while holding the lock must not stop every other one for good.
LOCK_TIMEOUT = 1.0

NAME_SIZE = 32
PATH_SIZE = 120
DB_SIZE = 48


class Counters(ctypes.Structure):
    _fields_ = [
        ("opened", ctypes.c_int64),
        ("reused", ctypes.c_int64),
        ("closed", ctypes.c_int64),
        ("left_open", ctypes.c_int64),
        ("requests", ctypes.c_int64),
        ("in_flight", ctypes.c_int64),
        ("generation", ctypes.c_int64),
        ("recent_next", ctypes.c_int64),
        ("untracked_workers", ctypes.c_int64),
        ("untracked_connections", ctypes.c_int64),
        ("lock_timeouts", ctypes.c_int64),
    ]


class WorkerSlot(ctypes.Structure):
    _fields_ = [
        ("used", ctypes.c_int32),
        ("busy", ctypes.c_int32),
        ("pid", ctypes.c_int64),
        ("generation", ctypes.c_int64),
        ("started", ctypes.c_double),
        ("last_request", ctypes.c_double),
        ("requests", ctypes.c_int64),
        ("name", ctypes.c_char * NAME_SIZE),
        ("mode", ctypes.c_char * 8),
        ("thread", ctypes.c_char * NAME_SIZE),
    ]


class ConnectionSlot(ctypes.Structure):
    _fields_ = [
        ("used", ctypes.c_int32),
        ("worker", ctypes.c_int32),  # WorkerSlot index, -1 when the worker table was full
        ("pid", ctypes.c_int64),  # the process that opened it
        ("serial", ctypes.c_int64),
        ("backend_pid", ctypes.c_int64),  # -1 when the backend has none
        ("opened", ctypes.c_double),
        ("requests", ctypes.c_int64),
        ("alias", ctypes.c_char * NAME_SIZE),
        ("vendor", ctypes.c_char * 16),
    ]


class RecentSlot(ctypes.Structure):
    _fields_ = [
        ("time", ctypes.c_double),
        ("duration_ms", ctypes.c_double),
        ("status", ctypes.c_int32),
        ("delay_ms", ctypes.c_int32),  # -1 when no delay was drawn
        ("method", ctypes.c_char * 8),
        ("path", ctypes.c_char * PATH_SIZE),
        ("worker", ctypes.c_char * NAME_SIZE),
        ("db", ctypes.c_char * DB_SIZE),
    ]


class Tables(ctypes.Structure):
    _fields_ = [
        ("counters", Counters),
        ("workers", WorkerSlot * MAX_WORKERS),
        ("connections", ConnectionSlot * MAX_CONNECTIONS),
        ("recent", RecentSlot * RECENT),
    ]


def put(text: str, size: int) -> bytes:
    """Encode for a fixed char field, cut to fit with room for the terminating NUL."""
    return text.encode("utf-8", "replace")[: size - 1]


def get(raw: bytes) -> str:
    """Decode a fixed char field; a multi-byte character cut by put() is dropped."""
    return raw.decode("utf-8", "ignore")


class Store:
    """The tables plus the lock that guards them."""

    def __init__(self, cross_process: bool) -> None:
        self.cross_process = cross_process
        self._lock: Any
        if cross_process:
            # Anonymous mappings are MAP_SHARED on Unix: children see the parent's pages.
            self._map: mmap.mmap | None = mmap.mmap(-1, ctypes.sizeof(Tables))
            self.tables = Tables.from_buffer(self._map)
            # The fork context's semaphore is unlinked at once and needs no tracker process.
            self._lock = multiprocessing.get_context("fork").Lock()
        else:
            self._map = None
            self.tables = Tables()
            self._lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[Tables]:
        """Hold the lock; if it ever times out, stop locking rather than slow every request."""
        # A semaphore has no owner: one held by a killed child stays held for good. After
        # one timeout every process goes on without it, and the page says counts may be off.
        acquired = False
        if not self.tables.counters.lock_timeouts:
            acquired = self._lock.acquire(timeout=LOCK_TIMEOUT)
            if not acquired:
                self.tables.counters.lock_timeouts += 1
                logger.warning("cserver diagnostics: lock timed out; counting without it now")
        try:
            yield self.tables
        finally:
            if acquired:
                self._lock.release()
