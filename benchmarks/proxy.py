"""A counting TCP forwarder: how many bytes a gateway sends to / receives from S3.

Each mounted gateway talks to the S3 server through its own ``CountingProxy``
(one loopback port per mount), so the bytes are the gateway's alone: request
headers and bodies upstream, responses downstream.  The forwarder runs in its
own process (``multiprocessing`` spawn) so it never competes with the
benchmark's own threads for the GIL, and moves data with ``os.splice`` (socket
-> pipe -> socket, no copy through Python) where the kernel allows it.

Only byte and connection counts are kept; HTTP is not parsed.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import socket
import threading
from typing import Iterator

F_SETPIPE_SZ = 1031
CHUNK = 1 << 20
UP, DOWN, CONNECTIONS = 0, 1, 2


def _pump(src: socket.socket, dst: socket.socket, counters, index: int) -> None:  # noqa: ANN001
    """Copy src -> dst until EOF, counting bytes; then half-close dst."""
    try:
        try:
            r, w = os.pipe()
        except OSError:
            r = w = -1
        try:
            if r >= 0:
                with contextlib.suppress(OSError):
                    fcntl.fcntl(w, F_SETPIPE_SZ, CHUNK)
                while True:
                    n = os.splice(src.fileno(), w, CHUNK)
                    if n == 0:
                        break
                    left = n
                    while left:
                        left -= os.splice(r, dst.fileno(), left)
                    with counters.get_lock():  # at once: keep-alive connections stay open
                        counters[index] += n
            else:
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                while True:
                    n = src.recv_into(buf)
                    if n == 0:
                        break
                    dst.sendall(view[:n])
                    with counters.get_lock():
                        counters[index] += n
        finally:
            if r >= 0:
                os.close(r)
                os.close(w)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _connection(client: socket.socket, target_port: int, counters) -> None:  # noqa: ANN001
    try:
        upstream = socket.create_connection(("127.0.0.1", target_port))
    except OSError:
        client.close()
        return
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with counters.get_lock():
        counters[CONNECTIONS] += 1
    t = threading.Thread(target=_pump, args=(upstream, client, counters, DOWN), daemon=True)
    t.start()
    _pump(client, upstream, counters, UP)
    t.join()
    client.close()
    upstream.close()


def _serve(listener: socket.socket, target_port: int, counters) -> None:  # noqa: ANN001
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_connection, args=(client, target_port, counters), daemon=True).start()


class CountingProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target_port>, counting bytes."""

    def __init__(self, target_port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.counters = ctx.Array("Q", 3)
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = listener.getsockname()[1]
        self._proc = ctx.Process(target=_serve, args=(listener, target_port, self.counters), daemon=True,
                                 name="bench-proxy")
        self._proc.start()
        listener.close()  # the child has its own copy

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> tuple[int, int, int]:
        """(bytes sent to the server, bytes received from it, connections) so far."""
        with self.counters.get_lock():
            return self.counters[UP], self.counters[DOWN], self.counters[CONNECTIONS]

    def close(self) -> None:
        self._proc.kill()
        self._proc.join()


@contextlib.contextmanager
def counting_proxy(target_port: int) -> Iterator[CountingProxy]:
    proxy = CountingProxy(target_port)
    try:
        yield proxy
    finally:
        proxy.close()
