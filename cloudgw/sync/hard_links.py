"""Placing the extra names of an inode (hard links) on the remote.

Every remote holds each name as an object of its own, so other tools see plain
files: a real hard link where the remote has them (file://: ``Capabilities.hard_links``),
a server-side copy where it copies, else an upload of the cached bytes.  The source is
the inode's own object, pinned to the revision we hold (``inode.remote_rev``), and the
name's object is written only where we expect it: the revision we placed there, the
tombstone's revision of what was there, or nothing (``Expect.ABSENT``).  So nothing
someone else wrote is overwritten: a foreign object at the name is saved as a conflict
copy first.  A name's row records the inode revision its object holds (``based_on``):
the name is current while that is the inode's revision.

Runs inside ``Uploader.reconcile``, after the inode's own object is settled (the
source must be on the remote and clean); otherwise ``Deferred``.  The name's old and
new remote paths are in ``ctx.in_flight`` while it is placed, so a poll leaves them.

Crash (kill -9) between the remote call and the commit (``link-after-remote``): the
row still needs sync and the redo's expectation fails on our own object; it is
recognised (same bytes as the source) and adopted -- no conflict copy.  Before the
call (``link-before-remote``): placed on the redo.  After the commit: nothing to do.
"""

from __future__ import annotations

import logging
import posixpath
from typing import TYPE_CHECKING

from cloudgw.crashpoints import crash_point
from cloudgw.errors import PreconditionFailed, RemoteError, RemoteExists, RemoteNotFound, RemoteUnsupported
from cloudgw.metadata.model import Inode, Link
from cloudgw.remotes import specials
from cloudgw.remotes.base import Expect, Kind, RemoteEntry, capabilities_at, same_version
from cloudgw.remotes.base import link as hard_link
from cloudgw.sync.context import Deferred, SyncContext

if TYPE_CHECKING:
    from cloudgw.sync.uploader import Uploader

log = logging.getLogger(__name__)

ATTEMPTS = 4


