"""Random per-request delay, seeded so that a run that exposed a race can be replayed."""

from __future__ import annotations

import random
import secrets
import threading


class RandomDelay:
    """Draws delays uniformly from [min_ms, max_ms]; the same seed gives the same sequence."""

    def __init__(self, min_ms: int, max_ms: int, seed: int | None = None) -> None:
        if min_ms < 0 or max_ms < min_ms:
            raise ValueError(f"delay bounds must satisfy 0 <= min <= max, got {min_ms}..{max_ms}")
        self.min_ms = min_ms
        self.max_ms = max_ms
        # A seed is always chosen so that it can be printed and the run replayed.
        self.seed = seed if seed is not None else secrets.randbelow(2**31)
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw_ms(self) -> int:
        """The next delay of the sequence, in whole milliseconds."""
        with self._lock:
            return self._random.randint(self.min_ms, self.max_ms)

    def spawn(self) -> RandomDelay:
        """A derived sequence for a forked child, itself determined by this sequence."""
        with self._lock:
            child_seed = self._random.getrandbits(63)
        return RandomDelay(self.min_ms, self.max_ms, child_seed)
