"""File data: open, read, write, truncate, flush, fsync, release.

The fast path: a read or write of cached data is one ``os.pread``/``os.pwrite``
on the cache file's descriptor, inline in the trio thread, with no SQLite write
and no network.  Only reads of blocks not yet cached await the fetcher.

Size and mtime of a file being written are kept in memory and persisted at
flush/fsync/release.  Crash behaviour: after ``kill -9`` mid-write, startup
recovery takes a dirty file's size from its cache file, so what the program
wrote before the crash is what gets uploaded; once closed or fsync'ed, the
data and metadata are committed (fsync additionally flushes the cache file to
disk).
"""

from __future__ import annotations

import errno
import itertools
from typing import Callable
import os
import stat
import time
from dataclasses import dataclass

from cloudgw.cache.checksums import verify_range
from cloudgw.cache.files import BLOCK_SIZE, CacheEntry
from cloudgw.filesystem.core import CAPABILITY_XATTR, Namespace
from cloudgw.filesystem.ports import FsError
from cloudgw.metadata.model import FileState, Inode
from cloudgw.remotes.base import Kind


_SET_ID = stat.S_ISUID | stat.S_ISGID
METADATA_RESERVE = 8 << 20  # free space kept for metadata commits when data fills the disk
SPACE_CHECK_EVERY = 4 << 20


@dataclass
class Handle:
    fh: int
    inode: Inode
    entry: CacheEntry
    fd: int
    writable: bool
    wrote: bool = False
    persisted: tuple[int, int, int] | None = None  # (size, mtime, ctime) last committed through this handle
    # Writes through this handle bypass the kernel's page cache (FUSE direct I/O), and with it what the
    # kernel does before a cached write (file_remove_privs): clearing set-id bits and the file capability.
    # Then ``write`` does it (see ``_drop_privileges``); ``by_root``: the opener's uid was 0 (stands for
    # CAP_FSETID, which keeps set-id bits; pyfuse3 does not pass on the kernel's FUSE_WRITE_KILL_SUIDGID).
    direct: bool = False
    by_root: bool = False