class LinkNames:
    """The remote side of one inode's hard links."""

    def __init__(self, ctx: SyncContext, uploader: Uploader) -> None:
        self.ctx = ctx
        self.uploader = uploader

    async def sync(self, inode: Inode, path: str) -> None:
        """Place every name of ``inode`` that needs it (``path``: the inode's own)."""
        store = self.ctx.store
        waiting = [link for link in store.links_of(inode.ino) if link.needs_sync]
        if not waiting:
            return
        if (inode.needs_sync or inode.state.has_unsynced_data or inode.remote_path != path
                or (inode.remote_rev is None and inode.kind is Kind.FILE)):
            raise Deferred(f"{path!r}: its other names wait for it to be on the remote")
        for link in waiting:
            await self._sync_one(inode, link)

    def path_of(self, link: Link) -> str | None:
        store = self.ctx.store
        directory = store.get(link.parent)
        where = store.path_of(directory) if directory is not None else None
        return None if where is None else posixpath.join(where, link.name) if where else link.name

    async def _sync_one(self, inode: Inode, link: Link) -> None:
        ctx, store = self.ctx, self.ctx.store
        path = self.path_of(link)
        if path is None:
            return
        if link.remote_path == path and link.based_on == inode.remote_rev:
            store.update_link(link, needs_sync=False)  # already holds these bytes (a move carried it along)
            return
        self._check_target_free(link, path)
        source_rev = inode.remote_rev
        busy = {path, link.remote_path, inode.remote_path} - {None}
        ctx.in_flight |= busy
        try:
            crash_point("link-before-remote")
            ctx.journal.touch(path)
            result, native = await self._place(inode, link, path)
            ctx.journal.touch(path, inode.remote_path or path)
            crash_point("link-after-remote")
        finally:
            ctx.in_flight -= busy
        with store.transaction():
            fresh = store.link_by_id(link.id)
            if fresh is None or store.get(inode.ino) is not inode or inode.parent is None:
                store.add_tombstone(path, result.rev, inode.kind)  # removed meanwhile: expect what we left
                return
            if native and result.rev != source_rev:  # file://: one object, one revision for all its names
                store.update(inode, remote_rev=result.rev)
                store.rebase_links(inode.ino, source_rev, result.rev)
                if (entry := ctx.cache.get(inode.ino)) is not None:
                    ctx.cache.relabel(entry, old_rev=source_rev, rev=result.rev)
                source_rev = result.rev
            old_path, old_rev = fresh.remote_path, fresh.remote_rev
            store.update_link(fresh, remote_path=path, remote_rev=result.rev, remote_id=result.id, based_on=source_rev,
                              needs_sync=self.path_of(fresh) != path or inode.remote_rev != source_rev)
            store.remove_tombstone(path)
            if old_path is not None and old_path != path:
                store.add_tombstone(old_path, old_rev, inode.kind)
        crash_point("link-after-commit")
        log.debug("hard link %s placed (%s)", path, inode.remote_path)

    def _check_target_free(self, link: Link, path: str) -> None:
        store = self.ctx.store
        held = store.by_remote_path(path)
        other = store.link_at(path)
        if held is not None or (other is not None and other.id != link.id):
            raise Deferred(f"{path!r} is still held on the remote by another entry")
        if link.remote_path != path and path in self.ctx.in_flight:
            raise Deferred(f"{path!r}: a change of another inode to it is still under way")
        tomb = store.tombstone(path)
        if tomb is not None and tomb[1] is Kind.DIR:
            raise Deferred(f"{path!r}: the directory there on the remote is still being deleted")
        directory = store.get(link.parent)
        parent = posixpath.dirname(path)
        if parent and (directory is None or directory.remote_path != parent):
            raise Deferred(f"{path!r}: its directory is not on the remote yet")

    def _expectation(self, link: Link, path: str) -> Expect | str:
        if link.remote_path == path and link.remote_rev is not None:
            return link.remote_rev
        tomb = self.ctx.store.tombstone(path)
        if tomb is not None and tomb[0] is not None:
            return tomb[0]
        return Expect.ABSENT

    async def _place(self, inode: Inode, link: Link, path: str) -> tuple[RemoteEntry, bool]:
        """Make the object at ``path``; (its entry, whether it is the source's own object)."""
        native = capabilities_at(self.ctx.remote, path).hard_links
        if inode.kind is not Kind.FILE and not native:
            return await self._place_symlink(inode, link, path), False
        expect = self._expectation(link, path)
        for _ in range(ATTEMPTS):
            try:
                return await self._copy(inode, path, expect)
            except PreconditionFailed:
                expect = await self._after_refusal(inode, path)
                if isinstance(expect, RemoteEntry):
                    return expect, False
        raise RemoteError(f"{path}: the remote keeps changing under the hard link; will retry")

    async def _copy(self, inode: Inode, path: str, expect: Expect | str) -> tuple[RemoteEntry, bool]:
        """The call itself: a hard link, a server-side copy, or an upload from the cache --
        each pinned to the source revision and conditional on ``expect``."""
        remote, src, rev = self.ctx.remote, inode.remote_path, inode.remote_rev
        assert src is not None
        if capabilities_at(remote, src).hard_links:
            try:
                return await hard_link(remote, src, path, rev=rev, expect=expect), True
            except RemoteUnsupported:
                pass  # not between these two paths (a router across remotes): a copy then
        if capabilities_at(remote, path).server_side_copy:
            return await remote.copy(src, path, rev=rev, expect=expect), False
        return await self.uploader.write_cached(inode, path, expect), False

    async def _after_refusal(self, inode: Inode, path: str) -> Expect | str | RemoteEntry:
        """The remote refused a conditional placement: find out which side, never guess.
        The source no longer at our revision: not ours to copy (the poll decides: a split,
        or the change taken).  Otherwise what is at ``path``: ours already (a lost reply:
        the entry, adopted), nothing (place it anew), or someone else's (saved aside as a
        conflict copy; then replaced)."""
        remote, src = self.ctx.remote, inode.remote_path
        assert src is not None
        try:
            source = await remote.stat(src)
        except RemoteNotFound:
            raise Deferred(f"{src!r}: gone from the remote; the poll decides") from None
        if inode.remote_rev is None or not same_version(remote, source.rev or "", inode.remote_rev, path=src):
            raise Deferred(f"{src!r}: changed on the remote; the poll decides")
        try:
            there = await remote.stat(path)
        except RemoteNotFound:
            return Expect.ABSENT
        if await self.uploader.is_copy_of(path, there, src):
            log.info("%s already holds this content (a hard link placed before a crash)", path)
            return there
        return await self.uploader.save_conflict_copy_at(path)

    async def _place_symlink(self, inode: Inode, link: Link, path: str) -> RemoteEntry:
        """A symlink's or special file's other name: the same target or marker again.  Our
        earlier object at the name (an older marker) is deleted at its revision first."""
        remote = self.ctx.remote
        if inode.kind is Kind.SYMLINK:
            target = inode.target or ""
        else:
            target = specials.Special(inode.kind, inode.mode, inode.uid, inode.gid, inode.rdev).marker()
        if link.remote_path == path:
            try:
                await remote.delete(path, expect=link.remote_rev)
            except PreconditionFailed:
                pass  # not ours any more: ``_own_symlink`` below keeps it
        try:
            return await remote.symlink(path, target)
        except RemoteExists:
            entry, _settled = await self.uploader.own_symlink(path, target)
            return entry
