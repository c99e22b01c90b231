"""Database sessions seen by PostgreSQL, or by the server's diagnostics page as a fallback."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cserver.probe.client import Target

STATS_PATH = "/__cserver__/stats"


class PgStatsError(Exception):
    """PostgreSQL could not be read; the message is one line and holds no password."""


def is_postgres_url(url: str | None) -> bool:
    """True for postgres:// and postgresql:// URLs."""
    return bool(url) and urlsplit(url or "").scheme in ("postgres", "postgresql")


def _scrub(message: str, url: str) -> str:
    """One line of an error message with the URL's password removed, just in case."""
    password = urlsplit(url).password
    line = " ".join(message.split())
    return line.replace(password, "***") if password else line


@dataclass(frozen=True)
class DbSnapshot:
    """Sessions opened so far (a counter), client connections open now, and how many of
    those opened since the monitor connected."""

    sessions: int | None
    open_connections: int | None
    opened_since_start: int = 0


class PgMonitor:
    """One autocommit connection to the target database that reads its statistics."""

    def __init__(self, url: str, connect_timeout: float = 3.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._conn: Any = None
        self._version = 0
        self._started: Any = None  # the server's clock when the monitor connected

    def open(self) -> None:
        """Connect; raise PgStatsError with a password-free one-line reason on failure."""
        import psycopg

        try:
            self._conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout))
            )
        except psycopg.Error as exc:
            raise PgStatsError(_scrub(str(exc), self.url)) from None
        self._version = self._conn.info.server_version
        self._started = self._conn.execute("SELECT now()").fetchone()[0]
        # Our own session is one of the database's sessions too: flush its pending counters
        # now, so the baseline already contains it and the delta is the server's alone.
        self._flush()

    def _flush(self) -> None:
        if self._version >= 150000:
            self._conn.execute("SELECT pg_stat_force_next_flush()")

    def snapshot(self) -> DbSnapshot:
        """Read pg_stat_database.sessions and count the other client backends on the db."""
        sessions_sql = "sessions" if self._version >= 140000 else "NULL::bigint"
        try:
            self._conn.execute("SELECT pg_stat_clear_snapshot()")
            row = self._conn.execute(
                f"SELECT (SELECT {sessions_sql} FROM pg_stat_database"
                "         WHERE datname = current_database()),"
                "       (SELECT count(*) FROM pg_stat_activity"
                "         WHERE datname = current_database()"
                "           AND backend_type = 'client backend'"
                "           AND pid <> pg_backend_pid()),"
                # An idle backend may keep its session count unflushed for seconds
                # (PostgreSQL 15+ flushes idle backends' statistics lazily): the sessions
                # still open that started after the baseline are opened ones in any case.
                "       (SELECT count(*) FROM pg_stat_activity"
                "         WHERE datname = current_database()"
                "           AND backend_type = 'client backend'"
                "           AND backend_start >= %s"
                "           AND pid <> pg_backend_pid())",
                (self._started,),
            ).fetchone()
        except Exception as exc:
            raise PgStatsError(_scrub(str(exc), self.url)) from None
        return DbSnapshot(row[0], row[1], row[2])

    def settled_snapshot(self, max_wait: float = 3.0, interval: float = 0.2) -> DbSnapshot:
        """Poll until the counters stop moving (backends flush statistics lazily), bounded."""
        deadline = time.monotonic() + max_wait
        last = self.snapshot()
        stable = 0
        while stable < 2 and time.monotonic() < deadline:
            time.sleep(interval)
            now = self.snapshot()
            stable = stable + 1 if now == last else 0
            last = now
        return last

    def close(self) -> None:
        """Close the monitoring connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def fetch_server_stats(target: Target, timeout: float = 2.0) -> dict[str, int] | None:
    """The `connections` counters from the server's diagnostics JSON, or None if absent."""
    conn = target.connection(timeout)
    try:
        conn.request("GET", STATS_PATH, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if resp.status != 200:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    counters = data.get("connections") if isinstance(data, dict) else None
    if not isinstance(counters, dict):
        return None
    return {k: v for k, v in counters.items() if isinstance(v, int)}
