"""Building blocks of bench/load.py: an asyncio HTTP/1.1 client and a /proc sampler."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testkit.procs import child_states

HOST = "127.0.0.1"


class Outcomes(Counter):
    """How requests ended: "200", "503", "4xx", "error:ConnectionResetError", ..."""

    def errors(self) -> int:
        return sum(n for key, n in self.items() if key.startswith("error:"))

    def add_status(self, status: int) -> None:
        key = str(status) if status in (200, 503, 408) else f"{status // 100}xx"
        self[key] += 1


async def connect(port: int, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)


async def read_response(reader: asyncio.StreamReader, timeout: float) -> tuple[int, bool, bytes]:
    """(status, server closes, body) of the next response."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status = int(head[9:12])
    lowered = head.lower()
    length = 0
    marker = lowered.find(b"\r\ncontent-length:")
    if marker >= 0:
        end = lowered.find(b"\r\n", marker + 2)
        length = int(lowered[marker + 17 : end].strip())
    body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return status, b"\r\nconnection: close" in lowered, body


async def request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes, timeout: float
) -> tuple[int, bool, bytes]:
    writer.write(raw)
    await writer.drain()
    return await read_response(reader, timeout)


def get(path: str, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"GET %s HTTP/1.1\r\nHost: load\r\n%s\r\n" % (path.encode(), extra)


def post(path: str, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: load\r\nContent-Length: %d\r\n\r\n%s" % (
        path.encode(),
        len(body),
        body,
    )


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2)


def classify(exc: BaseException) -> str:
    return f"error:{type(exc).__name__}"


# /proc readings of the server process.


def proc_status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Threads", "VmRSS"):
            values[key] = int(rest.split()[0])
    return values


def fd_targets(pid: int) -> list[str]:
    targets = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            targets.append(os.readlink(entry))
    return targets


@dataclass
class Snapshot:
    threads: int
    fds: int
    rss_kib: int
    db: int
    children: int = 0
    zombies: int = 0


@dataclass
class Sampler:
    """Samples a server process in a thread; keeps maxima and the zombie ages of children."""

    pid: int
    db_count: Callable[[], int] = lambda: 0
    interval: float = 0.05
    watch_children: bool = False
    samples: list[Snapshot] = field(default_factory=list)
    max_zombie_age: float = 0.0
    _zombie_since: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def snapshot(self) -> Snapshot:
        status = proc_status(self.pid)
        snap = Snapshot(
            threads=status["Threads"],
            fds=len(fd_targets(self.pid)),
            rss_kib=status["VmRSS"],
            db=self.db_count(),
        )
        if self.watch_children:
            states = child_states(self.pid)
            snap.children = len(states)
            now = time.monotonic()
            zombies = {pid for pid, state in states.items() if state == "Z"}
            snap.zombies = len(zombies)
            for pid in zombies:
                since = self._zombie_since.setdefault(pid, now)
                self.max_zombie_age = max(self.max_zombie_age, now - since)
            for pid in list(self._zombie_since):
                if pid not in zombies:
                    del self._zombie_since[pid]
        return snap

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, KeyError):
                self.samples.append(self.snapshot())

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def peak(self, attr: str) -> int:
        return max((getattr(s, attr) for s in self.samples), default=0)


def settle(
    sample: Callable[[], Snapshot], wanted: Callable[[Snapshot], bool], timeout: float
) -> tuple[Snapshot, float]:
    """Poll until ``wanted(snapshot)``; (last snapshot, seconds it took or -1 on timeout)."""
    started = time.monotonic()
    while True:
        snap = sample()
        if wanted(snap):
            return snap, time.monotonic() - started
        if time.monotonic() - started > timeout:
            return snap, -1.0
        time.sleep(0.1)


def quiet(sampler: Sampler, timeout: float = 10.0) -> Snapshot:
    """A snapshot once two in a row, 0.2 s apart, agree: the server is at rest."""
    previous = sampler.snapshot()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        current = sampler.snapshot()
        if (current.threads, current.fds, current.db) == (
            previous.threads,
            previous.fds,
            previous.db,
        ):
            return current
        previous = current
    return previous


# Load generators used by bench/load.py.


async def burst(port: int, conns: int, per_conn: int, timeout: float) -> Outcomes:
    """``conns`` connections opened together; each sends ``per_conn`` keep-alive requests."""
    outcomes = Outcomes()
    connected = 0
    all_in = asyncio.Event()

    async def client() -> None:
        nonlocal connected
        try:
            reader, writer = await connect(port, timeout)
        except Exception as exc:
            outcomes["connect-" + classify(exc)] += 1
            return
        connected += 1
        if connected == conns:
            all_in.set()
        # Hold every connection open at once (bounded: the server's keep-alive timeout
        # would otherwise close the first ones before they speak).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 3)
        try:
            for n in range(per_conn):
                path = "/hello" if n % 2 == 0 else "/inflight?ms=5"
                status, closes, _ = await request(reader, writer, get(path), timeout)
                outcomes.add_status(status)
                if closes:
                    break
        except Exception as exc:
            outcomes[classify(exc)] += 1
        finally:
            await close_writer(writer)

    await asyncio.gather(*(client() for _ in range(conns)))
    return outcomes


async def one_get(port: int) -> int:
    reader, writer = await connect(port, 2)
    try:
        status, _, _ = await request(reader, writer, get("/hello", close=True), 2)
        return status
    finally:
        await close_writer(writer)


MALFORMED = [
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    b"GET /\r\n",
    b"POST /echo HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
]


async def soak(port: int, seconds: float, clients: int) -> Outcomes:
    outcomes = Outcomes()
    deadline = time.monotonic() + seconds
    rng = random.Random(1234)

    async def one_round(kind: int) -> None:
        reader, writer = await connect(port, 10)
        try:
            if kind < 5:  # keep-alive burst
                for _ in range(5):
                    outcomes.add_status((await request(reader, writer, get("/hello"), 10))[0])
            elif kind < 7:
                outcomes.add_status((await request(reader, writer, get("/db", True), 10))[0])
            elif kind == 7:
                body = os.urandom(1024).hex().encode()
                outcomes.add_status((await request(reader, writer, post("/echo", body), 10))[0])
            elif kind == 8:
                writer.write(rng.choice(MALFORMED))
                data = await asyncio.wait_for(reader.read(), 10)
                outcomes[
                    "bad-request-answered" if data[9:10] == b"4" or not data else "bad-request-odd"
                ] += 1
            elif kind == 9:  # gone mid-request
                writer.write(b"POST /echo HTTP/1.1\r\nHost: load\r\nContent-Length: 50\r\n\r\npart")
                outcomes["left-mid-request"] += 1
            else:  # too slow: the header timeout answers
                writer.write(b"GET /hello HTTP/1.1\r\nHost: load\r\n")
                data = await asyncio.wait_for(reader.read(), 30)
                outcomes[
                    "slow-head-408" if data.startswith(b"HTTP/1.1 408") else "slow-head-odd"
                ] += 1
        finally:
            await close_writer(writer)

    async def client() -> None:
        while time.monotonic() < deadline:
            try:
                await one_round(rng.randrange(11))
            except Exception as exc:
                outcomes[classify(exc)] += 1
            await asyncio.sleep(0.05)  # moderate, bounded load

    await asyncio.gather(*(client() for _ in range(clients)))
    return outcomes


async def db_burst(port: int, count: int) -> None:
    async def one() -> None:
        reader, writer = await connect(port, 10)
        try:
            await request(reader, writer, get("/db", close=True), 10)
        finally:
            await close_writer(writer)

    await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
