"""One connection limit for several worker processes: a count per process in shared memory.

With ``--processes N`` every process accepts from the same listening socket, and the
kernel, not cserver, decides which one gets a connection. Splitting the limit (each
process limit/N) is simple but wrong whenever that distribution is uneven: measured with
``--connection-limit 100 --processes 2`` and 100 idle connections opened at once, one
process took about 70 of them and the split refused some 20 connections although only 100
were open. So the limit stays one number for the whole server: each process keeps the
count of its open connections in a slot of a shared mapping, and admits a connection only
while the sum of all slots stays below the limit.

Only the accepting (selector) thread of a process writes its slot, and a connection is
only ever added there: so a slot is never below the process's real count, and the sum
never undercounts. Connections that close in other threads lower the slot at that
thread's next loop turn (at most a tick later): until then the sum errs high, which can
refuse a connection a moment early but never admits one too many. The check and the
reservation happen under a POSIX record lock (``lockf``), which the kernel releases when
its holder dies, so a worker killed at the wrong moment cannot stop the others.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import tempfile


class ConnectionBudget:
    """Open connections per worker process, and the limit they share; create before forking."""

    def __init__(self, limit: int, processes: int) -> None:
        self.limit = limit
        self.processes = processes
        # Open for the server's lifetime: the mapping and the record lock live on it.
        self._file = tempfile.TemporaryFile(prefix="cserver-limit-")  # noqa: SIM115
        size = ctypes.sizeof(ctypes.c_int64) * processes
        self._file.truncate(size)
        self._map = mmap.mmap(self._file.fileno(), size)
        self.counts = (ctypes.c_int64 * processes).from_buffer(self._map)
        self.index = -1  # this process's slot; set in each worker after the fork

    def attach(self, index: int) -> None:
        """In a worker: from now on this process counts in slot ``index``."""
        self.index = index
        self.counts[index] = 0

    def clear(self, index: int) -> None:
        """In the parent: a worker died, and the kernel closed its connections."""
        self.counts[index] = 0

    def report(self, open_now: int) -> None:
        """From the accepting thread: this process's current count (only ever lower)."""
        self.counts[self.index] = open_now

    def total(self) -> int:
        return sum(self.counts)

    def admit(self, open_now: int) -> bool:
        """Reserve room for one more connection of this process; False at the limit."""
        fd = self._file.fileno()
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            self.counts[self.index] = open_now
            if sum(self.counts) >= self.limit:
                return False
            self.counts[self.index] = open_now + 1
            return True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        del self.counts
        self._map.close()
        self._file.close()
