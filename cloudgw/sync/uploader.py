"""Making the remote follow one local inode: upload, move, mkdir, symlink, special file.

``reconcile(ino)`` is the write-back queue's upload callable.  It is idempotent:
it compares the inode's local path and state with its placement on the remote
(``remote_path``/``remote_rev``) and does what is missing.

Upload of a file, step by step, and what a crash (kill -9) between steps does:

1. make the cache file complete (fetch blocks never read) -- crash: redone.
2. state := UPLOADING (committed) -- crash: startup turns it back into DIRTY.
3. ``remote.write(path, snapshot, expect=rev we last saw | ABSENT)``; the
   snapshot is the cache file checked against ``data_version`` right before
   the remote commits, so a file modified meanwhile is never sent torn
   (SourceChanged: the queue reschedules it) -- crash: the remote keeps the
   old object (or an incomplete multipart upload, removed at startup).
   The snapshot also says which blocks changed since the cache entry's
   revision: when that is the revision being replaced, a remote with part
   copies (S3) copies the unchanged parts server-side and is sent only the
   rest.  Which blocks changed is persisted with the block map and trusted
   after a clean shutdown only: after a crash the first upload of an edited
   file sends every byte.
4. remote acknowledged; commit remote_path/remote_rev/remote_id/state CLEAN and
   the tombstone of the old location in one transaction -- crash between 3
   and 4: the redo finds a revision it does not know, reads it back and
   recognises its own content (``compare.holds_same_bytes``: by hash where the
   remote reports one, else read back); only different content
   would become a conflict copy.
5. the old location (after a rename) is deleted by tombstone processing, only
   if it still holds the revision we last saw.

A remote version that changed under us (PreconditionFailed) is never
overwritten silently: the file goes UPLOADING -> CONFLICT, theirs is copied
aside to ``name.conflict-<time>.ext`` (server-side, or downloaded and uploaded
where the remote cannot copy: ``copy_aside``), recorded and reported, and the
file goes back to UPLOADING and ours is written in its place.  If the copy
cannot be made the file stays CONFLICT (never evicted) and is retried.

A chmod, chown or touch of a file or directory already on the remote, whose content
is clean and in place, sends the attributes alone (``_sync_attrs``: ``set_attrs``,
where the remote keeps them); an upload, mkdir or move that meanwhile lost sight of
the local attributes leaves the inode needing sync for it.

A directory renamed here is one remote ``rename`` where the remote moves whole
directories (``Capabilities.dir_rename``: ``_move_dir``); elsewhere it is a
mkdir, one move per entry, and the old directory's tombstone.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time

from cloudgw.cache.checksums import verify_all
from cloudgw.cache.files import BLOCK_SIZE, CacheEntry
from cloudgw.crashpoints import crash_point
from cloudgw.errors import (PreconditionFailed, RemoteError, RemoteExists, RemoteNotEmpty, RemoteNotFound,
                            SourceChanged, TransientRemoteError)
from cloudgw.metadata.model import FileState, Inode
from cloudgw.remotes import specials
from cloudgw.remotes.base import Expect, FileAttrs, Kind, RemoteEntry, capabilities_at, set_attrs
from cloudgw.sync.compare import COMPARE_CHUNK, holds_same_bytes, read_exact
from cloudgw.sync.context import Deferred, SyncContext
from cloudgw.sync.copy_aside import copy_aside
from cloudgw.sync.fetcher import Fetcher
from cloudgw.sync.hard_links import LinkNames
from cloudgw.sync.unacked import ChunkLog

log = logging.getLogger(__name__)


NOTE_CHUNK = 8 << 20  # bytes per CRC noted for a server-side copied range


class CacheFileSource:
    """Upload source over a cache file, valid while the inode's data_version holds.

    Also a ``DeltaSource``: bytes [0, ``base_limit``) outside the ``changed`` blocks
    still equal remote revision ``base_rev`` (the cache entry's), so a remote that
    copies parts server-side need not be sent them.  The snapshot is taken with the
    source; a write after it changes data_version, and ``check`` then fails.
    """

    def __init__(self, fd: int, size: int, inode: Inode, version: int, *, base_rev: str | None = None,
                 base_limit: int = 0, changed: frozenset[int] | None = None) -> None:
        self._fd, self.size, self._inode, self._version = fd, size, inode, version
        self.base_rev = base_rev if changed is not None else None
        self._base_limit, self._changed = base_limit, changed or frozenset()
        self.sent = ChunkLog()  # to recognise this write later if its reply is lost

    def read(self, offset: int, length: int) -> bytes:
        if offset > 0:
            crash_point("upload-mid-transfer")  # some bytes (parts) already sent
        data = os.pread(self._fd, max(0, min(length, self.size - offset)), offset)
        self.sent.note(offset, data)
        return data

    def unchanged(self, offset: int, length: int) -> bool:
        if self.base_rev is None or length <= 0 or offset + length > min(self._base_limit, self.size):
            return False
        first, last = offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE
        return self._changed.isdisjoint(range(first, last + 1))

    def base_offset(self, offset: int) -> int:
        return offset  # a local file's unchanged bytes are where they were

    def copied(self, offset: int, length: int) -> None:
        # The remote took these bytes from base_rev; they equal ours, so note them as
        # sent (their CRC, from the local copy) for the lost-reply recognition.  In
        # chunks: a merged copy part can be hundreds of MiB.
        end = offset + length
        while offset < end:
            chunk = os.pread(self._fd, min(NOTE_CHUNK, end - offset), offset)
            if not chunk:
                return
            self.sent.note(offset, chunk)
            offset += len(chunk)

    def check(self) -> None:
        if self._inode.data_version != self._version or self._inode.parent is None:
            raise SourceChanged(f"inode {self._inode.ino} changed during upload")


def conflict_name(path: str, now: float | None = None, n: int = 1) -> str:
    """``NAME.conflict-YYYYmmdd-HHMMSS.EXT``; the ``n``-th candidate adds ``-n`` to the stamp."""
    head, name = posixpath.split(path)
    stem, ext = posixpath.splitext(name)
    if not stem:
        stem, ext = name, ""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    if n > 1:
        stamp += f"-{n}"
    return posixpath.join(head, f"{stem}.conflict-{stamp}{ext}")


MAX_CONFLICT_CANDIDATES = 1000


def attrs_of(inode: Inode) -> FileAttrs:
    return FileAttrs(mode=inode.mode, uid=inode.uid, gid=inode.gid, mtime_ns=inode.mtime_ns)


class Uploader:
    def __init__(self, ctx: SyncContext, fetcher: Fetcher) -> None:
        self.ctx = ctx
        self.fetcher = fetcher
        # ino -> (src, dst) of a remote move sent but not known to have gone through (no
        # answer: lost reply, timeout).  In memory only: after a restart, a move found done
        # is taken for someone else's change (a conflict copy; nothing lost).
        self._moves_tried: dict[int, tuple[str, str]] = {}
        self._links = LinkNames(ctx, self)

    async def reconcile(self, ino: int) -> list[int]:
        """Make the remote follow ``ino``; returns the inodes this released: children that
        waited (``Deferred``) for their directory to be on the remote, to be queued now."""
        store = self.ctx.store
        inode = store.get(ino)
        if inode is None or inode.parent is None:
            return []
        links = store.links_of(ino) if inode.nlink > 1 else []
        if not inode.needs_sync and not any(link.needs_sync for link in links):
            return []
        path = store.path_of(inode)
        if path is None:
            return []
        if not inode.needs_sync:  # only hard links wait
            await self._links.sync(inode, path)
            return []
        if links:  # whatever this changes on the remote, the names follow it (crash-safe: committed first)
            store.mark_links(ino, needs_sync=True)
        # first: an unanswered write elsewhere becomes an orphan to clean up even while this
        # reconcile is deferred (a directory's rmdir waits for it: ``unacked.holds_under``)
        self.ctx.unacked.moved_away(ino, path)
        src = inode.remote_path
        if inode.kind is Kind.FILE and src and (path.startswith(src + "/") or src.startswith(path + "/")):
            await self._replace_nested(inode, src, path)
        try:
            self._check_target_free(inode, path)
        except Deferred:
            if src is None or src == path or not self._waits_on_itself(inode, path):
                raise
            await self._step_aside(inode, src)  # a ring of renames: one must let go first
            raise
        self._check_source_settled(inode)
        busy = {path, inode.remote_path} - {None}  # (the inode may leave ``path`` while we work)
        self.ctx.in_flight |= busy
        try:
            if inode.is_dir:
                return await self._sync_dir(inode, path)
            elif inode.kind is Kind.SYMLINK:
                await self._sync_symlink(inode, path)
            elif inode.kind.is_special:
                await self._sync_special(inode, path)
            elif inode.state.has_unsynced_data or inode.remote_path is None:
                await self._upload(inode, path)
            elif inode.remote_path != path:
                await self._move(inode, path)
            else:
                await self._sync_attrs(inode, path)
        finally:
            self.ctx.in_flight -= busy
        if links:
            await self._links.sync(inode, path)
        return []

    def _check_target_free(self, inode: Inode, path: str) -> None:
        store = self.ctx.store
        occupant = store.by_remote_path(path)
        if occupant is not None and occupant.ino != inode.ino:
            raise Deferred(f"{path!r} is still held on the remote by inode {occupant.ino}")
        if (link := store.link_at(path)) is not None:
            raise Deferred(f"{path!r} is still held on the remote by a hard link of inode {link.ino}")
        if path in self.ctx.in_flight:
            raise Deferred(f"{path!r}: a change of another inode to it is still under way")
        tomb = store.tombstone(path)  # a file cannot replace a directory in one write, nor the reverse
        if tomb is not None and (tomb[1] is Kind.DIR) != inode.is_dir:
            raise Deferred(f"{path!r}: the {tomb[1].value} there on the remote is still being deleted")
        parent = posixpath.dirname(path)
        directory = store.get(inode.parent) if inode.parent is not None else None
        if parent and directory is not None and directory.remote_path != parent:
            # Its directory is not (yet) there: made first, so that a directory whose mkdir
            # failed and that is then removed here is never left behind on a remote that
            # creates missing parents (file://) with no tombstone to remove it.
            raise Deferred(f"{path!r}: its directory is not on the remote yet")
        while parent:  # a file on the remote where we need a directory: wait until it is gone
            held, tomb = store.by_remote_path(parent), store.tombstone(parent)
            if (held is not None and held.ino != inode.ino and not held.is_dir) or (
                    tomb is not None and tomb[1] is not Kind.DIR):
                raise Deferred(f"{path!r}: {parent!r} is still a file on the remote")
            parent = posixpath.dirname(parent)

    def _waits_on_itself(self, inode: Inode, path: str) -> bool:
        """Whether ``inode``'s way to ``path`` is blocked by a ring of renames that ends at
        itself: names swapped here (``mv a t; mv b a; mv t b``) before the write-back, so each
        remote object sits where another must go and each waits for the other to leave."""
        store, seen, target = self.ctx.store, set(), path
        if path in self.ctx.in_flight:
            return False  # another of the ring is stepping aside from it right now
        for _ in range(64):
            occupant = store.by_remote_path(target)
            if occupant is None or not occupant.needs_sync or occupant.ino in seen:
                return False  # free, settled, or a ring without us (one of its own breaks it)
            if occupant.ino == inode.ino:
                return True
            seen.add(occupant.ino)
            target = store.path_of(occupant)
            if target is None or target == occupant.remote_path:
                return False
        return False

    def _aside_name(self, inode: Inode, src: str) -> str:
        """The temporary name ``inode`` steps aside to: beside ``src``, unique to this cache dir
        (``store.generation``: two gateways on one remote never pick the same)."""
        return posixpath.join(posixpath.dirname(src), f".cloudgw-swap-{self.ctx.store.generation:08x}-{inode.ino}")

    async def _left_aside(self, inode: Inode, src: str, kind: Kind) -> str | None:
        """Where ``inode``'s object went if a step aside of ours moved it but was killed before
        the commit, and the ring was then broken by another member: its temporary name, or None."""
        aside = self._aside_name(inode, src)
        try:
            there = await self.ctx.remote.stat(aside)
        except RemoteNotFound:
            return None
        return aside if there.kind is kind else None

    async def _step_aside(self, inode: Inode, src: str) -> None:
        """Move ``inode``'s remote object to a temporary name beside it (``_aside_name``),
        committed like any move: its old name is then free for the next of the ring, and it
        follows to its own name once that is free (the caller's ``Deferred`` requeues it).

        Crash between the remote move and the commit (crash point ``move-after-remote``,
        ``tests/mount/test_crash_matrix.py``): the redo adopts our own earlier move, whether
        it steps aside again or -- the ring broken meanwhile by another member stepping aside
        -- moves on to its name from where it was left (``_left_aside``).  A poll before the
        redo finds the old name gone and the temporary one new, as for any move (``_move_dir``):
        nothing is lost, but entries below a directory may come back under the temporary
        name.  On a remote without directory renames a killed step aside of a directory may
        leave an empty temporary folder there."""
        aside = self._aside_name(inode, src)
        log.info("%s: renames here form a ring; moving it aside to %s first", src, aside)
        busy = {src, aside}
        self.ctx.in_flight |= busy
        try:
            if inode.is_dir:
                await self._sync_dir(inode, aside)  # (children it releases retry on their own)
            else:
                self._moves_tried[inode.ino] = (src, aside)  # maybe done before a crash: then adopted
                await self._move(inode, aside)
        finally:
            self.ctx.in_flight -= busy

    def _check_source_settled(self, inode: Inode) -> None:
        """Not while a directory above the inode's remote object is being moved or made on
        the remote: its remote path is about to change (a one-call directory rename carries
        it along; ``_move_dir`` rewrites the placement when it lands).  A move of the file
        from its old path now would find nothing there, or race the directory's move."""
        if self.ctx.in_flight_at(posixpath.dirname(inode.remote_path or "")):
            raise Deferred(f"{inode.remote_path!r}: a directory above it is being changed on the remote")

    def _expectation(self, inode: Inode, path: str) -> Expect | str:
        if inode.remote_path == path and inode.remote_rev is not None:
            return inode.remote_rev
        tomb = self.ctx.store.tombstone(path)
        if tomb is not None:
            rev, kind = tomb
            return rev if (rev is not None and kind is not Kind.DIR) else Expect.ANY
        return Expect.ABSENT

    # -- files -----------------------------------------------------------------------------

    async def _upload(self, inode: Inode, path: str) -> None:
        store, cache = self.ctx.store, self.ctx.cache
        entry = cache.get(inode.ino)
        if entry is None:
            if inode.size and inode.remote_path is None:
                raise RemoteError(f"{path}: local data is missing from the cache (cache damaged?)")
            entry = cache.entry_for(inode.ino, rev=inode.remote_rev, remote_size=inode.size)
        await self._complete(inode, entry)
        version, size, attrs = inode.data_version, inode.size, attrs_of(inode)
        expect = self._expectation(inode, path)
        store.update(inode, state=FileState.UPLOADING)
        crash_point("upload-after-state")
        fd = cache.open_fd(entry, writes=False)
        try:
            source = CacheFileSource(fd, size, inode, version, base_rev=entry.rev, base_limit=entry.fetch_limit,
                                     changed=entry.changed_snapshot())
            for _ in range(4):
                try:
                    result = await self.ctx.remote.write(path, source, expect=expect, attrs=attrs)
                    self.ctx.unacked.succeeded(inode.ino)
                    break
                except PreconditionFailed:
                    # refused -- maybe by an earlier attempt of this same write whose reply was lost
                    # (a retry inside the remote client): remember what went out before the file
                    # can change, so that attempt is recognised as ours, not taken for theirs
                    self.ctx.unacked.failed(inode.ino, path, size, source.sent)
                    try:
                        expect = await self._save_conflict_copy(inode, path, source)
                    except PreconditionFailed:  # theirs changed again while it was copied aside:
                        if inode.state is FileState.CONFLICT:  # the next write fails on it too,
                            store.update(inode, state=FileState.UPLOADING)  # and copies the newer one
                        continue
            else:
                raise RemoteError(f"{path}: the remote keeps changing under the upload; will retry")
        except (TransientRemoteError, PreconditionFailed, SourceChanged):
            # The bytes may have landed (no answer; or a refused retry hiding an attempt that
            # went through, as can a file that changed or went away mid-upload): remember them.
            self.ctx.unacked.failed(inode.ino, path, size, source.sent)
            if inode.parent is None:
                self.ctx.unacked.removed(inode.ino)
            if inode.state is FileState.UPLOADING:
                store.update(inode, state=FileState.DIRTY)
            raise
        except BaseException:
            if inode.state is FileState.UPLOADING:
                store.update(inode, state=FileState.DIRTY)
            raise
        finally:
            cache.release(entry)
        crash_point("upload-after-remote-ack")
        self._commit_upload(inode, path, result, version, size, entry, attrs)
        crash_point("upload-after-commit")

    async def _complete(self, inode: Inode, entry: CacheEntry) -> None:
        """Fetch what was never read (or is damaged: never upload a bad cache block), so the
        whole file can be sent."""
        if entry.unchecked:
            fd = self.ctx.cache.open_fd(entry, writes=False)
            try:
                await verify_all(entry, fd)
            finally:
                self.ctx.cache.release(entry)
        if entry.fetch_limit and entry.missing(0, entry.fetch_limit):
            if inode.remote_path is None:
                raise RemoteError(f"inode {inode.ino}: partial data with no remote copy")
            await self.fetcher.fetch(inode.remote_path, entry, 0, entry.fetch_limit)

    def _commit_upload(self, inode: Inode, path: str, result: RemoteEntry, version: int, size: int, entry: CacheEntry,
                       attrs: FileAttrs) -> None:
        """``attrs``: what the write carried; a chmod, chown or touch since keeps the inode
        needing sync (sent alone next: ``_sync_attrs``)."""
        ctx, store = self.ctx, self.ctx.store
        ctx.journal.touch(path)
        with store.transaction():
            if store.get(inode.ino) is None or inode.parent is None:
                store.add_tombstone(path, result.rev, Kind.FILE)  # deleted while uploading
                return
            old_path, old_rev = inode.remote_path, inode.remote_rev
            unchanged = inode.data_version == version
            moved = store.path_of(inode) != path
            store.update(
                inode,
                remote_path=path,
                remote_rev=result.rev,
                remote_id=result.id,
                state=FileState.CLEAN if unchanged else FileState.DIRTY,
                needs_sync=not unchanged or moved or attrs_of(inode) != attrs,
            )
            store.remove_tombstone(path)
            if old_path is not None and old_path != path:
                store.add_tombstone(old_path, old_rev, Kind.FILE)
        if unchanged:
            ctx.cache.adopt_as_clean(entry, rev=result.rev or "", size=size)
        log.info("uploaded %s (%d bytes)", path, size)

    async def _save_conflict_copy(self, inode: Inode, path: str, source: CacheFileSource | None = None) -> Expect | str:
        """Someone else wrote ``path``: keep their version as a conflict copy.

        Unless it is our own content: a crash between the remote's ack and our
        commit leaves our upload there under a revision we never recorded.
        """
        remote = self.ctx.remote
        try:
            theirs = await remote.stat(path)
        except RemoteNotFound:
            return Expect.ABSENT
        if theirs.kind is not Kind.FILE:
            raise RemoteError(f"{path}: the remote has a {theirs.kind.value} where a file is being uploaded")
        if source is not None and await holds_same_bytes(self.ctx.remote, path, theirs, source):
            log.info("%s already holds this content (an upload finished before a crash)", path)
            return theirs.rev or Expect.ANY
        if inode.parent is None or self.ctx.store.path_of(inode) != path:  # deleted or moved meanwhile:
            raise SourceChanged(f"inode {inode.ino} left {path} during its upload")  # what is there is not "theirs"
        if await self.ctx.unacked.is_any_ours(inode.ino, path, theirs):
            log.info("%s holds our own earlier upload (its reply was lost)", path)
            return theirs.rev or Expect.ANY
        store = self.ctx.store
        uploading = inode.state is FileState.UPLOADING
        if uploading:  # stays CONFLICT (never evicted, shown) until theirs is saved aside
            store.update(inode, state=FileState.CONFLICT)
        await self._keep_theirs(path, theirs)
        if uploading and inode.state is FileState.CONFLICT:
            store.update(inode, state=FileState.UPLOADING)  # ours is written next
        return theirs.rev or Expect.ANY

    async def save_conflict_copy_at(self, path: str) -> Expect | str:
        """Someone else's file at ``path``, where another name of one of ours goes: kept as a
        conflict copy; what to expect there now."""
        try:
            theirs = await self.ctx.remote.stat(path)
        except RemoteNotFound:
            return Expect.ABSENT
        if theirs.kind is not Kind.FILE:
            raise RemoteExists(f"{path}: the remote has a {theirs.kind.value} there; it stays")
        await self._keep_theirs(path, theirs)
        return theirs.rev or Expect.ANY

    async def _keep_theirs(self, path: str, theirs: RemoteEntry) -> None:
        """Copy someone else's file at ``path`` aside under a free conflict name; recorded and reported."""
        copy_path = await self._free_conflict_name(path)
        await copy_aside(self.ctx.remote, path, copy_path, theirs, spool_dir=self.ctx.cache.root)
        self.ctx.store.record_conflict(path, copy_path)
        self.ctx.stats.error(f"conflict: {path} changed remotely; remote version kept as {copy_path}")
        log.warning("conflict: %s changed on the remote while edited here; the remote version is kept as %s",
                    path, copy_path)

    async def write_cached(self, inode: Inode, path: str, expect: Expect | str) -> RemoteEntry:
        """Upload a settled inode's bytes (as the remote holds them at ``inode.remote_rev``) to
        ``path``, another name of it: from the cache, fetching what it lacks.  A write to the
        file meanwhile fails the snapshot's check (``SourceChanged``: requeued)."""
        cache = self.ctx.cache
        entry = cache.get(inode.ino)
        if entry is None:
            entry = cache.entry_for(inode.ino, rev=inode.remote_rev, remote_size=inode.size)
        await self._complete(inode, entry)
        fd = cache.open_fd(entry, writes=False)
        try:
            source = CacheFileSource(fd, inode.size, inode, inode.data_version)
            return await self.ctx.remote.write(path, source, expect=expect, attrs=attrs_of(inode))
        finally:
            cache.release(entry)

    async def _free_conflict_name(self, path: str) -> str:
        """A conflict-copy name nothing holds yet, on the remote or in our tree.

        The stamp has one-second resolution, so two conflicts on one file within a second
        (two gateways, or one gateway racing a busy outside writer) would get the same name,
        and ``remote.copy`` replaces its target: the first copy would be lost.  Candidates
        ``-2``, ``-3`` ... are tried until one is free.

        Remaining race: the check and the copy are two calls, and remotes offer no
        "copy if absent".  Two gateways that pick the same free name at the same moment
        (both stats before either copy lands) still overwrite one another; the window is
        one round trip, within the same second, on the same file.
        """
        now = time.time()
        store = self.ctx.store
        for n in range(1, MAX_CONFLICT_CANDIDATES + 1):
            candidate = conflict_name(path, now, n)
            if store.is_placed(candidate) or store.resolve(candidate) is not None:
                continue
            try:
                await self.ctx.remote.stat(candidate)
            except RemoteNotFound:
                return candidate
        raise RemoteError(f"{path}: no free conflict-copy name after {MAX_CONFLICT_CANDIDATES} tries")

    async def _move(self, inode: Inode, path: str) -> None:
        ctx, store = self.ctx, self.ctx.store
        src = inode.remote_path
        assert src is not None
        retry = self._moves_tried.get(inode.ino) == (src, path)
        own = await self._own_earlier_move(src, path) if retry else None
        if own is not None:  # our earlier attempt went through; only its reply was lost
            result, same_content = own, own.rev == inode.remote_rev  # else refetched, to be safe
            log.info("%s -> %s: an earlier attempt of this move went through; adopting its result", src, path)
        else:
            result, same_content = await self._rename(inode, src, path, retry)
            if result is None:
                return
        crash_point("move-after-remote")  # moved there, not yet here: the redo adopts it (_own_earlier_move)
        self._moves_tried.pop(inode.ino, None)
        ctx.journal.touch(src, path)
        log.debug("moved %s -> %s", src, path)
        based_on = inode.remote_rev
        edited = inode.state.has_unsynced_data  # written during the move: upload next
        other_attrs = self._attrs_differ(inode, result, path)  # chmod'ed before or during it: sent next
        with store.transaction():
            if self._removed_meanwhile(inode, path, result.rev, Kind.FILE):
                return
            store.update(inode, remote_path=path, remote_rev=result.rev, remote_id=result.id,
                         needs_sync=store.path_of(inode) != path or edited or other_attrs)
            store.remove_tombstone(path)
            if same_content:
                store.rebase_links(inode.ino, based_on, result.rev)
            if not same_content and edited:  # other content moved, ours edited meanwhile: the upload
                store.update(inode, remote_rev=based_on)  # must find theirs and copy it aside
            elif not same_content:
                store.update(inode, state=FileState.REMOTE_ONLY, size=result.size)
        entry = ctx.cache.get(inode.ino)
        if entry is not None and not (edited and not same_content):
            if same_content:
                entry.rev = result.rev
                ctx.cache.flush()
            else:
                ctx.cache.reset(entry, rev=result.rev, remote_size=result.size)
                ctx.invalidate(inode)
        if other_attrs and not edited and store.path_of(inode) == path:
            await self._sync_attrs(inode, path)

    async def _rename(self, inode: Inode, src: str, path: str, retry: bool) -> tuple[RemoteEntry | None, bool]:
        """The remote move itself; (what is at ``path`` now, whether it is our content), or
        (None, _) if the source was gone and the file was uploaded from the cache instead."""
        ctx, store = self.ctx, self.ctx.store
        expect_dst = self._expectation(inode, path)
        if expect_dst is Expect.ABSENT:
            try:
                there = await ctx.remote.stat(path)
                if not (retry and await self.is_copy_of(path, there, src)):  # (S3: copy done, delete not)
                    await self._save_conflict_copy(inode, path)
            except RemoteNotFound:
                pass
        self._moves_tried[inode.ino] = (src, path)  # until it is known to have gone through, or not
        try:
            return await ctx.remote.rename(src, path, expect=inode.remote_rev), True
        except PreconditionFailed:
            return await ctx.remote.rename(src, path), False  # someone changed it: move theirs, refetch
        except RemoteNotFound:
            self._moves_tried.pop(inode.ino, None)
            own = await self._own_earlier_move(src, path)  # a retry inside the client can hide it
            if own is not None:
                log.info("%s -> %s: an earlier attempt of this move went through; adopting its result", src, path)
                return own, own.rev == inode.remote_rev
            if (aside := await self._left_aside(inode, src, Kind.FILE)) is not None:
                log.info("%s -> %s: it is at %s, where a step aside before a crash left it", src, path, aside)
                return await self._rename(inode, aside, path, retry)
            entry = ctx.cache.get(inode.ino)
            if entry is None or entry.missing(0, entry.fetch_limit):  # keep the placement: the poll
                raise RemoteError(f"{src}: vanished from the remote before it could be moved to {path}") from None
            store.update(inode, remote_path=None, remote_rev=None)  # gone remotely: upload from cache
            await self._upload(inode, path)
            return None, False

    async def _own_earlier_move(self, src: str, path: str, kind: Kind = Kind.FILE) -> RemoteEntry | None:
        """Retrying ``src`` -> ``path`` after an attempt with no answer (lost reply, timeout):
        if the source is gone and a file is at the target, that attempt went through; return
        the target.  (Someone else may have deleted the source and written the target in the
        meantime: adopting their file is then what a poll would have done too, since our
        copy was clean -- ``_move`` only runs for files without local changes.)"""
        try:
            await self.ctx.remote.stat(src)
            return None  # not moved (or only copied): move it now
        except RemoteNotFound:
            pass
        try:
            there = await self.ctx.remote.stat(path)
        except RemoteNotFound:
            return None  # neither: the source vanished; the normal path uploads from the cache
        return there if there.kind is kind else None

    async def is_copy_of(self, path: str, there: RemoteEntry, src: str) -> bool:
        """Whether the object at ``path`` holds the same bytes as ``src`` (a half-done remote
        move of ours: copied, source not yet deleted).  Reads both: rare path."""
        if there.kind is not Kind.FILE:
            return False
        try:
            source = await self.ctx.remote.stat(src)
        except RemoteNotFound:
            return False
        if source.size != there.size:
            return False
        for offset in range(0, max(there.size, 1), COMPARE_CHUNK):
            mine = await read_exact(self.ctx.remote, src, source, offset, COMPARE_CHUNK)
            theirs = await read_exact(self.ctx.remote, path, there, offset, COMPARE_CHUNK)
            if mine is None or mine != theirs:
                return False
        return True

    async def _replace_nested(self, inode: Inode, src: str, path: str) -> None:
        """``a`` -> ``a/b`` or back: no remote renames that while the file is in the way of
        the directory.  The file becomes local data (complete, DIRTY: never evicted), its old
        object a tombstone; it is uploaded anew once the tombstones let ``path`` through."""
        entry = self.ctx.cache.get(inode.ino) or self.ctx.cache.entry_for(
            inode.ino, rev=inode.remote_rev, remote_size=inode.size)
        await self._complete(inode, entry)
        with self.ctx.store.transaction():
            self.ctx.store.add_tombstone(src, inode.remote_rev, Kind.FILE)
            self.ctx.store.update(inode, remote_path=None, remote_rev=None, state=FileState.DIRTY)
        raise Deferred(f"{src!r} -> {path!r}: to be uploaded anew once the old object is gone")

    # -- attributes alone -------------------------------------------------------------------

    async def _sync_attrs(self, inode: Inode, path: str) -> None:
        """A file or directory in place (content clean, not moved): where the remote keeps
        attributes, the inode's are sent alone (``set_attrs``; a chmod, chown or touch marked it:
        ``Namespace.setattr``), then the new revision and ``needs_sync`` False are committed in
        one transaction.  Attributes already as asked change nothing on the remote (the redo of a
        reconcile, the entries of a directory moved in one call).  Remotes that keep none, or
        keep them only with the content: nothing to send.

        A file expects the revision we last saw: one changed by someone else is left as it is
        (``PreconditionFailed``, or gone: logged, done -- its change is the poll's to take; ours
        stay local).  The path is touched in the journal before and after the call, so that a
        poll listing meanwhile does not take the revision our call makes (file://'s ctime, a
        copied multipart S3 object's ETag) for someone else's change.  The cache entry follows
        the new revision (same bytes, same blocks).

        Concurrency: a chmod, a write or a rename during the call keeps ``needs_sync`` (the
        queue runs the inode again); a delete during it leaves a tombstone that expects what
        our call left on the remote.  Crash (kill -9) between the call and the commit: the
        inode still needs sync and the redo sends the same attributes -- nothing to change
        where the revision held (S3 single-part objects); where it moved (file://, multipart
        objects) the redo's expectation fails, or the first poll takes the revision for a
        remote change: the clean file's cache is fetched again.  Nothing is lost.
        """
        ctx, store = self.ctx, self.ctx.store
        caps = capabilities_at(ctx.remote, path)
        sent, old_rev = attrs_of(inode), inode.remote_rev
        result: RemoteEntry | None = None
        if caps.keeps_mode or caps.keeps_mtime:
            owner = (sent.mode, sent.uid, sent.gid) if caps.keeps_mode else (None, None, None)
            attrs = FileAttrs(*owner, mtime_ns=sent.mtime_ns if caps.keeps_mtime else None)
            ctx.journal.touch(path)
            try:
                result = await set_attrs(ctx.remote, path, attrs, expect=None if inode.is_dir else old_rev)
            except (PreconditionFailed, RemoteNotFound) as exc:
                log.info("%s: attributes not sent: not at the revision we last saw (changed elsewhere, or by an "
                         "attempt of ours cut short); the poll takes it: %s", path, exc)
            ctx.journal.touch(path)
            crash_point("attrs-after-remote")
        with store.transaction():
            if store.get(inode.ino) is None or inode.parent is None:  # deleted meanwhile: its tombstone
                if result is not None:  # must expect what our call left there
                    store.add_tombstone(path, result.rev, inode.kind)
                return
            changes: dict = {"needs_sync": store.path_of(inode) != path or inode.state.has_unsynced_data
                             or attrs_of(inode) != sent}
            if result is not None and not inode.is_dir:
                changes["remote_rev"] = result.rev
                store.rebase_links(inode.ino, old_rev, result.rev)  # the same bytes
            store.update(inode, **changes)
        if result is not None and not inode.is_dir and (entry := ctx.cache.get(inode.ino)) is not None:
            ctx.cache.relabel(entry, old_rev=old_rev, rev=result.rev)
        if result is not None:
            log.debug("attributes of %s sent", path)

    def _attrs_differ(self, inode: Inode, there: RemoteEntry, path: str) -> bool:
        """Whether the remote object ``there`` (just moved, so carrying the attributes it had)
        shows other attributes than the inode, among those the remote keeps and reported: then
        a chmod, chown or touch made before or during the move is sent right after it, in the
        same reconcile (``_sync_attrs``: nothing else would queue the inode again)."""
        caps = capabilities_at(self.ctx.remote, path)
        mine, theirs = attrs_of(inode), there.attrs
        pairs = [(mine.mode, theirs.mode), (mine.uid, theirs.uid), (mine.gid, theirs.gid)] if caps.keeps_mode else []
        if caps.keeps_mtime:
            pairs.append((mine.mtime_ns, theirs.mtime_ns))
        return any(t is not None and m != t for m, t in pairs)

    def _removed_meanwhile(self, inode: Inode, path: str, rev: str | None, kind: Kind) -> bool:
        """Deleted locally while its remote move/mkdir/symlink was in flight: what that call
        made at ``path`` gets a tombstone (as in ``_commit_upload``), the inode no placement."""
        if self.ctx.store.get(inode.ino) is not None and inode.parent is not None:
            return False
        self.ctx.store.add_tombstone(path, rev, kind)
        return True

    # -- directories and symlinks ---------------------------------------------------------

    async def _sync_dir(self, inode: Inode, path: str) -> list[int]:
        ctx, store = self.ctx, self.ctx.store
        if inode.remote_path == path:
            await self._sync_attrs(inode, path)
            return []
        if inode.remote_path and capabilities_at(ctx.remote, path).dir_rename:
            try:
                return await self._move_dir(inode, inode.remote_path, path)
            except (RemoteExists, RemoteNotEmpty) as exc:  # something is in the way there: entry by entry
                log.info("%s -> %s: no one-call move (%s); moving entry by entry", inode.remote_path, path, exc)
        attrs = attrs_of(inode)
        try:
            result = await ctx.remote.mkdir(path, attrs)
        except TransientRemoteError:  # no answer: it may exist now, and must not be left behind
            ctx.unacked.mkdir_failed(inode.ino, path)
            if inode.parent is None:
                ctx.unacked.removed(inode.ino)
            raise
        ctx.unacked.mkdir_succeeded(inode.ino)
        ctx.journal.touch(path)
        with store.transaction():
            if self._removed_meanwhile(inode, path, None, Kind.DIR):
                return []
            old = inode.remote_path
            store.update(inode, remote_path=path, remote_id=result.id,
                         needs_sync=store.path_of(inode) != path or attrs_of(inode) != attrs)
            store.remove_tombstone(path)
            if old is not None:
                store.add_tombstone(old, None, Kind.DIR)
        return self._unblock_children(inode)

    async def _move_dir(self, inode: Inode, src: str, path: str) -> list[int]:
        """A directory renamed here, on a remote that moves a directory in one call
        (``dir_rename``): one remote rename carries everything below it, also what was never
        listed here; the placements below are rewritten in the same transaction as the
        directory's own.  Children then find themselves in place (no per-file moves).

        Waits (``Deferred``) while a change of ours below ``src`` is under way or unsettled
        (an upload, a delete, a write whose reply was lost): it would land under the old
        name after the move.

        Crash between the remote rename and the commit (kill -9): if the redo runs before
        the first poll, its rename finds ``src`` gone and ``path`` there and adopts it (as
        ``_own_earlier_move``), and the placements are rewritten as usual.  If a poll runs
        first (the journal is in memory, so it cannot know the move was ours), it finds
        everything under ``src`` gone: clean entries below leave the tree and come back as
        new inodes under ``path`` (new inode numbers, cache refetched), dirty ones are
        uploaded to ``path`` and meet our own moved object (a conflict copy of equal
        content).  Nothing is lost.  A persisted intent row would close this window.
        """
        ctx, store = self.ctx, self.ctx.store
        below = src + "/"
        if any(p.startswith(below) for p in ctx.in_flight) or any(
                p == src or p.startswith(below) for p, _, _ in store.tombstones()) or ctx.unacked.holds_under(src):
            raise Deferred(f"{src!r} -> {path!r}: changes below the directory are still under way")
        ctx.journal.touch_trees(src, path)  # (before: a poll listing now must not act on what moves)
        try:
            result = await ctx.remote.rename(src, path)
        except RemoteNotFound:
            result = await self._own_earlier_move(src, path, kind=Kind.DIR)
            if result is None and (aside := await self._left_aside(inode, src, Kind.DIR)) is not None:
                log.info("%s -> %s: it is at %s, where a step aside before a crash left it", src, path, aside)
                result = await ctx.remote.rename(aside, path)
            if result is None:
                raise
        crash_point("move-after-remote")
        ctx.journal.touch_trees(src, path)
        other_attrs = self._attrs_differ(inode, result, path)
        with store.transaction():
            store.move_placements(src, path)  # (also when removed meanwhile: its tombstones follow)
            if self._removed_meanwhile(inode, path, None, Kind.DIR):
                return []
            store.update(inode, remote_path=path, remote_id=result.id or inode.remote_id,
                         needs_sync=store.path_of(inode) != path or other_attrs)
            store.remove_tombstone(path)
        log.info("moved directory %s -> %s", src, path)
        if other_attrs and store.path_of(inode) == path:
            await self._sync_attrs(inode, path)
        return self._unblock_children(inode)

    def _unblock_children(self, directory: Inode) -> list[int]:
        """Children deferred until their directory was on the remote go now (not after
        another write-back delay)."""
        store, after, released = self.ctx.store, 0, []
        while page := store.children(directory.ino, after_ino=after):
            released.extend(c.ino for c in page if c.needs_sync)
            after = page[-1].ino
        return released

    async def own_symlink(self, path: str, target: str) -> tuple[RemoteEntry, bool]:
        """A symlink already there: ours if it points where ours does (an earlier attempt
        whose reply was lost), settled.  A special-file marker of the same type and device
        is ours too (made before a crash, or before a chmod here), but not settled: replaced
        next with the attributes we have.  Anything else is someone else's and stays."""
        entry = await self.ctx.remote.stat(path)
        if entry.kind is Kind.SYMLINK:
            found = await self.ctx.remote.readlink(path)
            if found == target:
                return entry, True
            mine, theirs = specials.parse(target), specials.parse(found)
            if mine is not None and theirs is not None and (mine.kind, mine.rdev) == (theirs.kind, theirs.rdev):
                return entry, False
        raise RemoteExists(f"{path}: the remote has another entry of that name; it stays")

    async def _sync_special(self, inode: Inode, path: str) -> None:
        """A FIFO, socket or device: the symlink to its marker (``remotes.specials``).

        A chmod or chown made it DIRTY: its marker at the same path is replaced
        (``_replace_marker``: never someone else's object).  Crash or failure between the
        delete and the new marker: the inode stays DIRTY and the redo makes it; a poll
        meanwhile finds the marker gone from an inode with changes pending, which keeps it.
        Renamed: made at the new path, the old one tombstoned at its revision, as a symlink."""
        if inode.remote_path == path:
            if not inode.state.has_unsynced_data:
                self.ctx.store.update(inode, needs_sync=False)
                return
            self.ctx.journal.touch(path)
            await self._replace_marker(inode, path)
            self.ctx.journal.touch(path)
        special = specials.Special(inode.kind, inode.mode, inode.uid, inode.gid, inode.rdev)
        await self._sync_symlink(inode, path, special.marker())

    async def _replace_marker(self, inode: Inode, path: str) -> None:
        """Delete the marker we placed at ``path`` -- only that: a file someone else put
        there meanwhile is saved aside first, as a conflict copy (its data is theirs); another
        gateway's marker of this special file (its own chmod) gives way to ours."""
        remote = self.ctx.remote
        try:
            await remote.delete(path, expect=inode.remote_rev)
            return
        except PreconditionFailed:
            pass
        try:
            theirs = await remote.stat(path)
        except RemoteNotFound:
            return
        if theirs.kind is Kind.FILE:
            copy_path = await self._free_conflict_name(path)
            await copy_aside(remote, path, copy_path, theirs, spool_dir=self.ctx.cache.root)
            self.ctx.store.record_conflict(path, copy_path)
            log.warning("conflict: %s became a file on the remote while its special file changed here; the file is "
                        "kept as %s", path, copy_path)
        elif theirs.kind is not Kind.SYMLINK or specials.parse(await remote.readlink(path)) is None:
            raise RemoteExists(f"{path}: the remote has a {theirs.kind.value} there now; it stays")
        await remote.delete(path, expect=theirs.rev)

    async def _sync_symlink(self, inode: Inode, path: str, target: str | None = None) -> None:
        """Make the symlink (``target``: what it points to, by default the inode's own target).

        Changed here while it was made (a chmod of a special file: DIRTY again), or an
        earlier marker adopted that is not quite ours: placed, but not settled -- the next
        reconcile replaces it."""
        ctx, store = self.ctx, self.ctx.store
        target = (inode.target or "") if target is None else target
        if inode.state is FileState.DIRTY:  # a new symlink: made on the remote like an upload
            store.update(inode, state=FileState.UPLOADING)
        settled = True
        try:
            try:
                result = await ctx.remote.symlink(path, target)
            except RemoteExists:
                result, settled = await self.own_symlink(path, target)
        except BaseException:
            if inode.state is FileState.UPLOADING:
                store.update(inode, state=FileState.DIRTY)
            raise
        ctx.journal.touch(path)
        with store.transaction():
            if self._removed_meanwhile(inode, path, result.rev, Kind.SYMLINK):
                return
            old, old_rev = inode.remote_path, inode.remote_rev
            changes: dict = {}
            if inode.state is FileState.UPLOADING:
                changes["state"] = FileState.CLEAN if settled else FileState.DIRTY
            store.update(inode, remote_path=path, remote_rev=result.rev, remote_id=result.id, **changes,
                         needs_sync=inode.state is FileState.DIRTY or not settled or store.path_of(inode) != path)
            store.remove_tombstone(path)
            if old is not None and old != path:
                store.add_tombstone(old, old_rev, Kind.SYMLINK)  # only what we placed there goes
