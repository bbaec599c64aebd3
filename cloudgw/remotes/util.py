"""Small helpers shared by the remotes: contract paths and errno-carrying errors."""

from __future__ import annotations

import contextlib
import email.utils
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator

import trio

from cloudgw.errors import RemoteError, RemoteUnsupported


def split_path(path: str) -> list[str]:
    """Components of a contract path; reject what could escape the root."""
    parts = path.split("/") if path else []
    if any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise RemoteUnsupported(f"invalid path {path!r}")
    return parts


def remote_error(cls: type[RemoteError], err: int | None, message: str) -> RemoteError:
    """An error of ``cls`` whose ``errno`` is ``err`` (e.g. ENOSPC, EISDIR)."""
    exc = cls(message)
    if err is not None:
        exc.errno = err
    return exc


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` value (seconds or an HTTP date) as seconds from now; None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, mode 0600 from the first byte (a temp in
    the same folder, fsync'ed, renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class PathLocks:
    """One trio lock per path, held only while someone uses it: serialises the writers of
    one path in remotes whose server cannot (check-then-write: the check and the commit
    of two writers must not interleave).  Trio tasks only."""

    def __init__(self) -> None:
        self._locks: dict[str, list] = {}

    @contextlib.asynccontextmanager
    async def locked(self, path: str) -> AsyncIterator[None]:
        slot = self._locks.setdefault(path, [trio.Lock(), 0])
        slot[1] += 1
        try:
            async with slot[0]:
                yield
        finally:
            slot[1] -= 1
            if slot[1] == 0:
                del self._locks[path]


class SpooledSource:
    """An UploadSource over a spooled temporary file (a remote's ``copy`` by download and
    upload: never the whole file in memory).  Reads from several worker threads take turns."""

    def __init__(self, f: Any, size: int) -> None:
        self._f, self.size = f, size
        self._lock = threading.Lock()

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            self._f.seek(offset)
            return self._f.read(length)

    def check(self) -> None:
        return None
