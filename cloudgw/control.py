"""The control socket: ``cloudgw status/sync/umount`` talk to the running daemon.

A Unix socket per mountpoint under a root-only runtime directory (mode 0700),
found from the mountpoint's real path, so the CLI needs nothing but the
mountpoint.  Protocol: the client sends one JSON line; the daemon answers with
JSON lines (several for ``sync --wait``, which streams progress) and closes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import trio

from cloudgw.errors import UserError


def runtime_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/run/cloudgw")
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/cloudgw-{os.getuid()}"
    return Path(base) / "cloudgw"


def socket_path(mountpoint: Path) -> Path:
    digest = hashlib.sha256(os.path.realpath(mountpoint).encode()).hexdigest()[:20]
    return runtime_dir() / f"{digest}.sock"


Handler = Callable[[dict[str, Any], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class ControlServer:
    """Serves requests on the socket; ``handler(request, reply)`` does the work."""

    def __init__(self, mountpoint: Path, handler: Handler) -> None:
        self.path = socket_path(mountpoint)
        self.handler = handler

    def bind(self) -> socket.socket:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        if self.path.exists():
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(self.path))
                raise UserError(f"another cloudgw daemon already serves this mountpoint ({self.path})")
            except (ConnectionRefusedError, FileNotFoundError):
                self.path.unlink(missing_ok=True)
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.listen(16)
        return sock

    async def run(self, sock: socket.socket, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        try:
            task_status.started()
            await trio.serve_listeners(self._serve, [listener])
        finally:
            self.path.unlink(missing_ok=True)

    async def _serve(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                request = json.loads(await _read_line(stream))
            except (ValueError, trio.BrokenResourceError):
                return

            async def reply(obj: dict[str, Any]) -> None:
                await stream.send_all(json.dumps(obj).encode() + b"\n")

            try:
                await self.handler(request, reply)
            except* (trio.BrokenResourceError, trio.ClosedResourceError):
                # the client went away (Ctrl-C on 'sync --wait'), maybe inside the handler's
                # nursery (then grouped): nothing to tell it, and no reason to stop the daemon
                pass


async def _read_line(stream: trio.SocketStream, limit: int = 65536) -> bytes:
    buf = b""
    while b"\n" not in buf and len(buf) < limit:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0]


def request(mountpoint: Path, message: dict[str, Any], *, timeout: float | None = 30.0) -> Iterator[dict[str, Any]]:
    """Client side (blocking): send ``message`` and yield the daemon's answers."""
    path = socket_path(mountpoint)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            raise UserError(f"no cloudgw daemon serves {mountpoint} (is it mounted with cloudgw?)") from None
        raise UserError(f"cannot reach the cloudgw daemon of {mountpoint}: {exc.strerror}") from None
    with sock:
        sock.sendall(json.dumps(message).encode() + b"\n")
        with sock.makefile("rb") as f:
            for line in f:
                yield json.loads(line)
