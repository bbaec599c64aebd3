"""The sync engine: write-back uploads, tombstones, polling and fetching, composed.

It is the filesystem's ``SyncPort``.  ``run()`` owns every background task (the
write-back queue, the fetcher's read-ahead, tombstone processing, the poll
loop); the composition root starts it in its nursery.

Startup recovery (crash behaviour): files left UPLOADING or CONFLICT by a
crash become DIRTY again, every inode that needs sync is queued, tombstones
are processed, and incomplete multipart uploads are aborted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import trio

from cloudgw.cache.files import CacheEntry
from cloudgw.errors import PreconditionFailed, RemoteError, RemoteExists, RemoteNotFound, SourceChanged
from cloudgw.metadata.model import FileState, Inode
from cloudgw.remotes.base import Kind, capabilities_at, check_path
from cloudgw.sync.context import SyncContext
from cloudgw.sync.fetcher import Fetcher
from cloudgw.sync.lister import DirectoryLister
from cloudgw.sync.poller import Poller
from cloudgw.sync.tombstones import TombstoneProcessor
from cloudgw.sync.context import Deferred
from cloudgw.sync.uploader import Uploader
from cloudgw.sync.writeback import WritebackQueue

log = logging.getLogger(__name__)

DEFERRED_RETRY = 1.0  # seconds before a deferred reconcile (``Deferred``) is tried again, at most


@dataclass(frozen=True)
class SyncSettings:
    write_back_delay: float = 5.0
    poll_interval: float = 60.0
    upload_concurrency: int = 4
    backoff_cap: float = 300.0
    tombstone_retry: float = 5.0


class SyncEngine:
    def __init__(self, ctx: SyncContext, settings: SyncSettings = SyncSettings(),
                 make_room: Callable[[int], int] | None = None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.fetcher = Fetcher(ctx.remote, ctx.cache, make_room=make_room)
        self.lister = DirectoryLister(ctx)
        self.uploader = Uploader(ctx, self.fetcher)
        self.tombstones = TombstoneProcessor(ctx)
        self.poller = Poller(ctx, self.lister)
        self.queue: WritebackQueue[int] = WritebackQueue(
            self._reconcile,
            delay=settings.write_back_delay,
            concurrency=settings.upload_concurrency,
            backoff_cap=settings.backoff_cap,
            requeue_on=(SourceChanged, Deferred),
            on_failure=self._on_failure,
        )
        self._tombstone_kick = trio.Event()
        self._poll_kick = trio.Event()
        self._poll_done = trio.Event()
        self._interrupted: list[str] = []  # paths whose upload a crash interrupted

    # -- SyncPort (called by the filesystem, never awaits the network) ----------------------

    def content_changed(self, inode: Inode) -> None:
        entry = self.ctx.cache.get(inode.ino)
        if entry is not None and inode.remote_path is not None and entry.missing(0, entry.fetch_limit):
            self.fetcher.prefetch_all(inode.remote_path, entry)
        if self.queue.is_pending(inode.ino):
            self.queue.schedule(inode.ino)  # re-arm; an upload in flight will abort and requeue

    def closed(self, inode: Inode) -> None:
        self.queue.schedule(inode.ino)

    def released(self, inode: Inode) -> None:
        self.fetcher.forget(inode.ino)

    def placement_changed(self, inodes: list[Inode]) -> None:
        for inode in inodes:
            self.queue.schedule(inode.ino)

    def removed(self, inode: Inode) -> None:
        self.queue.cancel(inode.ino)
        self.ctx.unacked.removed(inode.ino)
        if inode.remote_path is not None and inode.remote_path != "":
            rev = inode.remote_rev if inode.kind is not Kind.DIR else None
            self.ctx.store.add_tombstone(inode.remote_path, rev, inode.kind)
            self.ctx.store.update(inode, remote_path=None, remote_rev=None)
            self._tombstone_kick.set()

    def name_removed(self, remote_path: str, rev: str | None, kind: Kind) -> None:
        self.ctx.store.add_tombstone(remote_path, rev, kind)
        self._tombstone_kick.set()

    def check_name(self, directory: Inode, name: str, moving: Inode | None = None) -> None:
        """The remote's name rules (``remotes.base.check_path``: EINVAL, ENAMETOOLONG) and, on a
        case-insensitive remote, no case-only twin: ``Report.doc`` next to ``report.doc`` is
        refused (EEXIST), as a case-insensitive filesystem would, since the remote would take
        both for one object.  A case-only rename of ``moving`` itself is fine.  The twin check
        reads the directory's children: one scan per new name, on such remotes only."""
        store = self.ctx.store
        base = store.path_of(directory)
        if base is None:
            return  # the directory left the tree meanwhile: the caller fails elsewhere
        path = f"{base}/{name}" if base else name
        check_path(self.ctx.remote, path)
        if capabilities_at(self.ctx.remote, path).case_sensitive:
            return
        fold, after = name.lower(), 0
        while page := store.children(directory.ino, after):
            for child in page:
                if child.name != name and child.name.lower() == fold and (moving is None or child.ino != moving.ino):
                    raise RemoteExists(f"{path}: the remote has no case: it is the same name as {child.name!r}")
            after = page[-1].ino

    async def ensure_listed(self, directory: Inode) -> None:
        await self.lister.ensure_listed(directory)

    async def prepare_dir_move(self, directory: Inode) -> None:
        """Before a directory moves here, on a remote that cannot move a directory in one
        call: list every directory below it.  The remote then follows with one move per
        entry, and only entries known here are moved; one never listed would stay
        behind under the old name (and the old directory come back with the next poll).
        Waits on the network once per directory never opened (a rename of a big unseen
        tree on S3 costs its listing, as any tool that copies it does)."""
        if directory.remote_path is None or capabilities_at(self.ctx.remote, directory.remote_path).dir_rename:
            return
        store, todo = self.ctx.store, [directory]
        while todo:
            current = todo.pop()
            await self.lister.ensure_listed(current)
            after = 0
            while page := store.children(current.ino, after):
                todo.extend(child for child in page if child.is_dir)
                after = page[-1].ino

    async def fetch(self, inode: Inode, entry: CacheEntry, offset: int, length: int) -> None:
        """Fetch for a reader/writer; if the remote changed under a clean file, take the
        new version (cache reset, kernel invalidated) and fetch again once."""
        for attempt in range(2):
            if inode.remote_path is None:
                raise RemoteError(f"inode {inode.ino}: no remote copy to read from")
            try:
                await self.fetcher.fetch(inode.remote_path, entry, offset, length)
                if inode.state is FileState.REMOTE_ONLY:
                    self.ctx.store.update(inode, state=FileState.CLEAN)
                return
            except PreconditionFailed:
                if attempt or inode.state.has_unsynced_data:
                    raise
                await self._refresh(inode, entry)

    async def _refresh(self, inode: Inode, entry: CacheEntry) -> None:
        assert inode.remote_path is not None
        try:
            now = await self.ctx.remote.stat(inode.remote_path)
        except RemoteNotFound:
            raise RemoteError(f"{inode.remote_path}: deleted on the remote") from None
        if inode.state.has_unsynced_data:  # written here while we asked: the local data wins, the
            raise RemoteError(f"{inode.remote_path}: changed on the remote while being written here")  # upload
        self.ctx.store.update(inode, remote_rev=now.rev, size=now.size, state=FileState.REMOTE_ONLY,
                              mtime_ns=now.attrs.mtime_ns or now.mtime_ns)
        self.ctx.cache.reset(entry, rev=now.rev, remote_size=now.size)
        self.ctx.invalidate(inode)

    # -- commands --------------------------------------------------------------------------

    def sync_now(self) -> None:
        """Upload everything pending now, ignoring the write-back delay."""
        self._schedule_all_pending()
        self.queue.flush()
        self._tombstone_kick.set()

    def retry_failed(self) -> None:
        """Retry now what failed (a remote is reachable or signed in again), without
        waiting for the backoff; what waits for its write-back delay keeps waiting."""
        self.queue.flush([f.key for f in self.queue.snapshot().failed])
        self._tombstone_kick.set()

    def pending(self) -> int:
        queued, uploading, _ = self.queue.counts()
        return queued + uploading + self.tombstones.pending()

    async def drain(self, timeout: float) -> bool:
        """Upload everything now; True if nothing is left pending within ``timeout``."""
        with trio.move_on_after(timeout):
            while True:
                self.sync_now()
                await self.queue.wait_idle()
                await self.ctx.unacked.clean_orphans()
                remaining = await self.tombstones.process() or self.ctx.unacked.pending()
                if not remaining and self.ctx.store.count_needing_sync() == 0:
                    return True
                await trio.sleep(0.2)
        return False

    async def poll_now(self) -> None:
        """Run one poll and return when it finished (tests, ``cloudgw sync``)."""
        done = self._poll_done = trio.Event()
        self._poll_kick.set()
        await done.wait()

    # -- background tasks ----------------------------------------------------------------------

    def recover(self) -> None:
        """After a crash: interrupted uploads are redone (their leftovers on the remote
        are removed by ``_abort_leftover_uploads``)."""
        store = self.ctx.store
        self._interrupted: list[str] = []
        for ino in store.inos_needing_sync():
            inode = store.get(ino)
            if inode is not None and inode.state in (FileState.UPLOADING, FileState.CONFLICT):
                path = store.path_of(inode)
                if path:
                    self._interrupted.append(path)
                store.update(inode, state=FileState.DIRTY)
        self._schedule_all_pending()

    def _schedule_all_pending(self) -> int:
        inos = self.ctx.store.inos_needing_sync()
        for ino in inos:
            if not self.queue.is_pending(ino):
                self.queue.schedule(ino)
        return len(inos)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.recover()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.fetcher.run)
            await nursery.start(self.queue.run)
            nursery.start_soon(self._abort_leftover_uploads)
            nursery.start_soon(self._tombstone_loop)
            nursery.start_soon(self._poll_loop)
            task_status.started()

    async def _abort_leftover_uploads(self) -> None:
        try:
            n = await self.ctx.remote.abort_incomplete_uploads(self._interrupted)
            if n:
                log.info("aborted %d incomplete multipart uploads left by an earlier run", n)
        except RemoteError as exc:
            log.warning("could not clean up incomplete uploads: %s", exc)

    async def _reconcile(self, ino: int) -> None:
        try:
            released = await self.uploader.reconcile(ino)
        except Deferred:
            # it waits on another change of ours (a name to be freed, a directory to be made), which
            # takes a round trip or two: tried again soon, not after another write-back delay (an
            # hour's delay would otherwise hold ``sync --wait`` for an hour)
            self.queue.schedule(ino, delay=min(DEFERRED_RETRY, self.queue.delay))
            raise
        for child in released:
            self.queue.schedule(child, delay=0)  # they waited (Deferred) for this reconcile
        self._tombstone_kick.set()

    def _on_failure(self, ino: int, exc: BaseException) -> None:
        inode = self.ctx.store.get(ino)
        path = self.ctx.store.path_of(inode) if inode else None
        log.warning("upload of %s failed (will retry): %s", path or f"inode {ino}", exc)
        self.ctx.stats.error(f"upload {path or ino}: {exc}")

    async def _tombstone_loop(self) -> None:
        while True:
            with trio.move_on_after(self.settings.tombstone_retry):
                await self._tombstone_kick.wait()
            self._tombstone_kick = trio.Event()
            if self.ctx.unacked.pending():
                await self.ctx.unacked.clean_orphans()
            if self.ctx.store.tombstones():
                await self.tombstones.process()

    async def _poll_loop(self) -> None:
        while True:
            with trio.move_on_after(self.settings.poll_interval):
                await self._poll_kick.wait()
            self._poll_kick = trio.Event()
            done = self._poll_done
            try:
                result = await self.poller.poll()
                for ino in result.wants_sync:
                    self.queue.schedule(ino)
            except RemoteError as exc:
                self.ctx.stats.last_poll_error = str(exc)
                self.ctx.stats.error(f"poll: {exc}")
                log.warning("poll failed: %s", exc)
            done.set()

    def status(self) -> dict:
        store = self.ctx.store
        snap = self.queue.snapshot()
        # only the rows waiting for sync (their index): ``sync --wait`` asks every 0.5 s, and a count
        # over every file scanned the whole tree each time on the trio thread (0.4 s at 1,000,000 files)
        counts, _ = store.sync_backlog()
        failed = [{"path": self._path(f.key), "attempts": f.attempts, "error": f.last_error} for f in snap.failed]
        dirty_n, dirty_b = (sum(counts.get(s.value, (0, 0))[i] for s in (FileState.DIRTY, FileState.CONFLICT))
                            for i in (0, 1))
        up_n, up_b = counts.get(FileState.UPLOADING.value, (0, 0))
        return {
            "dirty_files": dirty_n,
            "dirty_bytes": dirty_b,
            "uploading_files": up_n,
            "uploading_bytes": up_b,
            "pending": self.pending(),
            "pending_bytes": dirty_b + up_b,
            "queued": len(snap.queued),
            "failed_files": len(snap.failed),
            "failed": failed,
            "pending_deletes": self.tombstones.pending(),
            "conflicts": store.conflict_count(),
            "recent_conflicts": [{"path": p, "copy": c, "time": t} for p, c, t in store.conflicts(10)],
            "last_poll": self.ctx.stats.last_poll_ok,
            "last_poll_error": self.ctx.stats.last_poll_error,
            "errors": [{"time": t, "message": m} for t, m in self.ctx.stats.errors],
            "inodes_in_memory": dict(zip(("pinned", "held"), store.in_memory())),
            "cache_entries_in_memory": self.ctx.cache.in_memory(),
            "time": time.time(),
        }

    def _path(self, ino: int) -> str:
        inode = self.ctx.store.get(ino)
        return (self.ctx.store.path_of(inode) or f"inode {ino}") if inode else f"inode {ino}"
