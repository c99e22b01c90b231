"""A throwaway PostgreSQL cluster for the test suite, started from the installed binaries."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from testkit.ports import free_port

T = TypeVar("T")

SUPERUSER = "postgres"
OS_USER = "postgres"  # unprivileged account that owns the cluster when we run as root
HOST = "127.0.0.1"

# Settings for speed and quiet logs; durability does not matter for a throwaway cluster.
SERVER_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
    "jit": "off",
    "shared_buffers": "64MB",
    # Read statistics fresh on every query instead of a per-transaction snapshot.
    "stats_fetch_consistency": "none",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
    "log_connections": "off",
    "log_disconnections": "off",
    "log_checkpoints": "off",
    "logging_collector": "off",
}


class PgUnavailable(RuntimeError):
    """The PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed."""


class PgStartError(RuntimeError):
    """The cluster could not be created or did not become ready."""


class Session(NamedTuple):
    """One client backend as seen in pg_stat_activity."""

    pid: int
    application_name: str
    state: str | None
    backend_start: Any
    query: str


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll predicate until it returns a truthy value (returned) or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout:g}s (last value: {value!r})")
        time.sleep(interval)


def find_bindir() -> Path:
    """Return the bin directory of the newest installed PostgreSQL server, or raise."""
    override = os.environ.get("CSERVER_PG_BINDIR")
    candidates: list[Path] = []
    if override:
        candidates.append(Path(override))
    else:
        # Debian layout: /usr/lib/postgresql/<major>/bin; newest major first.
        versions = []
        for d in Path("/usr/lib/postgresql").glob("*/bin"):
            m = re.fullmatch(r"(\d+)(?:\.(\d+))?", d.parent.name)
            if m:
                versions.append(((int(m.group(1)), int(m.group(2) or 0)), d))
        candidates.extend(d for _, d in sorted(versions, reverse=True))
        # Other layouts put the server binaries on PATH.
        initdb = shutil.which("initdb")
        if initdb:
            candidates.append(Path(initdb).parent)
    for d in candidates:
        if all((d / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    where = override or "/usr/lib/postgresql/*/bin or PATH"
    raise PgUnavailable(
        f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in {where}"
    )


def _clean_env() -> dict[str, str]:
    """Environment for the server tools without PG* variables that could redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    return env


