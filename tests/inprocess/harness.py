"""The filesystem core assembled in-process (no kernel), over a real remote.

``Harness`` offers path-based helpers that drive the same FileSystem calls the
FUSE adapter makes, so tests read like what a user does.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import trio

from cloudgw.cache.files import CacheFiles
from cloudgw.filesystem import FileSystem, FsError
from cloudgw.metadata.model import ROOT_INO, Inode
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.base import Remote
from cloudgw.sync.context import SyncContext
from cloudgw.sync.engine import SyncEngine, SyncSettings


@dataclass
class Harness:
    fs: FileSystem
    engine: SyncEngine
    store: MetadataStore
    cache: CacheFiles
    remote: Remote

    async def resolve(self, path: str) -> Inode:
        ino = ROOT_INO
        inode = self.fs.ns.getattr(ino)
        for part in filter(None, path.split("/")):
            inode = await self.fs.ns.lookup(ino, part)
            ino = inode.ino
        return inode

    async def _parent(self, path: str) -> tuple[int, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        return (await self.resolve(head)).ino, name

    async def write_file(self, path: str, data: bytes, offset: int = 0, *, create: bool = True) -> Inode:
        parent, name = await self._parent(path)
        try:
            inode = await self.fs.ns.lookup(parent, name)
            handle = await self.fs.data.open(inode.ino, os.O_WRONLY | (os.O_TRUNC if offset == 0 and create else 0))
        except FsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            handle = await self.fs.data.create(parent, name, 0o644, os.O_WRONLY, 0, 0)
        try:
            await self.fs.data.write(handle.fh, offset, data)
            self.fs.data.flush(handle.fh)
        finally:
            self.fs.data.release(handle.fh)
        return handle.inode

    async def read_file(self, path: str) -> bytes:
        inode = await self.resolve(path)
        handle = await self.fs.data.open(inode.ino, os.O_RDONLY)
        try:
            out = b""
            while True:
                chunk = await self.fs.data.read(handle.fh, len(out), 1 << 20)
                if not chunk:
                    return out
                out += chunk
        finally:
            self.fs.data.release(handle.fh)

    async def listdir(self, path: str) -> list[str]:
        inode = await self.resolve(path)
        return sorted(name for _, name, _ in await self.fs.ns.readdir(inode.ino, 0))

    async def mkdir(self, path: str) -> Inode:
        parent, name = await self._parent(path)
        return await self.fs.ns.mkdir(parent, name, 0o755, 0, 0)

    async def unlink(self, path: str) -> None:
        parent, name = await self._parent(path)
        await self.fs.ns.unlink(parent, name)

    async def rmdir(self, path: str) -> None:
        parent, name = await self._parent(path)
        await self.fs.ns.rmdir(parent, name)

    async def rename(self, src: str, dst: str) -> None:
        sp, sn = await self._parent(src)
        dp, dn = await self._parent(dst)
        await self.fs.ns.rename(sp, sn, dp, dn)

    async def settle(self, timeout: float = 20) -> None:
        """Upload everything pending (like ``cloudgw sync --wait``)."""
        assert await self.engine.drain(timeout), self.engine.status()


@contextlib.asynccontextmanager
async def running(remote: Remote, cache_dir: Path, **settings) -> AsyncIterator[Harness]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(cache_dir / "metadata.db")
    cache = CacheFiles(cache_dir / "cache", recent=settings.pop("cache_recent", 4096))
    send, receive = trio.open_memory_channel(float("inf"))
    ctx = SyncContext(store, cache, remote, send)
    opts = {"write_back_delay": 0.05, "poll_interval": 3600, **settings}
    engine = SyncEngine(ctx, SyncSettings(**opts))
    fs = FileSystem(store, cache, engine)

    async def consume() -> None:
        async for event in receive:
            fs.handle_event(event)

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            nursery.start_soon(consume)
            yield Harness(fs, engine, store, cache, remote)
            nursery.cancel_scope.cancel()
    finally:
        cache.close()
        store.close()
