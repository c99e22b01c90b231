"""The log line for connections refused over the connection limit, the same in every mode.

A client flood can be refused thousands of times a second, so the line comes at most every
few seconds, with the count since the last one.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("cserver")

LOG_INTERVAL = 5.0  # seconds between two refusal lines


class RefusalLog:
    """Counts refusals and logs them, rate-limited; one per server (or per ASGI protocol class)."""

    __slots__ = ("_logged_at", "_unreported")

    def __init__(self) -> None:
        self._unreported = 0
        self._logged_at = -1e9

    def refused(self, limit: int) -> None:
        """One more connection refused because `limit` connections were open."""
        self._unreported += 1
        now = time.monotonic()
        if now - self._logged_at < LOG_INTERVAL:
            return
        logger.warning(
            "cserver: connection limit (%d) reached; refused %d connection(s) with 503 "
            "(raise it with --connection-limit or CSERVER_CONNECTION_LIMIT)",
            limit,
            self._unreported,
        )
        self._unreported = 0
        self._logged_at = now
