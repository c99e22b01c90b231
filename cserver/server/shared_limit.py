"""One connection limit for several worker processes: a count per process in shared memory.

With ``--processes N`` every process accepts from the same listening socket, and the
kernel, not cserver, decides which one gets a connection. Splitting the limit (each
process limit/N) is simple but refuses too early whenever that distribution is uneven:
before the balancing below, 100 connections opened at once against ``--processes 2``
landed 44/56, where a split of 50 each would have refused 6 of them with only 100 open,
and 16 landed 2/14 or 3/13 (a split of 8 would refuse 5 or 6). So the limit stays one
number for the whole server: each process keeps the count of its open connections in a
slot of a shared mapping, and admits a connection only while the sum of all slots stays
below the limit, whatever the distribution.

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
import time

# A slot of a process that does not serve (not started yet, or dead): not a count.
NOT_SERVING = -1
# Accept balancing: a process holding more than MARGIN connections above another leaves
# the listener to it for DEFER_STEP, and accepts anyway after DEFER_MAX (the other one may
# be stuck, or busier than its count says). With no margin and 5 ms steps, new-socket
# load (every connection short-lived, the counts always a little apart) lost about a
# third of its requests/s to the pauses; one connection of slack and 1 ms steps keep that
# cost small and still spread a burst of keep-alive clients within one connection.
MARGIN = 1
DEFER_STEP = 0.001
DEFER_MAX = 0.02


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
        for index in range(processes):
            self.counts[index] = NOT_SERVING
        self.index = -1  # this process's slot; set in each worker after the fork
        self._deferring_since = 0.0

    def attach(self, index: int) -> None:
        """In a worker: from now on this process counts in slot ``index``."""
        self.index = index
        self.counts[index] = 0

    def clear(self, index: int) -> None:
        """In the parent: a worker died, and the kernel closed its connections."""
        self.counts[index] = NOT_SERVING

    def report(self, open_now: int) -> None:
        """From the accepting thread: this process's current count (only ever lower)."""
        self.counts[self.index] = open_now

    def total(self) -> int:
        return sum(count for count in self.counts if count > 0)

    def leave_to_peer(self, open_now: int) -> bool:
        """Whether to leave a waiting connection to a process that holds fewer.

        The kernel wakes every process waiting on the shared listener, and whichever runs
        first accepts: 16 keep-alive clients that connect at once were measured to land
        2/14 or 3/13 as often as 8/8, leaving one process's workers idle for the whole
        life of those connections. A process with more than MARGIN connections above
        another therefore steps back for DEFER_STEP, and accepts after all once DEFER_MAX
        has passed without the other taking the connection.
        """
        counts = self.counts
        fewer = any(
            NOT_SERVING < counts[i] < open_now - MARGIN
            for i in range(self.processes)
            if i != self.index
        )
        now = time.monotonic()
        if not fewer or now - self._deferring_since > 2 * DEFER_MAX:
            # Not behind anyone, or a new episode: start counting from now.
            self._deferring_since = now if fewer else 0.0
            return fewer
        if now - self._deferring_since < DEFER_MAX:
            return True
        self._deferring_since = 0.0
        return False

    def admit(self, open_now: int) -> bool:
        """Reserve room for one more connection of this process; False at the limit."""
        fd = self._file.fileno()
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            self.counts[self.index] = open_now
            if self.total() >= self.limit:
                return False
            self.counts[self.index] = open_now + 1
            return True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        del self.counts
        self._map.close()
        self._file.close()
