"""Loading a directory's children from the remote on first access.

Listings are lazy: a directory is listed once, when a lookup or readdir first
needs it; from then on the poller keeps it current and ``ls -lR`` of a seen
tree makes no remote call.  Concurrent first accesses share one listing.

The children go in with one ``insert_children`` (one statement, no ``Inode``
objects) and without the kernel invalidation that ``SyncContext.adopt`` sends
for an entry the poller finds: until the ``listed`` flag is set, every lookup,
readdir and create in the directory waits for this listing
(``Namespace._listed_dir``), so the kernel cannot hold a dentry, negative or
positive, for any of these names yet.  Those invalidations (one thread hop and
one kernel call per entry, contending with the lookups of the ``ls`` that
triggered the listing) made the first ``ls -l`` of 500 entries ~25 % slower.

Crash behaviour: children and the ``listed`` flag are committed in one
transaction, so a crash mid-listing simply lists again.
"""

from __future__ import annotations

import dataclasses

import trio

from cloudgw.metadata.model import Inode
from cloudgw.metadata.store import NewChild
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
        epoch, path = ctx.journal.epoch, directory.remote_path
        entries = [e async for e in ctx.remote.list(path) if ctx.shown(e)]
        entries = [await self.with_target(e) for e in entries]
        if store.get(directory.ino) is None or directory.parent is None and directory.ino != 1:
            return  # removed while we listed
        if directory.remote_path != path or ctx.journal.touched_since(path, epoch):
            # a one-call rename of a directory above (ours) moved it while we listed: the
            # entries would all be refused as ours (and never come back to a pruned poll or
            # a feed); not listed yet, so ``ensure_listed`` lists it again where it is now
            return
        with store.transaction():
            store.insert_children(directory.ino, self._new_children(directory, entries, epoch))
            store.update(directory, listed=True)

    def _new_children(self, directory: Inode, entries: list[RemoteEntry], epoch: int) -> list[NewChild]:
        """The rows for the entries that may enter the tree (``SyncContext.may_adopt``)
        under a free name; of two entries with one name (S3: a file and a
        directory), the first listed wins, as with ``adopt``."""
        ctx, store = self.ctx, self.ctx.store
        tombstoned = ctx.tombstoned_dirs()
        local = store.has_children(directory.ino)  # rare: only then look names up one by one
        taken: set[str] = set()
        rows: list[NewChild] = []
        for entry in entries:
            name = entry.name
            if name in taken or not ctx.may_adopt(entry.path, epoch, tombstoned):
                continue
            if local and store.lookup(directory.ino, name) is not None:
                continue  # a local entry holds the name; its upload resolves the clash
            taken.add(name)
            rows.append(ctx.new_child(entry))
        return rows

    async def with_target(self, entry: RemoteEntry) -> RemoteEntry:
        """Symlinks enter the tree with their target (emulated ones need a read)."""
        if entry.kind is Kind.SYMLINK and entry.symlink_target is None:
            target = await self.ctx.remote.readlink(entry.path)
            return dataclasses.replace(entry, symlink_target=target)
        return entry
