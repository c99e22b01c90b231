"""The load driver behind `cserver probe`: N GET requests at concurrency C, with threads."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Bodies larger than this are not parsed as JSON: /whoami answers a few hundred bytes and
# decoding big bodies would make the probe, not the server, the bottleneck.
_MAX_JSON_BODY = 64 * 1024
_DB_PID_RE = re.compile(r"pid=(\d+)")
_USER_AGENT = "cserver-probe"


class TargetError(ValueError):
    """The URL given to the probe cannot be used (bad scheme, no host, bad port)."""


@dataclass(frozen=True)
class Target:
    """Where the probe sends its requests."""

    scheme: str
    host: str
    port: int
    path: str  # path plus query string, as sent on the request line

    @property
    def base(self) -> str:
        """scheme://host:port without path, for sibling URLs such as the stats page."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A new (not yet connected) connection to the target."""
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def parse_target(url: str) -> Target:
    """Split an http(s) URL into a Target, or raise TargetError with the reason."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    if parts.scheme not in ("http", "https"):
        raise TargetError("expected http://HOST[:PORT]/PATH or https://...")
    if not parts.hostname:
        raise TargetError("expected a host name, e.g. http://127.0.0.1:8000/whoami")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    default_port = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default_port, path)


def check_reachable(target: Target, timeout: float) -> str | None:
    """Open and close one TCP connection; None when it works, else the reason."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


@dataclass
class Sample:
    """One request's outcome."""

    latency: float | None  # seconds from connect/send to the last body byte; None: no response
    status: int | None
    error: str | None  # error kind, e.g. "timeout", "refused", "http 500"
    worker: str | None = None
    worker_source: str | None = None  # "header" or "json"
    db_pids: tuple[int, ...] = ()
    process: int | None = None  # the server process that answered (X-Cserver-Pid, "pid")


@dataclass
class LoadResult:
    """All samples of one run plus its wall-clock time."""

    samples: list[Sample]
    elapsed: float
    stopped_early: bool  # the duration limit ended the run before all requests were sent


@dataclass
class LoadPlan:
    """What to send: how many requests, how many at once, and the bounds."""

    target: Target
    requests: int = 200
    concurrency: int = 8
    keepalive: bool = False
    timeout: float = 10.0
    duration_limit: float = 60.0
    extra_headers: dict[str, str] = field(default_factory=dict)


def error_kind(exc: BaseException) -> str:
    """A short, stable name for a failed request, used to count errors per kind."""
    # Order matters: RemoteDisconnected is both a ConnectionResetError and an HTTPException.
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed without response"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe"
    if isinstance(exc, http.client.HTTPException):
        return "bad response"
    return type(exc).__name__


def process_of(headers: http.client.HTTPMessage, body: bytes) -> int | None:
    """The pid of the server process that answered: X-Cserver-Pid, or a JSON body's "pid"."""
    header = headers.get("X-Cserver-Pid", "")
    if header.isdigit():
        return int(header)
    if body.startswith(b"{") and len(body) <= _MAX_JSON_BODY:
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            if isinstance(data, dict) and isinstance(data.get("pid"), int):
                return data["pid"]
    return None


def identify(
    headers: http.client.HTTPMessage, body: bytes
) -> tuple[str | None, str | None, tuple[int, ...]]:
    """Worker identity, its source and DB backend pids from headers or a /whoami JSON body."""
    worker = headers.get("X-Cserver-Worker")
    pid = headers.get("X-Cserver-Pid")
    if worker and pid:
        # "pool/pool-3" repeats in every worker process of --processes N: the pid tells them apart.
        worker = f"{worker}@{pid}"
    source = "header" if worker else None
    db_header = headers.get("X-Cserver-Db")
    pids = tuple(int(p) for p in _DB_PID_RE.findall(db_header)) if db_header else ()
    if (worker and db_header) or not body.startswith(b"{") or len(body) > _MAX_JSON_BODY:
        return worker, source, pids
    try:
        data = json.loads(body)
    except ValueError:
        return worker, source, pids
    if not isinstance(data, dict):
        return worker, source, pids
    if not worker:
        # Combine what is there: "pool-3" alone repeats across forked processes, a thread id
        # alone repeats across processes too; together they name one worker.
        keys = [k for k in ("pid", "worker", "thread") if data.get(k) is not None]
        if keys:
            worker = "/".join(str(data[k]) for k in keys)
            source = "json"
    if not pids and isinstance(data.get("db_backend_pid"), int):
        pids = (data["db_backend_pid"],)
    return worker, source, pids


