"""A TCP forwarder on loopback that can cut the link: a remote outage, for real.
It also counts the bytes clients send through it (what an upload costs).

While ``down``, existing connections are reset and new ones are accepted and
closed at once, so clients see connection errors exactly as when a NAS loses
its uplink; ``up`` restores forwarding.  The server behind it keeps its state.
"""

from __future__ import annotations

import socket
import threading
from typing import Iterator
import contextlib

from tests.servers import free_port


class OutageProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.down_flag = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        self.sent_to_server = 0  # bytes forwarded from clients to the server (uploads and requests)
        self.gets: list[str] = []  # request lines of the GETs forwarded (one arrives in one piece)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def down(self) -> None:
        self.down_flag.set()
        with self._lock:
            for c in list(self._conns):
                with contextlib.suppress(OSError):
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    c.close()
            self._conns.clear()

    def up(self) -> None:
        self.down_flag.clear()

    def close(self) -> None:
        self._stop.set()
        self.down()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down_flag.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b, upward in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, upward), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.down_flag.is_set():
                    break
                dst.sendall(data)
                if upward:
                    with self._lock:
                        self.sent_to_server += len(data)
                        if data.startswith(b"GET "):
                            self.gets.append(data[:data.find(b"\r\n")].decode("latin-1"))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)


@contextlib.contextmanager
def outage_proxy(target_port: int) -> Iterator[OutageProxy]:
    proxy = OutageProxy(target_port)
    try:
        yield proxy
    finally:
        proxy.close()
