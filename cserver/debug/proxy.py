"""The debugger's port for a whole run, kept by the supervisor across reloads.

Each server generation has its own debugpy adapter on a free loopback port. The supervisor
binds the port the user asked for once and forwards every connection an IDE opens to the
adapter of the generation that serves now. On a reload new connections go to the new
adapter at once; the old generation's sessions stay until it has drained and exited, so a
request it still serves, or a fork-mode child's session, is not cut short. Then the
supervisor retires its port: those connections close, the IDE sees the session end (and
the adapter, a daemon that waits for its IDE, exits) and attaches again to the same address,
reaching the new adapter. A connection that arrives while no adapter is known yet
(the next generation still starting) waits for one, up to WAIT_FOR_ADAPTER seconds.

One thread with a selector forwards every byte; DAP messages are small, so a bounded
blocking send per chunk is enough.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import time

WAIT_FOR_ADAPTER = 30.0
SEND_TIMEOUT = 10.0


def bind_debug_port(host: str, port: int) -> socket.socket:
    """The listening socket for the IDE (OSError as bind raises it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    return sock


class DebugProxy:
    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.listener.setblocking(False)
        self._target: int | None = None
        self._lock = threading.Lock()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._port_of: dict[socket.socket, int] = {}  # both ends of a pair -> adapter port
        self._retired: set[int] = set()
        self._waiting: list[tuple[socket.socket, float]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="cserver-debug-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def switch(self, port: int | None) -> None:
        """Forward new connections to the adapter on port (None: hold them)."""
        with self._lock:
            self._target = port
        self._wake(b"s")

    def retire(self, port: int) -> None:
        """The generation of the adapter on port has exited: end the sessions with it."""
        with self._lock:
            self._retired.add(port)
        self._wake(b"r")

    def close(self) -> None:
        self._closed = True
        self._wake(b"q")
        self._thread.join(5)

    def _wake(self, what: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, what)

    def _run(self) -> None:
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._closed:
                for key, _ in self._selector.select(0.5):
                    if key.fileobj is self.listener:
                        self._accept()
                    elif key.fileobj == self._wake_r:
                        os.read(self._wake_r, 4096)
                        self._drop_retired()
                    else:
                        self._forward(key.fileobj)  # type: ignore[arg-type]
                self._connect_waiting()
        finally:
            self._drop_all()
            for sock, _ in self._waiting:
                sock.close()
            self._selector.close()
            self.listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError, ConnectionAbortedError):
            client, _ = self.listener.accept()
            self._waiting.append((client, time.monotonic() + WAIT_FOR_ADAPTER))

    def _connect_waiting(self) -> None:
        with self._lock:
            target = self._target
        still = []
        for client, deadline in self._waiting:
            if target is None:
                if time.monotonic() < deadline:
                    still.append((client, deadline))
                else:
                    client.close()
                continue
            try:
                adapter = socket.create_connection(("127.0.0.1", target), timeout=5)
            except OSError:
                client.close()  # the adapter went away with its generation: the IDE retries
                continue
            for one, other in ((client, adapter), (adapter, client)):
                one.settimeout(SEND_TIMEOUT)
                self._peers[one] = other
                self._port_of[one] = target
                self._selector.register(one, selectors.EVENT_READ)
        self._waiting = still

    def _forward(self, sock: socket.socket) -> None:
        other = self._peers.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        other = self._peers.pop(sock, None)
        for one in (sock, other):
            if one is None:
                continue
            self._peers.pop(one, None)
            self._port_of.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            one.close()

    def _drop_retired(self) -> None:
        with self._lock:
            retired, self._retired = self._retired, set()
        for sock, port in list(self._port_of.items()):
            if port in retired:
                self._drop(sock)

    def _drop_all(self) -> None:
        for sock in list(self._peers):
            self._drop(sock)