class _Driver:
    """Shared state of one run: hands out request slots and collects samples."""

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.lock = threading.Lock()
        self.issued = 0
        self.samples: list[Sample] = []
        self.deadline = 0.0
        self.stopped_early = False
        self.last_done = 0.0
        self.headers = {
            "User-Agent": _USER_AGENT,
            "Accept": "*/*",
            "Connection": "keep-alive" if plan.keepalive else "close",
            **plan.extra_headers,
        }

    def take_slot(self) -> bool:
        with self.lock:
            if self.issued >= self.plan.requests:
                return False
            if time.perf_counter() >= self.deadline:
                self.stopped_early = True
                return False
            self.issued += 1
            return True

    def done(self) -> int:
        with self.lock:
            return len(self.samples)

    def worker_loop(self) -> None:
        conn: http.client.HTTPConnection | None = None
        try:
            while self.take_slot():
                sample, conn = self.one_request(conn)
                with self.lock:
                    self.samples.append(sample)
                    self.last_done = time.perf_counter()
        finally:
            if conn is not None:
                conn.close()

    def one_request(
        self, conn: http.client.HTTPConnection | None
    ) -> tuple[Sample, http.client.HTTPConnection | None]:
        plan = self.plan
        start = time.perf_counter()
        try:
            if conn is None:
                conn = plan.target.connection(plan.timeout)
                conn.connect()  # inside the timed section: connecting is part of the cost
            conn.request("GET", plan.target.path, headers=self.headers)
            resp = conn.getresponse()
            body = resp.read()
            latency = time.perf_counter() - start
        except Exception as exc:  # any failure is one counted error, never a crash
            if conn is not None:
                conn.close()
            return Sample(None, None, error_kind(exc)), None
        if resp.will_close or not plan.keepalive:
            conn.close()
            conn = None
        worker, source, pids = identify(resp.headers, body)
        error = f"http {resp.status}" if resp.status >= 400 else None
        process = process_of(resp.headers, body)
        return Sample(latency, resp.status, error, worker, source, pids, process), conn


def run_load(
    plan: LoadPlan,
    on_progress: Callable[[int, int], None] | None = None,
    tick: float = 0.1,
) -> LoadResult:
    """Send the planned requests from `concurrency` threads; blocks until done or the limit."""
    driver = _Driver(plan)
    threads = [
        threading.Thread(target=driver.worker_loop, name=f"probe-{i}", daemon=True)
        for i in range(min(plan.concurrency, plan.requests))
    ]
    start = time.perf_counter()
    driver.deadline = start + plan.duration_limit
    for t in threads:
        t.start()
    # A request started just before the deadline may take up to `timeout` more (twice for
    # connect + read); past that a thread is stuck and is left behind (daemon).
    hard_stop = driver.deadline + 2 * plan.timeout + 1.0
    for t in threads:
        while t.is_alive() and time.perf_counter() < hard_stop:
            t.join(tick)
            if on_progress is not None:
                on_progress(driver.done(), plan.requests)
    with driver.lock:
        samples = list(driver.samples)
        # Time to the last completion, not to the last join: joins poll every `tick`.
        elapsed = (driver.last_done or time.perf_counter()) - start
        stopped = driver.stopped_early or any(t.is_alive() for t in threads)
    if on_progress is not None:
        on_progress(len(samples), plan.requests)
    return LoadResult(samples, elapsed, stopped)
