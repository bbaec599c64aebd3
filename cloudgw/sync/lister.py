"""Loading a directory's children from the remote on first access.

Listings are lazy: a directory is listed once, when a lookup or readdir first
needs it; from then on the poller keeps it current and ``ls -lR`` of a seen
tree makes no remote call.  Concurrent first accesses share one listing.

Crash behaviour: children and the ``listed`` flag are committed in one
transaction, so a crash mid-listing simply lists again.
"""

from __future__ import annotations

import dataclasses

import trio

from cloudgw.metadata.model import Inode
from cloudgw.remotes.base import Kind, RemoteEntry
from cloudgw.sync.context import SyncContext


class DirectoryLister:
    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self._in_flight: dict[int, trio.Event] = {}

    async def ensure_listed(self, directory: Inode) -> None:
        while not directory.listed:
            event = self._in_flight.get(directory.ino)
            if event is not None:
                await event.wait()
                continue
            event = self._in_flight[directory.ino] = trio.Event()
            try:
                await self._list(directory)
            finally:
                del self._in_flight[directory.ino]
                event.set()

    async def _list(self, directory: Inode) -> None:
        ctx, store = self.ctx, self.ctx.store
        if directory.remote_path is None:
            store.update(directory, listed=True)
            return
        epoch = ctx.journal.epoch
        entries = [e async for e in ctx.remote.list(directory.remote_path)]
        entries = [await self.with_target(e) for e in entries]
        if store.get(directory.ino) is None or directory.parent is None and directory.ino != 1:
            return  # removed while we listed
        tombstoned = ctx.tombstoned_dirs()
        with store.transaction():
            for entry in entries:
                if ctx.may_adopt(entry.path, epoch, tombstoned):
                    ctx.adopt(entry, directory)
            store.update(directory, listed=True)

    async def with_target(self, entry: RemoteEntry) -> RemoteEntry:
        """Symlinks enter the tree with their target (emulated ones need a read)."""
        if entry.kind is Kind.SYMLINK and entry.symlink_target is None:
            target = await self.ctx.remote.readlink(entry.path)
            return dataclasses.replace(entry, symlink_target=target)
        return entry