class PgCluster:
    """A fresh PostgreSQL cluster on a free port of 127.0.0.1 in a temporary directory."""

    def __init__(self, bindir: Path | str | None = None) -> None:
        self.bindir = Path(bindir) if bindir else find_bindir()
        self.host = HOST
        self.port = 0
        self.user = SUPERUSER
        self.base: Path | None = None
        self._as_root = os.geteuid() == 0
        self._admin: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._running = False
        self.start_seconds = 0.0

    # -- paths -------------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        """Data directory of the cluster."""
        assert self.base is not None
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        """Server log file (kept until stop() for diagnostics)."""
        assert self.base is not None
        return self.base / "server.log"

    @property
    def sockdir(self) -> Path:
        """Unix socket directory, private to this cluster."""
        assert self.base is not None
        return self.base / "sock"

    # -- lifecycle ---------------------------------------------------------------------

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a server tool, as the postgres account when we are root (postgres refuses root)."""
        cmd = [str(a) for a in args]
        if self._as_root:
            if shutil.which("setpriv"):
                prefix = ["setpriv", f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups"]
            else:
                prefix = ["runuser", "-u", OS_USER, "--"]
            cmd = prefix + cmd
        return subprocess.run(
            cmd,
            env=_clean_env(),
            cwd=str(self.base),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def _make_base(self) -> None:
        """Create the temp directory, owned by the account that will run the server."""
        base = Path(tempfile.mkdtemp(prefix="cserver-pg-"))
        if self._as_root:
            try:
                pw = pwd.getpwnam(OS_USER)
            except KeyError:
                shutil.rmtree(base, ignore_errors=True)
                raise PgUnavailable(
                    f"running as root but there is no {OS_USER!r} account"
                ) from None
            os.chown(base, pw.pw_uid, pw.pw_gid)
            self.base = base
            # $TMPDIR may sit under a directory the postgres account cannot enter.
            if self._run(["test", "-w", str(base)]).returncode != 0:
                shutil.rmtree(base, ignore_errors=True)
                base = Path(tempfile.mkdtemp(prefix="cserver-pg-", dir="/tmp"))
                os.chown(base, pw.pw_uid, pw.pw_gid)
        self.base = base

    def start(self, timeout: float = 60) -> PgCluster:
        """Create and start the cluster; raise PgStartError with the log tail on failure."""
        t0 = time.monotonic()
        self._make_base()
        # Registered before anything can start, so a failed start still cleans up.
        atexit.register(self.stop)
        try:
            self._initdb(timeout)
            last_error = ""
            for _attempt in range(3):
                self.port = free_port(HOST)  # may race; start() retries
                self._write_conf()
                res = self._run(
                    [
                        self.bindir / "pg_ctl",
                        "start",
                        "-D",
                        self.datadir,
                        "-l",
                        self.logfile,
                        "-w",
                        "-t",
                        str(int(timeout)),
                    ],
                    timeout=timeout + 10,
                )
                if res.returncode == 0:
                    self._running = True
                    break
                last_error = (res.stdout + res.stderr).strip() + "\n" + self._log_tail()
                # Another process took the port between our check and the bind: try again.
                if "could not bind" not in last_error and "already in use" not in last_error:
                    break
            if not self._running:
                raise PgStartError(f"pg_ctl start failed:\n{last_error}")
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _initdb(self, timeout: float) -> None:
        """Run initdb with trust auth for the superuser."""
        res = self._run(
            [
                self.bindir / "initdb",
                "-D",
                self.datadir,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-locale",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            timeout=timeout,
        )
        if res.returncode != 0:
            raise PgStartError(f"initdb failed:\n{(res.stdout + res.stderr).strip()}")

    def _write_conf(self) -> None:
        """Write our settings to postgresql.auto.conf (it overrides postgresql.conf)."""
        self._run(["mkdir", "-p", self.sockdir])
        settings = dict(SERVER_SETTINGS, port=str(self.port))
        settings["unix_socket_directories"] = f"'{self.sockdir}'"
        text = "".join(f"{k} = {v}\n" for k, v in settings.items())
        conf = self.datadir / "postgresql.auto.conf"
        conf.write_text(text)  # as root we can write the postgres-owned file; owner is kept

    def _log_tail(self, lines: int = 20) -> str:
        """Last lines of the server log, for error messages."""
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait_ready(self, timeout: float) -> None:
        """Bounded wait until a TCP connection to the postgres database succeeds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._admin_conn()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise PgStartError(
                        f"server not ready after {timeout:g}s: {exc}\n{self._log_tail()}"
                    ) from exc
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server immediately and delete its directory (safe to call twice)."""
        atexit.unregister(self.stop)
        with self._lock:
            if self._admin is not None:
                with contextlib.suppress(Exception):
                    self._admin.close()
                self._admin = None
        if self.base is None:
            return
        if self._running or (self.datadir / "postmaster.pid").exists():
            res = self._run(
                [self.bindir / "pg_ctl", "stop", "-D", self.datadir, "-m", "immediate", "-w"],
                timeout=30,
            )
            if res.returncode != 0:
                self._kill_postmaster()
            self._running = False
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None

    def _kill_postmaster(self) -> None:
        """Last resort when pg_ctl could not stop the server: SIGQUIT the postmaster."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)

    def __enter__(self) -> PgCluster:
        return self.start() if self.base is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- connection strings ------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq conninfo string for dbname as the superuser over TCP."""
        return (
            f"host={self.host} port={self.port} user={self.user} dbname={dbname} connect_timeout=10"
        )

    def database_url(self, dbname: str) -> str:
        """DATABASE_URL form: postgres://USER@127.0.0.1:PORT/DBNAME."""
        return f"postgres://{self.user}@{self.host}:{self.port}/{dbname}"

    # -- admin queries -----------------------------------------------------------------

    def _admin_conn(self) -> psycopg.Connection[Any]:
        """The shared autocommit admin connection to the postgres database (reconnects)."""
        if self._admin is None or self._admin.closed or self._admin.broken:
            self._admin = psycopg.connect(
                self.dsn("postgres"), autocommit=True, application_name="pgcluster-admin"
            )
        return self._admin

    def _execute(self, query: Any, params: Any = None, row_factory: Any = None) -> list[Any]:
        """Run one statement on the admin connection; retry once if it was dropped."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._admin_conn()
                try:
                    with conn.cursor(row_factory=row_factory) as cur:
                        cur.execute(query, params)
                        return cur.fetchall() if cur.description else []
                except psycopg.OperationalError:
                    # A test may have terminated every backend; reconnect and retry once.
                    if attempt == 2 or not conn.broken:
                        raise
                    self._admin = None
        raise AssertionError("unreachable")

    def create_database(self, name: str) -> str:
        """(Re)create an empty database called name and return the name."""
        ident = sql.Identifier(name)
        self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        self._execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident))
        return name

    def drop_database(self, name: str) -> None:
        """Drop database name, disconnecting any sessions still using it."""
        ident = sql.Identifier(name)
        self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))

    def sessions(self, dbname: str) -> list[Session]:
        """Client backends connected to dbname now (not counting this admin session)."""
        return self._execute(
            "SELECT pid, application_name, state, backend_start, query"
            " FROM pg_stat_activity"
            " WHERE datname = %s AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid() ORDER BY backend_start, pid",
            (dbname,),
            row_factory=class_row(Session),
        )

    def sessions_opened(self, dbname: str) -> int:
        """Sessions ever opened on dbname (pg_stat_database.sessions).

        Backends report this counter asynchronously (at the end of a transaction, at most
        once a second, and when they exit), so it lags: poll with wait_for().
        """
        rows = self._execute(
            "SELECT coalesce(sum(sessions), 0)::bigint FROM pg_stat_database WHERE datname = %s",
            (dbname,),
        )
        return int(rows[0][0])

    def terminate(self, pid: int) -> bool:
        """Terminate backend pid (pg_terminate_backend); True if it was signalled."""
        rows = self._execute("SELECT pg_terminate_backend(%s)", (pid,))
        return bool(rows[0][0])

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Same as the module-level wait_for, for fixture users."""
        return wait_for(predicate, timeout)
