#!/usr/bin/env python3
"""Request parsers side by side: cserver's own, httptools (llhttp) and h11.

Usage: python bench/parsers.py [--rounds 20000] [--repeat 3]

Prints, for each parser, the CPU time to parse one typical browser request head into what
the server needs (method, target, version, headers, body framing, keep-alive), median of
``--repeat`` runs, and the verdicts of each parser on the requests of issue 11 and of the
hostile corpus where they differ. See bench/README.md for the decision these support.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import h11  # noqa: E402

from cserver.server.conn import ClientConnection  # noqa: E402
from cserver.server.http import HttpError  # noqa: E402

try:
    import httptools
except ImportError:  # optional: the row is left out
    httptools = None

BROWSER_GET = (
    b"GET /articles/2024/?page=2&sort=new HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8000\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-GB,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: csrftoken=abcdefabcdefabcdefabcdefabcdefab; sessionid=0123456789abcdef\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"\r\n"
)

# What wrk sends in bench/run.py's scenarios a and a0: the head the throughput figures parse.
WRK_GET = b"GET /hello/length HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"

# (name, request): what issue 11 lists, and framing cases the parsers are known to differ on.
VERDICT_CASES: list[tuple[str, bytes]] = [
    ("valid GET", b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
    (
        "valid chunked POST",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunk size '0 '",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0 \r\n\r\n",
    ),
    (
        "chunk size ' 5'",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "bare CR in chunk extension",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "Transfer-Encoding on HTTP/1.0",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n"),
    (
        "Content-Length and chunked",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("Content-Length '1, 1'", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\nx"),
    ("Content-Length '+1'", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +1\r\n\r\nx"),
    ("obsolete line folding", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n"),
    ("space before colon", b"GET / HTTP/1.1\r\nHost: t\r\nX-A : a\r\n\r\n"),
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: t\n\n"),
    ("stray CR in a value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n"),
    ("NUL in a value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n"),
    ("relative target", b"GET hello HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("UTF-8 in the target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("#fragment in the target", b"GET /a#b HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: t\r\n\r\n"),
    ("Transfer-Encoding gzip", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"),
    ("unknown Expect", b"POST / HTTP/1.1\r\nHost: t\r\nExpect: magic\r\nContent-Length: 0\r\n\r\n"),
]


class OwnParser:
    """cserver's RequestReader.take_head() on a real connection's buffer, as the selector
    calls it."""

    name = "cserver (own)"

    def __init__(self) -> None:
        self._pair = socket.socketpair()
        self.conn = ClientConnection(self._pair[0], ("127.0.0.1", 1))

    def parse(self, data: bytes) -> object:
        reader = self.conn.reader
        reader.reset()
        reader.buf[:] = data
        return reader.take_head()

    def verdict(self, data: bytes) -> str:
        from cserver.server.body import read_chunked

        try:
            head = self.parse(data)
            if head is not None and head.chunked:
                read_chunked(self.conn, 1 << 20, 1.0, 1.0)
        except HttpError as err:
            return f"{err.status}"
        except ConnectionError:
            return "incomplete"
        return "ok" if head is not None else "incomplete"


class HttptoolsParser:
    """llhttp through httptools, with the callbacks uvicorn uses to collect a head."""

    name = f"httptools {getattr(httptools, '__version__', '?')} (llhttp)"

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.done = True

    def on_message_complete(self) -> None:
        self.done = True

    def parse(self, data: bytes) -> object:
        assert httptools is not None
        self.headers = []
        self.url = b""
        parser = httptools.HttpRequestParser(self)
        parser.feed_data(data)
        return (
            parser.get_method(),
            self.url,
            parser.get_http_version(),
            self.headers,
            parser.should_keep_alive(),
        )

    def verdict(self, data: bytes) -> str:
        assert httptools is not None
        self.done = False
        try:
            self.parse(data)
        except httptools.HttpParserUpgrade:
            return "ok"
        except httptools.HttpParserError as err:
            return f"error ({type(err).__name__})"
        return "ok" if self.done else "incomplete"


class H11Parser:
    """h11's server side: one Connection per request, as a fresh connection would."""

    name = f"h11 {h11.__version__}"

    def parse(self, data: bytes) -> object:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        return conn.next_event()

    def verdict(self, data: bytes) -> str:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    return "incomplete"
                if isinstance(event, h11.EndOfMessage):
                    return "ok"
        except h11.RemoteProtocolError as err:
            return f"{err.error_status_hint}"


def per_request_us(
    parse: Callable[[bytes], object], rounds: int, repeat: int, head: bytes = BROWSER_GET
) -> float:
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(rounds):
            parse(head)
        samples.append((time.process_time() - start) / rounds * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.repeat < 1:
        print("bench/parsers.py: --rounds and --repeat must be >= 1", file=sys.stderr)
        return 2
    parsers: list = [OwnParser(), H11Parser()]
    if httptools is not None:
        parsers.insert(1, HttptoolsParser())
    else:
        print("(httptools is not installed: its row is left out)", file=sys.stderr)
    print(
        f"Per request head, CPU time in us, median of {args.repeat} x {args.rounds}: a browser's"
        f" ({len(BROWSER_GET)} bytes, 10 headers) and wrk's in bench/run.py"
        f" ({len(WRK_GET)} bytes, Host only):\n"
    )
    print("| parser | browser head | vs own | wrk head | vs own |")
    print("| --- | ---: | ---: | ---: | ---: |")
    own = own_wrk = None
    for parser in parsers:
        us = per_request_us(parser.parse, args.rounds, args.repeat)
        us_wrk = per_request_us(parser.parse, args.rounds, args.repeat, WRK_GET)
        own, own_wrk = own or us, own_wrk or us_wrk
        cells = f"{us:.1f} | {us / own:.2f}x | {us_wrk:.1f} | {us_wrk / own_wrk:.2f}x"
        print(f"| {parser.name} | {cells} |")
    print("\nVerdicts (ok = accepted; a number = the status the parser refuses it with):\n")
    print("| request | " + " | ".join(p.name for p in parsers) + " |")
    print("| --- |" + " --- |" * len(parsers))
    for name, data in VERDICT_CASES:
        print(f"| {name} | " + " | ".join(p.verdict(data) for p in parsers) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
