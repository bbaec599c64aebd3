"""Applying what a poll learned about the remote to the local tree.

Every change-detection strategy (``cloudgw.sync.poller``) ends here, so the rules
are written once:

    remote has, we don't know     -> new entry in the tree (REMOTE_ONLY)
    known id at another path      -> a move made elsewhere: same inode, cache kept,
                                     kernel names invalidated (remotes with stable ids)
    known, other revision         -> local clean: take it (cache dropped, kernel
                                     invalidated); local dirty: leave it, the upload's
                                     conditional write finds the conflict
    known, gone from the remote   -> local clean: removed; local dirty or moving:
                                     placement cleared, so it is uploaded anew

Paths our own sync touched after the poll began are left alone (``Journal``), as
are tombstoned paths and paths a reconcile under way may be changing right now
(``ctx.in_flight``).  Nothing here awaits: the caller runs a whole poll's changes
in one transaction.
"""

from __future__ import annotations

import logging
import posixpath
import time

from cloudgw.metadata.model import ROOT_INO, FileState, Inode
from cloudgw.remotes.base import Kind, RemoteEntry
from cloudgw.sync.context import SyncContext

log = logging.getLogger(__name__)


class RemoteChanges:
    """The local side of one poll: built per poll (it remembers the poll's start)."""

    def __init__(self, ctx: SyncContext, epoch: int) -> None:
        self.ctx = ctx
        self.epoch = epoch
        self.tombstoned = ctx.tombstoned_dirs()
        self.wants_sync: list[int] = []  # inos that lost their placement: to be uploaded anew
        # remote paths whose change this poll left alone because our own sync is changing
        # them: a pruned poll must look at their folders again (their revs are not stored)
        self.skipped: set[str] = set()
        # ids this poll places at another path or removes (the poller fills it in): only an
        # item we hold that is among them gives up its path to another id
        self.relocated: set[str] = set()

    def ours(self, path: str) -> bool:
        """Whether our own sync may be changing ``path`` (its view in this poll may be stale)."""
        ctx = self.ctx
        if (ctx.journal.touched_since(path, self.epoch) or ctx.in_flight_at(path)
                or ctx.under_tombstone(path, self.tombstoned)):
            self.skipped.add(path)
            return True
        return False

    def parent_of(self, path: str) -> Inode | None:
        parent_path = posixpath.dirname(path)
        if parent_path == "":
            return self.ctx.store.get(ROOT_INO)
        return self.ctx.store.by_remote_path(parent_path)

    def present(self, entry: RemoteEntry, *, listed: bool) -> int:
        """``entry`` is on the remote now; returns how many local entries changed.
        ``listed``: a new directory's children come in this same poll (a full listing)."""
        store = self.ctx.store
        inode = store.by_remote_path(entry.path)
        changed = 0
        if inode is not None and entry.id is not None and inode.remote_id not in (None, entry.id) and (
                inode.remote_id in self.relocated or self._held_elsewhere(entry.id, inode)):
            # another item has this name now, and one of the two moves: what we showed here is
            # elsewhere in this poll, or the newcomer is an item we show at another path (Drive's
            # numbered duplicates shift together).  Each follows its own id.  (An id that merely
            # changed -- a file replaced by a server-side MOVE, a new id nobody else had -- stays
            # a content change of the same inode, below.)
            if inode.needs_sync or inode.state.has_unsynced_data:
                self.skipped.add(entry.path)
                return 0  # local changes pending: the upload's conditional write decides
            changed = self.gone(inode)
            inode = None
        if inode is None and entry.id is not None:
            moved = store.by_remote_id(entry.id)
            if moved is not None and moved.remote_path not in (None, entry.path):
                return changed + self._moved(moved, entry)
        if inode is None:
            return changed + self._new(entry, listed=listed)
        if entry.id is not None and inode.remote_id != entry.id:
            store.update(inode, remote_id=entry.id)  # learnt, or replaced under the same name
        if entry.kind is Kind.FILE and inode.kind is not Kind.FILE and not inode.is_dir:
            # a symlink or special file replaced by a file elsewhere: the file comes in as what it is
            if inode.needs_sync or inode.state.has_unsynced_data:
                self.skipped.add(entry.path)
                return 0  # ours changed too: the upload meets the file (and keeps it as a conflict copy)
            return self.gone(inode) + self._new(entry, listed=listed)
        return self._content(inode, entry)

    def _held_elsewhere(self, remote_id: str, here: Inode) -> bool:
        other = self.ctx.store.by_remote_id(remote_id)
        return other is not None and other.ino != here.ino

    def _new(self, entry: RemoteEntry, *, listed: bool) -> int:
        parent = self.parent_of(entry.path)
        if parent is None or not parent.listed or parent.parent is None and parent.ino != ROOT_INO:
            return 0  # below a directory not shown (yet): listed when first opened
        if not self.ctx.may_adopt(entry.path, self.epoch, self.tombstoned):
            self.skipped.add(entry.path)
            return 0
        return 1 if self.ctx.adopt(entry, parent, listed=listed and entry.kind is Kind.DIR) else 0

    def _content(self, inode: Inode, entry: RemoteEntry) -> int:
        ctx, store = self.ctx, self.ctx.store
        if entry.kind is not Kind.FILE or inode.kind is not Kind.FILE:  # (folder revs: see the pruned poll)
            return 0
        if entry.rev == inode.remote_rev:
            return 0
        if ctx.journal.touched_since(entry.path, self.epoch):
            self.skipped.add(entry.path)
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

    def _moved(self, inode: Inode, entry: RemoteEntry) -> int:
        """The item ``inode`` holds was moved or renamed elsewhere to ``entry.path``.

        Only a settled inode follows (no local change pending: otherwise our own upload
        or move decides, and conditional writes keep both versions).  Moved to where we
        show nothing (an unlisted directory, outside the mount), or onto a name taken
        here: not a move for us; the old place's "gone" handling applies.
        """
        ctx, store = self.ctx, self.ctx.store
        old_path = inode.remote_path
        assert old_path is not None
        if inode.needs_sync or inode.parent is None or self.ours(old_path) or self.ours(entry.path):
            self.skipped |= {old_path, entry.path}
            return 0
        if (inode.kind is Kind.DIR) != (entry.kind is Kind.DIR):
            return 0
        parent = self.parent_of(entry.path)
        if parent is None or not parent.listed or parent.ino == inode.ino:
            return 0
        if store.lookup(parent.ino, entry.name) is not None or not ctx.shown(entry):
            return 0
        old_parent, old_name = inode.parent, inode.name
        store.update(inode, parent=parent.ino, name=entry.name, remote_path=entry.path, ctime_ns=time.time_ns())
        if inode.is_dir:
            store.move_placements(old_path, entry.path)
        ctx.invalidate_entry(old_parent, old_name)
        ctx.invalidate_entry(parent.ino, entry.name)
        log.info("remote move: %s -> %s", old_path, entry.path)
        return 1 + self._content(inode, entry)

    def gone(self, inode: Inode) -> int:
        """``inode``'s remote object is no longer where we placed it."""
        ctx, store = self.ctx, self.ctx.store
        if inode.ino == ROOT_INO or inode.remote_path is None or self.ours(inode.remote_path):
            return 0
        changed = self._children_gone(inode) if inode.is_dir else 0
        busy = inode.needs_sync or inode.state.has_unsynced_data or (inode.is_dir and store.has_children(inode.ino))
        if busy:
            store.update(inode, remote_path=None, remote_rev=None, remote_id=None, needs_sync=True)
            self.wants_sync.append(inode.ino)
            return changed
        parent, name = inode.parent, inode.name
        store.update(inode, parent=None, name=f".deleted-{inode.ino}", remote_path=None, remote_id=None)
        if parent is not None:
            ctx.invalidate_entry(parent, name)
        ctx.orphaned(inode)
        log.info("remote delete: %s", name)
        return changed + 1

    def _children_gone(self, directory: Inode) -> int:
        """A directory gone from the remote took what we placed below it along.  A full
        listing says so for each child (deepest first); a pruned listing or a feed may
        name only the directory: its settled children go with it here, so that it is not
        taken for a directory with local content and made again on the remote."""
        store, below = self.ctx.store, f"{directory.remote_path}/"
        changed, after = 0, 0
        while page := store.children(directory.ino, after_ino=after):
            after = page[-1].ino
            for child in page:
                path = child.remote_path
                if path is not None and path.startswith(below) and not self.ctx.unacked.holds(path):
                    changed += self.gone(child)
        return changed