class DataOps:
    """Open file handles and their I/O; shares the Namespace's store, cache and sync."""

    def __init__(self, ns: Namespace, make_room: Callable[[int], int] | None = None) -> None:
        self.ns = ns
        # called when the cache disk is full: evicts clean data, returns how much it evicted
        self.make_room = make_room
        self._written_since_check = 0
        self._space_low = False
        self.store = ns.store
        self.cache = ns.cache
        self.sync = ns.sync
        self.handles: dict[int, Handle] = {}
        self._next_fh = itertools.count(1)
        self.writers: dict[int, int] = {}  # ino -> open writable handles
        # Read requests (as the kernel sends them: up to its read size) served from the disk
        # cache alone (hits) or that had to wait for blocks from the remote (misses).  Reads
        # the kernel answers from its page cache never get here.  Plain ints, read by the
        # metrics collector at scrape time: nothing on the fast path but an add.
        self.read_hits = 0
        self.read_misses = 0
        # inodes whose mode or capability a direct write changed: the kernel's cached attributes
        # must be dropped (it would otherwise keep a stale set-user-ID bit for exec); the FUSE
        # adapter takes them before it answers the write
        self.privileges_dropped: set[int] = set()

    # -- entries ---------------------------------------------------------------------------

    def _entry_for(self, inode: Inode) -> CacheEntry:
        """The cache entry holding this inode's data (dirty data is never reset)."""
        if inode.state.has_unsynced_data:
            entry = self.cache.get(inode.ino)
            return entry if entry is not None else self.cache.new_local(inode.ino)
        return self.cache.entry_for(inode.ino, rev=inode.remote_rev, remote_size=inode.size)

    def _mark_dirty(self, inode: Inode) -> None:
        if inode.state is FileState.UPLOADING or not inode.state.has_unsynced_data:
            self.store.update(inode, state=FileState.DIRTY, needs_sync=True)
        inode.data_version += 1
        self.sync.content_changed(inode)

    # -- open / create -------------------------------------------------------------------------

    def _open_handle(self, inode: Inode, writable: bool, direct: bool = False, uid: int = 0) -> Handle:
        entry = self._entry_for(inode)
        fd = self.cache.open_fd(entry, writes=writable)
        handle = Handle(next(self._next_fh), inode, entry, fd, writable, direct=direct and writable, by_root=uid == 0)
        self.handles[handle.fh] = handle
        self.ns.open_count[inode.ino] += 1
        if writable:
            self.writers[inode.ino] = self.writers.get(inode.ino, 0) + 1
        return handle

    async def open(self, ino: int, flags: int, uid: int = 0, *, direct: bool = False) -> Handle:
        """``uid``: the caller's; ``direct``: see ``Handle.direct``.  open(O_TRUNC) comes here
        alone (the kernel sends no SETATTR for it: FUSE's atomic O_TRUNC), so what a truncate does
        is done here: the times move even for an empty file, and a caller other than root clears
        set-user-ID (and an executable file's set-group-ID), as Linux's ``should_remove_suid``."""
        inode = self.ns.inode(ino)
        if inode.kind is not Kind.FILE:
            raise FsError(errno.EISDIR if inode.is_dir else errno.EINVAL)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        if writable:
            self.ns._writable()
            self.ns.content_writable(inode)
        handle = self._open_handle(inode, writable, direct, uid)
        if flags & os.O_TRUNC and writable:
            if inode.size != 0:
                await self.truncate(ino, 0)
            else:
                now = time.time_ns()
                self.store.update(inode, mtime_ns=now, ctime_ns=now)
            if uid != 0 and (kept := _without_privileges(inode.mode)) != inode.mode:
                self.store.update(inode, mode=kept, ctime_ns=time.time_ns())
        return handle

    async def create(self, parent: int, name: str, mode: int, flags: int, uid: int, gid: int, *,
                     direct: bool = False) -> Handle:
        inode = await self.ns.create_file(parent, name, mode, uid, gid)
        return self._open_handle(inode, True, direct, uid)

    def handle(self, fh: int) -> Handle:
        try:
            return self.handles[fh]
        except KeyError:
            raise FsError(errno.EBADF) from None

    # -- read / write ----------------------------------------------------------------------------

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        h = self.handle(fh)
        inode, entry = h.inode, h.entry
        end = min(offset + size, inode.size)
        if offset >= end:
            return b""
        if entry.unchecked:  # first read of summed blocks in this process: damaged ones are refetched
            verify_range(entry, h.fd, offset, end - offset)
        if entry.fetch_limit > offset and entry.missing(offset, end - offset):
            self.read_misses += 1
            await self.sync.fetch(inode, entry, offset, end - offset)
            h = self.handle(fh)  # the entry may have been replaced (remote changed)
            inode, entry = h.inode, h.entry
            end = min(offset + size, inode.size)
        else:
            self.read_hits += 1
        return os.pread(h.fd, end - offset, offset)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        h = self.handle(fh)
        if not h.writable:
            raise FsError(errno.EBADF)
        inode, entry = h.inode, h.entry
        if h.direct and (inode.mode & _SET_ID or self.ns.holds_capability(inode.ino)):
            self._drop_privileges(h)
        if entry.fetch_limit > offset:
            await self._fill_partial_blocks(h, offset, len(data))
        # data_version moves before the bytes do (and again below): an upload reads the cache
        # file from a worker thread, which can run while pwrite holds no GIL, and its check()
        # before the commit must fail if it may have read any of these bytes -- else a torn
        # mix of two versions reaches the remote (seen in the two-gateway stress test)
        inode.data_version += 1
        written = self._pwrite(h.fd, data, offset)
        self._mark_written_blocks(entry, offset, written)
        if not h.wrote or not inode.state.has_unsynced_data or inode.state is FileState.UPLOADING:
            self._mark_dirty(inode)
            h.wrote = True
        else:
            inode.data_version += 1
        end = offset + written
        if end > inode.size:
            inode.size = end
        inode.mtime_ns = inode.ctime_ns = time.time_ns()
        return written

    def _drop_privileges(self, h: Handle) -> None:
        """What Linux does before every write (``file_remove_privs``), for a handle whose writes the
        kernel sends us without doing it: set-user-ID goes (and set-group-ID with group execute, as
        FUSE's setattr does) unless the writer is root, and a file capability goes whoever writes."""
        inode = h.inode
        changed = False
        if not h.by_root and (kept := _without_privileges(inode.mode)) != inode.mode:
            self.ns.setattr(inode.ino, mode=kept)
            changed = True
        if self.ns.holds_capability(inode.ino):
            try:
                self.ns.removexattr(inode.ino, CAPABILITY_XATTR)
                changed = True
            except FsError as exc:
                if exc.errno != errno.ENODATA:
                    raise
        if changed:
            self.privileges_dropped.add(inode.ino)

    def _free_bytes(self) -> int:
        st = os.statvfs(self.cache.root)
        return st.f_bavail * st.f_frsize

    def _ensure_space(self, length: int) -> None:
        """Keep ``METADATA_RESERVE`` free for SQLite: data writes stop short of it.

        Free space is looked at every ``SPACE_CHECK_EVERY`` bytes written (or every
        write once it runs low), so the fast path rarely pays for a statvfs.
        """
        self._written_since_check += length
        if self._written_since_check < SPACE_CHECK_EVERY and not self._space_low:
            return
        self._written_since_check = 0
        free = self._free_bytes()
        self._space_low = free < 8 * SPACE_CHECK_EVERY
        if free - length >= METADATA_RESERVE:
            return
        if self.make_room is not None and self.make_room(length + METADATA_RESERVE + SPACE_CHECK_EVERY):
            if self._free_bytes() - length >= METADATA_RESERVE:
                return
        raise FsError(errno.ENOSPC, "cache disk full of data not yet uploaded")

    def _pwrite(self, fd: int, data: bytes, offset: int) -> int:
        """pwrite; on a full cache disk, evict clean data once and retry, then ENOSPC.

        Dirty data is never evicted, so when it alone fills the disk writers get
        ENOSPC (the file keeps what was written before) until uploads free space.
        """
        self._ensure_space(len(data))
        try:
            return os.pwrite(fd, data, offset)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or self.make_room is None:
                raise
            if not self.make_room(len(data) + (8 << 20)):
                raise
            return os.pwrite(fd, data, offset)

    async def _fill_partial_blocks(self, h: Handle, offset: int, length: int) -> None:
        """Fetch the edge blocks a write covers only partly, so no remote byte is lost."""
        entry = h.entry
        end = offset + length
        for b in {offset // BLOCK_SIZE, (end - 1) // BLOCK_SIZE}:
            start = b * BLOCK_SIZE
            covered = offset <= start and end >= min(start + BLOCK_SIZE, entry.fetch_limit)
            if not covered and entry.missing(start, 1):
                await self.sync.fetch(h.inode, entry, start, 1)

    @staticmethod
    def _mark_written_blocks(entry: CacheEntry, offset: int, length: int) -> None:
        if offset >= entry.fetch_limit or length <= 0:
            return
        entry.writes += 1
        for b in range(offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE + 1):
            if b < len(entry.blocks):
                entry.mark_written(b)  # fully written, or its edges fetched before

    async def truncate(self, ino: int, size: int) -> Inode:
        self.ns._writable()
        inode = self.ns.inode(ino)
        if inode.kind is not Kind.FILE:
            raise FsError(errno.EISDIR if inode.is_dir else errno.EINVAL)
        self.ns.content_writable(inode)
        entry = self._entry_for(inode)
        fd = self.cache.open_fd(entry)
        try:
            if 0 < size < entry.fetch_limit and size % BLOCK_SIZE and entry.missing(size - 1, 1):
                await self.sync.fetch(inode, entry, size - 1, 1)
            entry.limit_fetch(size)
            inode.data_version += 1  # before the bytes change (see ``write``)
            os.ftruncate(fd, size)
        finally:
            self.cache.release(entry)
        now = time.time_ns()
        self._mark_dirty(inode)
        self.store.update(inode, size=size, mtime_ns=now, ctime_ns=now)
        if not self.writers.get(ino):
            self.sync.closed(inode)
        return inode

    # -- flush / fsync / release -----------------------------------------------------------------

    def _persist(self, h: Handle) -> None:
        """Writes are being acknowledged: commit size/mtime, and the block map (a block
        it showed absent after a crash would be fetched again over what was written)."""
        inode = h.inode
        now = (inode.size, inode.mtime_ns, inode.ctime_ns)
        if now != h.persisted:  # (close = flush + release: the second one usually has nothing new)
            self.store.update(inode, size=inode.size, mtime_ns=inode.mtime_ns, ctime_ns=inode.ctime_ns)
            h.persisted = now
        self.cache.persist_map(h.entry)

    def flush(self, fh: int) -> None:
        h = self.handle(fh)
        if h.wrote:
            self._persist(h)

    def fsync(self, fh: int, datasync: bool) -> None:
        """The data, then what says where it is and what it is (size, state, block map): both
        on the disk when the program's fsync returns, a power loss included (a plain
        close survives ``kill -9`` of the daemon, not a power loss: ``cloudgw.wal_sync``)."""
        h = self.handle(fh)
        (os.fdatasync if datasync else os.fsync)(h.fd)
        if h.wrote:
            self._persist(h)
        self.store.sync_to_disk()
        self.cache.sync_to_disk()

    def release(self, fh: int) -> None:
        h = self.handles.pop(fh, None)
        if h is None:
            return
        inode = h.inode
        if h.wrote:
            self._persist(h)
        self.cache.release(h.entry)
        self.ns.open_count[inode.ino] -= 1
        if self.ns.open_count[inode.ino] <= 0:
            del self.ns.open_count[inode.ino]
            self.sync.released(inode)
        if h.writable:
            left = self.writers.get(inode.ino, 1) - 1
            if left:
                self.writers[inode.ino] = left
            else:
                self.writers.pop(inode.ino, None)
                if inode.state.has_unsynced_data and inode.parent is not None:
                    self.sync.closed(inode)
        self.ns.reap_if_unused(inode.ino)


def _without_privileges(mode: int) -> int:
    """``mode`` after a change by someone other than root: set-user-ID goes, and set-group-ID
    where the group may execute (without it, the bit means mandatory locking)."""
    if mode & stat.S_ISGID and mode & stat.S_IXGRP:
        mode &= ~stat.S_ISGID
    return mode & ~stat.S_ISUID
