"""The routes of tests/server/wireapps.py as a raw ASGI application, for asgi mode.

The same misbehaviours, made at the ASGI level (where uvicorn, not cserver, frames the
response): a body longer or shorter than its Content-Length, a body on 204/304, hop-by-hop
and injected headers, a body left unread, an endless stream, and a file sent in parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]
Headers = list[tuple[bytes, bytes]]

# (status, headers, body parts) of the routes that only answer.
FIXED: dict[str, tuple[int, Headers, list[bytes]]] = {
    "/hello": (200, [(b"content-type", b"text/plain"), (b"content-length", b"5")], [b"hello"]),
    "/longer": (200, [(b"content-length", b"5")], [b"hello", b" world"]),
    "/longer-list": (200, [(b"content-length", b"5")], [b"hello world"]),
    "/shorter": (200, [(b"content-length", b"50")], [b"only ten.."]),
    "/late-204": (204, [], [b""]),
    "/late-304": (304, [(b"etag", b'"x"')], [b""]),
    "/write-204": (204, [], [b"must not be sent"]),
    "/write": (200, [(b"content-type", b"text/plain")], [b"written", b" and returned"]),
    "/hop-by-hop": (
        200,
        [
            (b"content-length", b"2"),
            (b"transfer-encoding", b"chunked"),
            (b"connection", b"keep-alive, Upgrade"),
            (b"keep-alive", b"timeout=99"),
        ],
        [b"ok"],
    ),
    "/app-closes": (200, [(b"content-length", b"2"), (b"connection", b"close")], [b"ok"]),
    "/header-injection": (
        200,
        [(b"x-a", b"a\r\nSet-Cookie: evil=1"), (b"content-length", b"2")],
        [b"ok"],
    ),
    "/forbidden-upload": (403, [(b"content-length", b"15")], [b"no uploads here"]),
}

BIG_FILE: list[str] = []


async def send_parts(send: Send, status: int, headers: Headers, parts: list[bytes]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for n, part in enumerate(parts):
        more = n < len(parts) - 1
        await send({"type": "http.response.body", "body": part, "more_body": more})


async def read_all(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path in FIXED:
        await send_parts(send, *FIXED[path])
    elif path == "/read-body":
        body = await read_all(receive)
        await send_parts(send, 200, [(b"content-length", str(len(body)).encode())], [body])
    elif path == "/endless":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await asyncio.sleep(0.001)
    elif path == "/environ":
        host = dict(scope["headers"]).get(b"host", b"")
        lines = [
            b"PATH_INFO=" + path.encode("latin-1"),
            b"QUERY_STRING=" + scope["query_string"],
            b"HTTP_HOST=" + host,
            b"CONTENT_LENGTH=",
        ]
        body = b"\n".join(lines)
        await send_parts(send, 200, [(b"content-length", str(len(body)).encode())], [body])
    elif path == "/file":
        # ?SIZE bytes declared, the file's bytes sent in parts (ASGI has no file wrapper).
        size = int(scope["query_string"] or 1_000_000)
        headers = [(b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with open(BIG_FILE[0], "rb") as handle:
            left = size
            while left > 0:
                part = handle.read(min(left, 65536))
                if not part:
                    break
                left -= len(part)
                await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send_parts(send, 404, [(b"content-length", b"0")], [b""])
