"""Which rows of the shared tables belong to whom: worker slots, connection slots, and the
reaping of those whose worker ended (its open connections are counted as left open)."""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

from cserver.diagnostics import shared
from cserver.diagnostics.shared import Tables
from cserver.procutil import process_alive


class Slots:
    """This process's claims on the tables; every method is called with the store's lock held."""

    def __init__(self) -> None:
        self._local = threading.local()
        # Worker slot -> its thread, for slots this process filled. Lives in process memory:
        # a forked child judges other children by their pid instead.
        self._threads: dict[int, weakref.ref[threading.Thread]] = {}
        self._worker_hint = 0
        self._conn_hint = 0

    def own_worker(self, t: Tables) -> int:
        slot = getattr(self._local, "slot", -1)
        if slot < 0:
            return -1
        w = t.workers[slot]
        if w.used and w.generation == self._local.generation and w.pid == os.getpid():
            return slot
        return -1

    def worker(self, t: Tables, name: str, mode: str) -> int:
        slot = self.own_worker(t)
        if slot >= 0:
            return slot
        slot = self._free(t.workers, "_worker_hint")
        if slot < 0:
            self.reap(t)
            slot = self._free(t.workers, "_worker_hint")
        if slot < 0:
            t.counters.untracked_workers += 1
            return -1
        t.counters.generation += 1
        thread = threading.current_thread()
        w = t.workers[slot]
        w.used = 1
        w.busy = 0
        w.pid = os.getpid()
        w.generation = t.counters.generation
        w.started = time.time()
        w.last_request = 0.0
        w.requests = 0
        w.name = shared.put(name, shared.NAME_SIZE)
        w.mode = shared.put(mode, 8)
        w.thread = shared.put(thread.name, shared.NAME_SIZE)
        self._threads[slot] = weakref.ref(thread)
        self._local.slot = slot
        self._local.generation = w.generation
        return slot

    def free_connection(self, t: Tables) -> int:
        index = self._free(t.connections, "_conn_hint")
        if index < 0:
            self.reap(t)
            index = self._free(t.connections, "_conn_hint")
        return index

    def _free(self, table: Any, hint_name: str) -> int:
        size = len(table)
        start = getattr(self, hint_name)
        for step in range(size):
            index = (start + step) % size
            if not table[index].used:
                setattr(self, hint_name, (index + 1) % size)
                return index
        return -1

    def _alive(self, slot: int, w: shared.WorkerSlot) -> bool:
        if w.pid != os.getpid():
            return process_alive(w.pid)
        ref = self._threads.get(slot)
        thread = ref() if ref is not None else None
        return thread is not None and thread.is_alive()

    def reap(self, t: Tables) -> None:
        """Free the slots of workers that ended; their open connections were left open."""
        ended = set()
        for slot, w in enumerate(t.workers):
            if w.used and not self._alive(slot, w):
                w.used = 0
                ended.add(slot)
                self._threads.pop(slot, None)
        pids: dict[int, bool] = {}
        for s in t.connections:
            if not s.used:
                continue
            if s.worker >= 0:
                gone = s.worker in ended
            else:
                if s.pid not in pids:
                    pids[s.pid] = s.pid != os.getpid() and not process_alive(s.pid)
                gone = pids[s.pid]
            if gone:
                s.used = 0
                t.counters.left_open += 1
