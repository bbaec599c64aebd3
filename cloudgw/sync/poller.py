"""Seeing changes made on the remote by anyone else (list-only remotes).

One poll lists the whole remote recursively and diffs it with the metadata
store, for directories that were already listed (unlisted ones are loaded fresh
when first accessed):

    remote has, we don't know   -> new file/dir in the tree (REMOTE_ONLY)
    known, other revision       -> local clean: take it (cache dropped, kernel
                                   invalidated); local dirty: leave it, the
                                   upload's conditional write finds the conflict
    known, gone from remote     -> local clean: removed; local dirty or moving:
                                   placement cleared, so it is uploaded anew

Paths our own sync touched after the listing began are skipped (see
``context.Journal``), as are tombstoned paths and paths a reconcile under way
may be changing right now (``ctx.in_flight``).

Crash behaviour: each poll's changes are applied in one transaction; a crash
loses nothing but the poll, which the next start repeats.
Memory: one poll holds the listing (one small record per remote object).
"""

from __future__ import annotations

import logging
import posixpath
import time

from cloudgw.crashpoints import crash_point
from cloudgw.metadata.model import ROOT_INO, FileState, Inode
from cloudgw.remotes.base import Kind, RemoteEntry
from cloudgw.sync.context import SyncContext
from cloudgw.sync.lister import DirectoryLister

log = logging.getLogger(__name__)


class Poller:
    def __init__(self, ctx: SyncContext, lister: DirectoryLister) -> None:
        self.ctx = ctx
        self.lister = lister

    async def poll(self) -> int:
        """One poll; returns how many local entries changed."""
        ctx = self.ctx
        epoch = ctx.journal.epoch
        listing: dict[str, RemoteEntry] = {}
        async for entry in ctx.remote.list("", recursive=True):
            listing[entry.path] = entry
        changed = 0
        new_entries = [e for p, e in sorted(listing.items(), key=lambda kv: kv[0].count("/"))]
        targets = {}
        for e in new_entries:
            if e.kind is Kind.SYMLINK and e.symlink_target is None and not ctx.store.is_placed(e.path):
                targets[e.path] = await self.lister.with_target(e)
        store = ctx.store
        tombstoned = ctx.tombstoned_dirs()
        crash_point("poll-before-apply")
        with store.transaction():
            for entry in new_entries:
                entry = targets.get(entry.path, entry)
                changed += self._apply_present(entry, epoch, tombstoned)
                if changed:
                    crash_point("poll-mid-apply")  # the transaction is rolled back by SQLite
            known = store.remote_paths_under("")
            for path in sorted(known, key=lambda p: -p.count("/")):
                if path in listing or ctx.journal.touched_since(path, epoch) or path in ctx.in_flight:
                    continue
                if ctx.under_tombstone(path, tombstoned):
                    continue
                inode = store.get(known[path])
                if inode is not None and inode.ino != ROOT_INO:
                    changed += self._apply_gone(inode)
        ctx.journal.prune(epoch)
        ctx.stats.last_poll_ok = time.time()
        ctx.stats.last_poll_error = None
        if changed:
            log.info("poll: %d remote changes applied", changed)
        return changed

    def _parent_of(self, path: str) -> Inode | None:
        parent_path = posixpath.dirname(path)
        if parent_path == "":
            return self.ctx.store.get(ROOT_INO)
        return self.ctx.store.by_remote_path(parent_path)

    def _apply_present(self, entry: RemoteEntry, epoch: int, tombstoned: set[str]) -> int:
        ctx, store = self.ctx, self.ctx.store
        inode = store.by_remote_path(entry.path)
        if inode is None:
            parent = self._parent_of(entry.path)
            if parent is None or not parent.listed or parent.parent is None and parent.ino != ROOT_INO:
                return 0
            if not ctx.may_adopt(entry.path, epoch, tombstoned):
                return 0
            return 1 if ctx.adopt(entry, parent, listed=entry.kind is Kind.DIR) else 0
        if entry.kind is not Kind.FILE or inode.kind is not Kind.FILE:
            return 0
        if entry.rev == inode.remote_rev or ctx.journal.touched_since(entry.path, epoch):
            return 0
        if inode.state.has_unsynced_data:
            return 0  # the upload's conditional write will find this and keep both
        store.update(inode, remote_rev=entry.rev, size=entry.size, state=FileState.REMOTE_ONLY,
                     mtime_ns=entry.attrs.mtime_ns or entry.mtime_ns)
        cached = ctx.cache.get(inode.ino)
        if cached is not None:
            ctx.cache.reset(cached, rev=entry.rev, remote_size=entry.size)
        ctx.invalidate(inode)
        log.info("remote change: %s", entry.path)
        return 1

    def _apply_gone(self, inode: Inode) -> int:
        ctx, store = self.ctx, self.ctx.store
        busy = inode.needs_sync or inode.state.has_unsynced_data or (inode.is_dir and store.has_children(inode.ino))
        if busy:
            store.update(inode, remote_path=None, remote_rev=None, needs_sync=True)
            ctx.wants_sync.append(inode.ino)
            return 0
        parent, name = inode.parent, inode.name
        store.update(inode, parent=None, name=f".deleted-{inode.ino}", remote_path=None)
        if parent is not None:
            ctx.invalidate_entry(parent, name)
        ctx.orphaned(inode)
        log.info("remote delete: %s", name)
        return 1
