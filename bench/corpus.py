#!/usr/bin/env python3
"""Replay gunicorn's request corpus (bench/corpus/, see its README) against cserver.

Usage: python bench/corpus.py [--modes pool,thread] [--source DIR] [--verbose]

Each ``.http`` file is decoded as gunicorn's test suite reads it (real line breaks are
layout; ``\\r\\n``, ``\\n``, ``\\t``, ``\\0`` and ``\\xHH`` are escapes), sent on a new
connection whose sending side is then half-closed, and the answer read until the server
closes (5 s at most). ``--source`` serves cserver from another checkout, e.g. the code
before a change (``git archive COMMIT | tar -x -C DIR``).

Prints per mode:
  invalid  rejected / total: answered 4xx or 5xx, or closed with no answer (accepted = 2xx)
  valid    right / wrong / rejected: right = every answer 2xx; rejected = the first
           answer an error; wrong = anything else (no answer, or an error after a 2xx)
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script: make `testkit` importable
    sys.path.insert(0, str(HERE.parent))


CORPUS = HERE / "corpus"
TIMEOUT = 5.0
_STATUS_RE = re.compile(rb"HTTP/1\.[01] ([0-9]{3}) ")
_HEX_RE = re.compile(rb"\\x([0-9A-Fa-f]{2})")
_NO_HOST = b"without a Host header"  # cserver's 400 detail; the old code's too


def decode(raw: bytes) -> bytes:
    """The bytes a corpus file stands for."""
    data = raw.replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    data = data.replace(b"\\0", b"\x00").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    return _HEX_RE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def replay(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, and read everything until the server closes."""
    deadline = time.monotonic() + TIMEOUT
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # refused mid-send: what it answered is still to be read
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def statuses(answer: bytes) -> list[int]:
    # The application's bodies and cserver's error bodies never hold a status line.
    return [int(code) for code in _STATUS_RE.findall(answer)]


@dataclass
class Tally:
    invalid_rejected: int = 0
    invalid_total: int = 0
    valid_right: int = 0
    valid_wrong: int = 0
    valid_rejected: int = 0
    # Of those: HTTP/1.1 requests without Host, which RFC 9112 section 3.2 says a server
    # MUST answer 400 (much of gunicorn's corpus is older than that rule).
    valid_rejected_no_host: int = 0


def verdict(kind: str, codes: list[int]) -> str:
    if kind == "invalid":
        return "accepted" if codes and codes[0] < 400 else "rejected"
    if codes and all(code < 400 for code in codes):
        return "right"
    if codes and codes[0] >= 400:
        return "rejected"
    return "wrong"


def start_server(mode: str, source: Path | None) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=str(source or HERE.parent))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "corpus_server.py"), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit(f"the {mode} server did not start")
    return proc, int(line)


def run_mode(mode: str, source: Path | None, verbose: bool) -> Tally:
    proc, port = start_server(mode, source)
    tally = Tally()
    try:
        for kind in ("invalid", "valid"):
            for path in sorted((CORPUS / kind).glob("*.http")):
                answer = replay(port, decode(path.read_bytes()))
                codes = statuses(answer)
                result = verdict(kind, codes)
                if kind == "valid" and result == "rejected" and _NO_HOST in answer:
                    tally.valid_rejected_no_host += 1
                if kind == "invalid":
                    tally.invalid_total += 1
                    tally.invalid_rejected += result == "rejected"
                else:
                    setattr(tally, f"valid_{result}", getattr(tally, f"valid_{result}") + 1)
                if verbose or result in ("accepted", "wrong"):
                    print(f"  {mode} {kind}/{path.stem}: {result} {codes}")
    finally:
        proc.terminate()
        proc.wait(10)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="pool,thread")
    parser.add_argument("--source", type=Path, help="a cserver checkout to serve from")
    parser.add_argument("--verbose", action="store_true", help="every case, not only misses")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        t = run_mode(mode, args.source, args.verbose)
        print(
            f"{mode}: invalid rejected {t.invalid_rejected}/{t.invalid_total}; "
            f"valid right {t.valid_right} / wrong {t.valid_wrong} / rejected {t.valid_rejected} "
            f"({t.valid_rejected_no_host} of them HTTP/1.1 without Host)"
        )


if __name__ == "__main__":
    main()
