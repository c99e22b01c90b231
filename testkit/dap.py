"""A Debug Adapter Protocol client of our own, over a socket, as an IDE drives debugpy.

Only what an attach session needs: initialize, attach, setBreakpoints, configurationDone,
then wait for `stopped`, look at the stack, continue. Messages are JSON with a
Content-Length header (the DAP base protocol); every wait is bounded.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any


class DAPError(AssertionError):
    pass


class DAPClosed(DAPError):
    """The adapter closed the connection: the session is over."""


class DAPClient:
    def __init__(self, host: str, port: int, timeout: float = 15) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.seq = 0
        self.buffer = b""
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> DAPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, command: str, **arguments: Any) -> int:
        self.seq += 1
        body = json.dumps(
            {"seq": self.seq, "type": "request", "command": command, "arguments": arguments}
        ).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                if len(rest) >= length:
                    self.buffer = rest[length:]
                    message: dict[str, Any] = json.loads(rest[:length])
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DAPError("no DAP message within the timeout")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise DAPError("no DAP message within the timeout") from None
            except OSError as exc:
                raise DAPClosed(f"the connection to the debug adapter broke: {exc}") from None
            if not data:
                raise DAPClosed("the debug adapter closed the connection")
            self.buffer += data

    def response(self, seq: int, timeout: float | None = None) -> dict[str, Any]:
        """The response to request seq; events that arrive meanwhile are kept."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self._read_message(deadline)
            if message.get("type") == "event":
                self.events.append(message)
            elif message.get("type") == "response" and message.get("request_seq") == seq:
                if not message.get("success"):
                    raise DAPError(f"{message.get('command')} failed: {message.get('message')}")
                return message

    def event(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        """The first event called name, kept or still to come."""
        for index, kept in enumerate(self.events):
            if kept.get("event") == name:
                return self.events.pop(index)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self._read_message(deadline)
            if message.get("type") == "event":
                if message.get("event") == name:
                    return message
                self.events.append(message)

    def attach(self, breakpoints: dict[str, list[int]], **arguments: Any) -> None:
        """initialize, attach, breakpoints (file -> lines), configurationDone, as VS Code does."""
        self.response(self.send("initialize", adapterID="debugpy", clientID="cserver-tests"))
        attach = self.send("attach", **{"justMyCode": False, **arguments})
        self.event("initialized")
        for path, lines in breakpoints.items():
            reply = self.response(
                self.send(
                    "setBreakpoints",
                    source={"path": path},
                    breakpoints=[{"line": n} for n in lines],
                )
            )
            verified = [b.get("verified") for b in reply["body"]["breakpoints"]]
            if not all(verified):
                raise DAPError(f"breakpoints in {path} not verified: {reply['body']}")
        self.response(self.send("configurationDone"))
        self.response(attach)

    def clear_breakpoints(self, path: str) -> None:
        self.response(self.send("setBreakpoints", source={"path": path}, breakpoints=[]))

    def top_frame(self, thread_id: int) -> dict[str, Any]:
        reply = self.response(self.send("stackTrace", threadId=thread_id, levels=1))
        frame: dict[str, Any] = reply["body"]["stackFrames"][0]
        return frame

    def resume(self, thread_id: int) -> None:
        self.response(self.send("continue", threadId=thread_id))
