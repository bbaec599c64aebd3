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

Hard links (``model.Link``): each name is an object of its own, and a name changed
elsewhere splits off -- it becomes an inode of its own with the new content, and the
other names keep theirs (nothing lost, and no name shows bytes written to another
object).  The first name (the inode row's) splits off too when another name still holds
the inode's bytes on the remote (``Link.current``: that name becomes the first); if none
does, the change is taken by every name and the others are written anew.  A name gone
from the remote is removed locally; the first name's removal hands the inode to another
name.  With local changes pending, as for any file, nothing is decided here: the
conditional writes decide, and theirs becomes a conflict copy.

Paths our own sync touched after the poll began are left alone (``Journal``), as
are tombstoned paths and paths a reconcile under way may be changing right now
(``ctx.in_flight``).  Nothing here awaits: the caller runs a whole poll's changes
in one transaction.
"""

from __future__ import annotations

import logging
import posixpath
import time
from typing import Container

from cloudgw.metadata.model import ROOT_INO, FileState, Inode, Link
from cloudgw.remotes.base import Kind, RemoteEntry, same_version
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
        self.relocated: Container[str] = set()

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
        if inode is None and (link := store.link_at(entry.path)) is not None:
            return changed + self._link_present(link, entry)
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
        if entry.rev is not None and inode.remote_rev is not None and same_version(
                ctx.remote, entry.rev, inode.remote_rev, path=entry.path):
            self._relabel(inode, entry.rev)  # file://: a name added or removed, the same bytes
            return 0
        if ctx.journal.touched_since(entry.path, self.epoch):
            self.skipped.add(entry.path)
            return 0
        if inode.state.has_unsynced_data:
            return 0  # the upload's conditional write will find this and keep both
        if inode.nlink > 1:
            if inode.needs_sync:
                self.skipped.add(entry.path)
                return 0  # a name or move of ours under way: decided once it is done
            heir = next((link for link in store.links_of(inode.ino) if link.current(inode)), None)
            if heir is not None:  # another name holds our bytes: this one splits off
                self._promote(inode, heir)
                log.info("remote change: %s (split off its other names)", entry.path)
                return 1 + self._new(entry, listed=False)
            store.mark_links(inode.ino, needs_sync=True)  # no other copy of ours: every name takes it
            self.wants_sync.append(inode.ino)
        store.update(inode, remote_rev=entry.rev, size=entry.size, state=FileState.REMOTE_ONLY,
                     mtime_ns=entry.attrs.mtime_ns or entry.mtime_ns)
        cached = ctx.cache.get(inode.ino)
        if cached is not None:
            ctx.cache.reset(cached, rev=entry.rev, remote_size=entry.size)
        ctx.invalidate(inode)
        log.info("remote change: %s", entry.path)
        return 1

    def _relabel(self, inode: Inode, rev: str) -> None:
        """The inode's object is at ``rev`` now, with the bytes we hold: names and cache follow."""
        ctx, old = self.ctx, inode.remote_rev
        ctx.store.update(inode, remote_rev=rev)
        ctx.store.rebase_links(inode.ino, old, rev)
        if (cached := ctx.cache.get(inode.ino)) is not None:
            ctx.cache.relabel(cached, old_rev=old, rev=rev)

    def _promote(self, inode: Inode, heir: Link) -> None:
        """``heir`` (current: it holds the inode's bytes) becomes the inode's first name and
        placement; the first name leaves the inode (the caller adopts or drops its object)."""
        ctx = self.ctx
        old_parent, old_name = inode.parent, inode.name
        if (cached := ctx.cache.get(inode.ino)) is not None:
            ctx.cache.relabel(cached, old_rev=inode.remote_rev, rev=heir.remote_rev)
        ctx.store.promote(inode, heir)
        ctx.store.update(inode, ctime_ns=time.time_ns())
        if old_parent is not None:
            ctx.invalidate_entry(old_parent, old_name)
        ctx.invalidate(inode)

    def _link_present(self, link: Link, entry: RemoteEntry) -> int:
        """``entry`` is at the remote path of a hard link.  Changed by someone else while the
        inode is settled here: the name splits off as an inode of its own."""
        store = self.ctx.store
        if entry.rev == link.remote_rev or entry.kind is not Kind.FILE or (
                entry.rev is not None and link.remote_rev is not None
                and same_version(self.ctx.remote, entry.rev, link.remote_rev, path=entry.path)):
            return 0
        inode = store.get(link.ino)
        if (inode is None or link.needs_sync or inode.needs_sync or inode.state.has_unsynced_data
                or self.ours(entry.path)):
            self.skipped.add(entry.path)
            return 0  # ours under way or pending: the conditional write decides
        self._drop_link(inode, link)
        log.info("remote change: %s (split off from its other names)", entry.path)
        return 1 + self._new(entry, listed=False)

    def _drop_link(self, inode: Inode, link: Link) -> None:
        store = self.ctx.store
        store.remove_link(link)
        store.update(inode, nlink=inode.nlink - 1, ctime_ns=time.time_ns())
        self.ctx.invalidate_entry(link.parent, link.name)
        self.ctx.invalidate(inode)

    def link_gone(self, link: Link) -> int:
        """A hard link's object is no longer where we placed it: the name goes (settled), or
        is placed anew (a change of ours pending)."""
        store = self.ctx.store
        inode = store.get(link.ino)
        if inode is None or link.remote_path is None or self.ours(link.remote_path):
            return 0
        if link.needs_sync or inode.needs_sync or inode.state.has_unsynced_data:
            store.update_link(link, remote_path=None, remote_rev=None, remote_id=None, based_on=None, needs_sync=True)
            self.wants_sync.append(inode.ino)
            return 0
        self._drop_link(inode, link)
        log.info("remote delete: %s", link.remote_path)
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
        if inode.nlink > 1 and (heir := self._heir(inode)) is not None:
            self._promote(inode, heir)  # its other names stay
            log.info("remote delete: %s (its other names stay)", inode.name)
            return changed + 1
        parent, name = inode.parent, inode.name
        for link in store.links_of(inode.ino) if inode.nlink > 1 else ():
            store.remove_link(link)  # no other copy of its bytes anywhere: the names go with it
            ctx.invalidate_entry(link.parent, link.name)
        store.update(inode, parent=None, name=f".deleted-{inode.ino}", remote_path=None, remote_id=None, nlink=0)
        if parent is not None:
            ctx.invalidate_entry(parent, name)
        ctx.orphaned(inode)
        log.info("remote delete: %s", name)
        return changed + 1

    def _heir(self, inode: Inode) -> Link | None:
        """The name to hand a clean inode to when its first name's object is gone: one whose
        object holds its bytes, else one not placed yet if the cache holds every byte (it is
        uploaded from there)."""
        links = self.ctx.store.links_of(inode.ino)
        heir = next((link for link in links if link.current(inode)), None)
        if heir is not None:
            return heir
        cached = self.ctx.cache.get(inode.ino)
        if inode.kind is Kind.FILE and (cached is None or cached.missing(0, cached.fetch_limit) or cached.fetch_limit
                                        < inode.size):
            return None
        heir = links[0]
        self.ctx.store.update_link(heir, remote_path=None, remote_rev=None, remote_id=None, based_on=None)
        self.ctx.store.update(inode, needs_sync=True)
        self.wants_sync.append(inode.ino)
        return heir

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
        after = 0
        while page := store.link_children(directory.ino, after_id=after):
            after = page[-1][0].id
            for link, _inode in page:
                if link.remote_path is not None and link.remote_path.startswith(below):
                    changed += self.link_gone(link)
        return changed
