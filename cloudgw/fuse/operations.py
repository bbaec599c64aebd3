"""The thin pyfuse3 adapter: unpack a request, call the FileSystem, map errors.

Nothing here decides semantics; ``cloudgw.filesystem`` does.  The one error map
is ``_errno_for``.  Kernel cache invalidations requested by the sync engine are
sent from ``run_invalidations`` (its own task, through a worker thread, because
pyfuse3's notifications may block and must not run inside a request handler).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import sqlite3
import stat
from typing import Any, Awaitable, Callable, TypeVar

import pyfuse3
import trio

from cloudgw.errors import RemoteError
from cloudgw.filesystem import FileSystem, FsError
from cloudgw.filesystem.ports import Event, Invalidate, InvalidateEntry
from cloudgw.metadata.model import ROOT_INO, Inode
from cloudgw.remotes import specials
from cloudgw.remotes.base import Kind

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_BLKSIZE = 128 * 1024  # st_blksize: the I/O size we suggest to applications


def _errno_for(exc: BaseException) -> int:
    if isinstance(exc, FsError):
        return exc.errno
    if isinstance(exc, RemoteError):
        log.warning("remote error: %s", exc)
        return exc.errno
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        log.warning("cache disk full (metadata): %s", exc)
        return errno.ENOSPC
    if isinstance(exc, OSError) and exc.errno:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.warning("cache disk full: %s", exc)
        return exc.errno
    log.exception("internal error", exc_info=exc)
    return errno.EIO


def _mapped(fn: F) -> F:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except (FsError, RemoteError, OSError, sqlite3.OperationalError) as exc:
            raise pyfuse3.FUSEError(_errno_for(exc)) from None
        except Exception as exc:
            raise pyfuse3.FUSEError(_errno_for(exc)) from None

    return wrapper  # type: ignore[return-value]


def _name(raw: bytes) -> str:
    return os.fsdecode(raw)


def _direct(flags: int) -> bool:
    """Whether an open gets FOPEN_DIRECT_IO: write-only ones.  Their write(2)s skip the page
    cache and, with it, ``file_remove_privs``: the GETXATTR ``security.capability`` FUSE sends
    before every cached write (it clears SB_NOSEC, so no inode is ever marked S_NOSEC) -- half
    the requests of a stream of small writes.  What the kernel no longer does, the daemon does
    (``DataOps._drop_privileges``).  Kernel 6.x drops the written range from the page cache
    before sending the write (``fuse_direct_io``), so other handles' reads and mmaps see the
    new bytes.  Not for O_RDWR: reads would bypass the page cache, and a shared mmap of such a
    handle fails (ENODEV without FUSE_DIRECT_IO_ALLOW_MMAP); an O_WRONLY handle cannot be
    mmapped at all."""
    return (flags & os.O_ACCMODE) == os.O_WRONLY


class FuseOperations(pyfuse3.Operations):
    # The kernel writeback cache would batch small writes, but with it the kernel
    # trusts its own i_size for regular files and ignores the size we report, so
    # a file changed on the remote would keep its old size in the mount until
    # the kernel drops the inode, and written data waits in the kernel, where it dies
    # with the daemon's connection.  Correctness first: off.  What it would buy,
    # measured (64 MiB in 4 KiB write(2)s, file://, kernel 6.18): about what direct
    # I/O on write-only opens (``_direct``) gives, since the kernel still asks
    # GETXATTR security.capability before each write(2) -- only FUSE_HANDLE_KILLPRIV_V2
    # (SB_NOSEC) stops that, and neither libfuse 3.14 nor pyfuse3 can ask for it.
    enable_writeback_cache = False
    # NFS re-export: pyfuse3 asks the kernel for FUSE_EXPORT_SUPPORT at INIT when this is
    # set (its default; explicit here because handles depend on it).  Without it the kernel
    # answers ESTALE to every file handle whose inode it no longer caches (after a remount),
    # instead of sending LOOKUP "." for it (see ``Namespace._dot_lookup``).
    supports_dot_lookup = True
    # POSIX ACLs (mount --acl, set per instance below): the kernel then checks access against
    # system.posix_acl_access and validates what setfacl sends; the mode/ACL bookkeeping ext4
    # does itself is in ``cloudgw.filesystem.acl``.  Off by default: FUSE does not cache ACLs,
    # so every permission check of another user's entry is a GETXATTR round trip (measured on
    # kernel 6.18: stat by a non-owner 2.2 -> 36 us: python -m benchmarks.acl_cost).
    enable_acl = False

    def __init__(self, fs: FileSystem, *, attr_timeout: float = 60.0) -> None:
        super().__init__()
        self.fs = fs
        self.ns = fs.ns
        self.data = fs.data
        self.timeout = attr_timeout
        # in every entry and so in every file handle: a handle from another database
        # (a cache dir made anew, numbering from 2 again) is stale, never another file
        self.generation = fs.ns.store.generation
        self.enable_acl = fs.ns.acls  # read by pyfuse3.init (FUSE_POSIX_ACL at INIT)

    def _attr(self, inode: Inode) -> pyfuse3.EntryAttributes:
        """The kernel's view of ``inode``; runs for every LOOKUP, GETATTR and readdir entry.

        ``EntryAttributes()`` starts zeroed (generation, st_rdev) with
        st_nlink 1, so only what differs is set: each setter is a Python-level
        call on this hot path.
        """
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode.ino
        a.generation = self.generation
        a.entry_timeout = a.attr_timeout = self.timeout
        a.st_mode = inode.st_mode
        if inode.kind is Kind.DIR:
            a.st_nlink = 2
        elif inode.nlink != 1:
            a.st_nlink = inode.nlink  # hard links; 0: unlinked, only still open
        a.st_uid = inode.uid
        a.st_gid = inode.gid
        a.st_size = size = inode.size
        a.st_blksize = _BLKSIZE
        a.st_blocks = (size + 511) // 512
        a.st_atime_ns = inode.atime_ns
        a.st_mtime_ns = inode.mtime_ns
        a.st_ctime_ns = inode.ctime_ns
        if inode.rdev:
            a.st_rdev = inode.rdev
        return a

    # -- names and attributes ---------------------------------------------------------------

    @_mapped
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        try:
            inode = await self.ns.lookup(parent_inode, _name(name))
        except FsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return self._absent()
        a = self._attr(inode)
        if inode.ino == ROOT_INO:  # only from LOOKUP "." or "..": the kernel wants 0 for the root
            a.generation = 0
        return a

    def _absent(self) -> pyfuse3.EntryAttributes:
        """A negative entry the kernel keeps for the entry timeout: a name that does not exist is
        asked for again and again (Samba's case-insensitive probes, build tools, Python's imports,
        rsync's stat before each create), and each ask was a round trip here.

        Safe because every way a name comes to exist without the kernel doing it pushes an
        invalidation of that name: an entry adopted from the remote (``SyncContext.adopt``), a
        move or hard link seen on the remote (``sync.remote_changes``).  A directory's first
        listing sends none, and needs none: a LOOKUP in a directory never listed lists it before
        answering.  Names made through the kernel (create, mkdir, link, rename...) replace the
        negative dentry in the kernel itself.  The race of an invalidation with this reply in
        flight: the reply is written before any other task runs (no await after the answer is
        known), and the kernel's invalidation takes the directory's lock, which the LOOKUP holds
        until the negative dentry is in place -- so the invalidation always finds it."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = 0
        a.entry_timeout = self.timeout
        return a

    async def forget(self, inode_list: list[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            self.ns.forget(ino, count)

    @_mapped
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attr(self.ns.getattr(inode))

    @_mapped
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if fields.update_size:
            await self.data.truncate(inode, attr.st_size)
        node = self.ns.setattr(
            inode,
            mode=attr.st_mode if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
        ) if (fields.update_mode or fields.update_uid or fields.update_gid or fields.update_atime
              or fields.update_mtime) else self.ns.getattr(inode)
        return self._attr(node)

    @_mapped
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return os.fsencode(self.ns.readlink(inode))

    @_mapped
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        await self.ns.opendir(inode)
        return inode

    @_mapped
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        after = start_id
        while True:
            children = await self.ns.readdir(fh, after)
            for offset, name, child in children:
                if not pyfuse3.readdir_reply(token, os.fsencode(name), self._attr(child), offset):
                    return
                self.ns.remember(child.ino)
                after = offset
            if len(children) < 1000:
                return

    async def releasedir(self, fh: int) -> None:
        return None

    @_mapped
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attr(await self.ns.mkdir(parent_inode, _name(name), mode, ctx.uid, ctx.gid))

    @_mapped
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.ns.rmdir(parent_inode, _name(name))

    @_mapped
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.ns.unlink(parent_inode, _name(name))

    @_mapped
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: pyfuse3.RequestContext) -> None:
        await self.ns.rename(parent_inode_old, _name(name_old), parent_inode_new, _name(name_new), flags)

    @_mapped
    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attr(await self.ns.symlink(parent_inode, _name(name), os.fsdecode(target), ctx.uid, ctx.gid))

    @_mapped
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attr(await self.ns.link(inode, new_parent_inode, _name(new_name)))

    @_mapped
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        kind = specials.kind_of_mode(mode)
        if kind is not None:  # FIFO, socket (bind), character or block device
            return self._attr(await self.ns.mknod(parent_inode, _name(name), kind, mode & 0o7777, rdev,
                                                  ctx.uid, ctx.gid))
        if not stat.S_ISREG(mode):
            raise FsError(errno.EINVAL)
        handle = await self.data.create(parent_inode, _name(name), mode, os.O_WRONLY, ctx.uid, ctx.gid)
        self.data.release(handle.fh)
        return self._attr(handle.inode)

    # -- data ----------------------------------------------------------------------------------

    @_mapped
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        direct = _direct(flags)
        handle = await self.data.open(inode, flags, ctx.uid, direct=direct)
        return pyfuse3.FileInfo(fh=handle.fh, keep_cache=True, direct_io=direct)

    @_mapped
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        direct = _direct(flags)
        handle = await self.data.create(parent_inode, _name(name), mode, flags, ctx.uid, ctx.gid, direct=direct)
        return pyfuse3.FileInfo(fh=handle.fh, keep_cache=True, direct_io=direct), self._attr(handle.inode)

    @_mapped
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.data.read(fh, off, size)

    @_mapped
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        written = await self.data.write(fh, off, buf)
        if self.data.privileges_dropped:  # rare: a direct write cleared set-id bits or a capability
            await self._forget_attributes(self.data.privileges_dropped)
        return written

    @staticmethod
    async def _forget_attributes(inos: set[int]) -> None:
        """Drop the kernel's cached attributes of ``inos`` before the write is answered: it checks
        exec and permissions against its cached mode, which still has the bits we cleared (the
        write itself only makes it refetch size and times).  Attributes only: no page lock is
        taken, so this cannot wait on a request of ours."""
        while inos:
            ino = inos.pop()
            try:
                await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino, True)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EBADF):
                    log.info("kernel invalidation of inode %d failed: %s", ino, exc)

    @_mapped
    async def flush(self, fh: int) -> None:
        self.data.flush(fh)

    @_mapped
    async def fsync(self, fh: int, datasync: bool) -> None:
        self.data.fsync(fh, datasync)

    async def release(self, fh: int) -> None:
        try:
            self.data.release(fh)
        except Exception:
            log.exception("release of handle %d", fh)

    @_mapped
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        self.ns.fsyncdir()

    @_mapped
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        st = self.ns.statfs()
        out = pyfuse3.StatvfsData()
        out.f_bsize = st.f_bsize
        out.f_frsize = st.f_frsize
        out.f_blocks = st.f_blocks
        out.f_bfree = st.f_bfree
        out.f_bavail = st.f_bavail
        out.f_files = max(st.f_files, 1 << 20)
        out.f_ffree = max(st.f_ffree, 1 << 20)
        out.f_favail = out.f_ffree
        out.f_namemax = 255
        return out

    # -- extended attributes ------------------------------------------------------------------

    @_mapped
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        try:
            return self.ns.getxattr(inode, os.fsdecode(name))
        except FsError as exc:
            if exc.errno == errno.ENODATA:
                raise pyfuse3.FUSEError(pyfuse3.ENOATTR) from None
            raise

    @_mapped
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.ns.setxattr(inode, os.fsdecode(name), value)

    @_mapped
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [os.fsencode(n) for n in self.ns.listxattr(inode)]

    @_mapped
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        try:
            self.ns.removexattr(inode, os.fsdecode(name))
        except FsError as exc:
            if exc.errno == errno.ENODATA:
                raise pyfuse3.FUSEError(pyfuse3.ENOATTR) from None
            raise

    # -- kernel notifications -----------------------------------------------------------------

    async def run_invalidations(self, events: trio.MemoryReceiveChannel, *,
                                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for event in events:
            notice: Event | None = self.fs.handle_event(event)
            if notice is None:
                continue
            try:
                if isinstance(notice, Invalidate):
                    await trio.to_thread.run_sync(pyfuse3.invalidate_inode, notice.ino, False)
                elif isinstance(notice, InvalidateEntry):
                    await trio.to_thread.run_sync(pyfuse3.invalidate_entry, notice.parent, os.fsencode(notice.name))
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EBADF):
                    log.info("kernel invalidation %s failed: %s", notice, exc)
