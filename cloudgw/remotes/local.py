"""The ``file://`` remote: a plain directory (the embedded default, NAS-to-NAS).

Revisions are ``f"{st_ino}-{st_size}-{st_mtime_ns}-{st_ctime_ns}"``: every
write goes to a new inode (temp file + rename) and any in-place change by
another program moves size/mtime/ctime, so the rev changes with the content.

Hard links (``link``; ``Capabilities.hard_links``): a file with several names
(``st_nlink > 1``) has the revision ``f"{st_ino}-{st_size}-{st_mtime_ns}-l"``,
without the ctime, which moves with every link or unlink of any name, ours
included (without this, each ``ln``/``rm`` would read as someone else's
content change).  All names of one inode then have the same revision, and
it stays while the count stays above one.  Wherever a revision is checked
(``expect`` of write, delete, rename, set_attrs, link; read pins; a copy's
source) two revisions match when they are equal, or when either is an
``-l`` one and ino, size and mtime agree (``same_version``): the count went
from one to several or back between the two.  Revisions of one-name files
are as they always were, so existing caches see no change (a file that
already had several names shows its new form once).  The price: an in-place
change to a file with several names (or one that had several when its
revision was taken) that keeps both its size and its mtime goes unseen -- as
does a chmod or chown of it (attributes, not content), and a file put in its
place that reuses its inode number with the same size and mtime.

Writes (crash behaviour): the data goes to ``.cloudgw-tmp-*`` in the target's
directory in 1 MiB chunks (worker-thread hops per chunk, so cancellation is
prompt and memory bounded), is fsync'ed, ``source.check()`` runs, attributes
are applied, then ``rename`` over the target and the directory is fsync'ed.
Errors of the source itself (reading the local file) propagate unmapped.
A crash leaves either the old file or the new one, plus at worst a temp file
that ``list``/``stat`` hide and ``abort_incomplete_uploads`` removes once it is
older than ``stale_tmp_age``.  On any failure or cancellation the temp file is
removed (shielded).

Conditional writes (concurrency): ``expect`` is checked, then checked again
right before the rename, under a per-path ``trio.Lock``.  That serialises
writers in this process; a program writing the directory directly can still
change the file between the second check and the rename (a window of a few
system calls), which is why ``Capabilities.conditional_write`` is False.

Attributes alone (``set_attrs``): chown, then chmod, then utime of the file or directory
in place, each only where it differs; the new ctime makes a new revision (of a file with one
name: one with several keeps its revision, see hard links above).

Special files are real: a FIFO, socket or device node here is listed as a symlink to its
marker, and ``symlink`` of a marker makes one (``cloudgw.remotes.specials``).  Device nodes
need root (CAP_MKNOD), as anywhere.

Every blocking os call runs in ``trio.to_thread.run_sync`` with this remote's
``CapacityLimiter``.

Option ``name_rules`` ('windows', 'onedrive'): the directory is an SMB/Windows share
(or a test stand-in for OneDrive), so names are mapped as ``cloudgw.remotes.names``
says, by a ``MappedNamesRemote`` that ``registry.open_remote`` puts around this one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as st_
import time
import urllib.parse
from pathlib import Path
from typing import Collection, AsyncIterator, Callable, TypeVar

import trio

from cloudgw.errors import (PreconditionFailed, RemoteError, RemoteExists, RemoteNotFound, RemoteUnsupported,
                            SourceChanged, UserError)
from cloudgw.remotes.base import Capabilities, Expect, FileAttrs, Kind, RemoteEntry, UploadSource
from cloudgw.remotes.local_ops import (
    TMP_PREFIX,
    FileSource,
    Temp,
    apply_attrs,
    at_version,
    change_attrs,
    check_expect,
    entry_of,
    fsync_dir,
    local_rev,
    lstat_or_none,
    map_oserror,
    read_umask,
    same_version,
)
from cloudgw.remotes import names, specials
from cloudgw.remotes.registry import Common, Option, RemoteType, RemoteURL
from cloudgw.remotes.util import remote_error, split_path

CHUNK = 1 << 20
_LIST_BATCH = 256
T = TypeVar("T")


class LocalRemote:
    """A directory as a remote.  See the module docstring for crash and
    concurrency behaviour."""

    def __init__(self, root: Path | str, *, max_threads: int = 8, stale_tmp_age: float = 3600.0) -> None:
        self.root = Path(root)
        self.stale_tmp_age = stale_tmp_age
        self._created = time.time()  # temp files older than this are not from this process
        self.capabilities = Capabilities(
            hash_kind=None,
            conditional_write=False,
            server_side_copy=True,
            native_symlinks=True,
            keeps_mode=True,
            keeps_mtime=True,
            dir_rename=True,
            hard_links=True,
        )
        self._limiter = trio.CapacityLimiter(max_threads)
        self._locks: dict[str, list] = {}  # path -> [trio.Lock, users]
        self._in_progress: set[str] = set()  # temp files of our running writes
        self._umask = read_umask()

    def __repr__(self) -> str:
        return f"LocalRemote({str(self.root)!r})"

    # -- helpers -----------------------------------------------------------

    def _abs(self, path: str) -> str:
        return os.path.join(self.root, *split_path(path))

    def _leaf(self, path: str, what: str) -> str:
        """Absolute path of a non-root entry whose name we may create."""
        parts = split_path(path)
        if not parts:
            raise RemoteUnsupported(f"{what}: not possible on the root")
        if parts[-1].startswith(TMP_PREFIX):
            raise RemoteUnsupported(f"{what} {path!r}: names starting with {TMP_PREFIX} are reserved")
        return os.path.join(self.root, *parts)

    async def _run(self, what: str, fn: Callable[..., T], *args) -> T:
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except OSError as exc:
            raise map_oserror(exc, what) from exc

    @contextlib.asynccontextmanager
    async def _locked(self, *paths: str):
        async with contextlib.AsyncExitStack() as stack:
            for path in sorted(set(paths)):  # one global order: no deadlock
                slot = self._locks.setdefault(path, [trio.Lock(), 0])
                slot[1] += 1
                stack.callback(self._unref, path, slot)
                await stack.enter_async_context(slot[0])
            yield

    def _unref(self, path: str, slot: list) -> None:
        slot[1] -= 1
        if slot[1] == 0:
            del self._locks[path]

    # -- the contract --------------------------------------------------------

    async def check(self) -> None:
        def probe() -> str | None:
            try:
                st = os.stat(self.root)
            except FileNotFoundError:
                return "does not exist; create the directory or fix the URL"
            except OSError as exc:
                return f"cannot be accessed ({exc.strerror}); fix the path or its permissions"
            if not st_.S_ISDIR(st.st_mode):
                return "is not a directory; point the URL at a directory"
            if not os.access(self.root, os.W_OK | os.X_OK):
                return f"is not writable by uid {os.geteuid()}; fix its permissions or mount options"
            return None

        problem = await trio.to_thread.run_sync(probe, limiter=self._limiter)
        if problem:
            raise UserError(f"file://{self.root} {problem}")

    async def stat(self, path: str) -> RemoteEntry:
        p = self._abs(path)

        def do() -> RemoteEntry:
            st = os.lstat(p)
            target = os.readlink(p) if st_.S_ISLNK(st.st_mode) else None
            entry = entry_of(path, st, target)
            if entry is None or (path and entry.name.startswith(TMP_PREFIX)):
                raise FileNotFoundError(errno.ENOENT, "No such file or directory")
            return entry

        return await self._run(f"stat {path!r}", do)

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        pending, first = [path], True
        while pending:
            d = pending.pop()
            try:
                it = await self._run(f"list {d!r}", self._opendir, self._abs(d))
            except RemoteNotFound:
                if first:
                    raise
                continue  # a subdirectory removed while we walked
            first = False
            try:
                while batch := await self._run(f"list {d!r}", self._next_batch, it, d):
                    for entry in batch:
                        if recursive and entry.kind is Kind.DIR:
                            pending.append(entry.path)
                        yield entry
            finally:
                it.close()

    @staticmethod
    def _opendir(p: str):
        if not st_.S_ISDIR(os.lstat(p).st_mode):  # never follow a symlink here
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory")
        return os.scandir(p)

    @staticmethod
    def _next_batch(it, d: str) -> list[RemoteEntry]:
        out: list[RemoteEntry] = []
        for de in it:
            if de.name.startswith(TMP_PREFIX):
                continue
            try:
                st = de.stat(follow_symlinks=False)
                target = os.readlink(de.path) if st_.S_ISLNK(st.st_mode) else None
            except FileNotFoundError:
                continue  # deleted since readdir
            entry = entry_of(f"{d}/{de.name}" if d else de.name, st, target)
            if entry is not None:
                out.append(entry)
            if len(out) >= _LIST_BATCH:
                break
        return out

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        p = self._abs(path)

        def do() -> bytes:
            if (kind := st_.S_IFMT(os.lstat(p).st_mode)) not in (st_.S_IFREG, st_.S_IFDIR, st_.S_IFLNK):
                # a FIFO or device put there meanwhile: never opened (a FIFO would block, a tape rewind)
                raise remote_error(RemoteError, errno.EINVAL, f"read {path!r}: not a regular file ({kind:o})")
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)  # (swapped meanwhile: no wait)
            try:
                st = os.fstat(fd)
                if st_.S_ISDIR(st.st_mode):
                    raise IsADirectoryError(errno.EISDIR, "Is a directory")
                if not st_.S_ISREG(st.st_mode):
                    raise remote_error(RemoteError, errno.EINVAL, f"read {path!r}: not a regular file")
                if rev is not None and not at_version(st, rev):
                    raise PreconditionFailed(f"read {path!r}: expected revision {rev}, found {local_rev(st)}")
                # Never ask pread for more than exists: it allocates what it is asked for.
                chunks, pos, left = [], offset, min(length, max(0, st.st_size - offset))
                while left > 0:
                    data = os.pread(fd, min(left, 1 << 30), pos)
                    if not data:
                        break
                    chunks.append(data)
                    pos += len(data)
                    left -= len(data)
                return b"".join(chunks)
            finally:
                os.close(fd)

        return await self._run(f"read {path!r}", do)

    async def write(
        self,
        path: str,
        source: UploadSource,
        *,
        expect: Expect | str = Expect.ANY,
        attrs: FileAttrs = FileAttrs(),
    ) -> RemoteEntry:
        target = self._leaf(path, "write")
        what = f"write {path!r}"
        async with self._locked(path):
            old = await self._run(what, self._precheck, target, expect, what)
            if attrs.mode is None:
                keep = st_.S_IMODE(old.st_mode) if old is not None else 0o666 & ~self._umask
                attrs = FileAttrs(keep, attrs.uid, attrs.gid, attrs.mtime_ns)
            tmp = await self._run(what, Temp, target)
            self._in_progress.add(tmp.path)
            try:
                # Source calls run unmapped: a failing local file is not a remote error.
                for offset in range(0, source.size, CHUNK):
                    n = min(CHUNK, source.size - offset)
                    data = await trio.to_thread.run_sync(source.read, offset, n, limiter=self._limiter)
                    if len(data) != n:
                        raise SourceChanged(f"{what}: source returned {len(data)} bytes at {offset}, expected {n}")
                    await self._run(what, self._write_chunk, tmp, data)
                await self._run(what, os.fsync, tmp.fd)
                await trio.to_thread.run_sync(source.check, limiter=self._limiter)
                return await self._run(what, self._commit, tmp, target, path, expect, attrs, what)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(tmp.discard)
                raise
            finally:
                self._in_progress.discard(tmp.path)

    @staticmethod
    def _precheck(target: str, expect: Expect | str, what: str) -> os.stat_result | None:
        st = lstat_or_none(target)
        if st is not None and st_.S_ISDIR(st.st_mode):
            raise remote_error(RemoteError, errno.EISDIR, f"{what}: is a directory")
        check_expect(st, expect, what)
        return st

    @staticmethod
    def _write_chunk(tmp: Temp, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(tmp.fd, view) :]

    def _commit(self, tmp: Temp, target: str, path: str, expect, attrs: FileAttrs, what: str) -> RemoteEntry:
        apply_attrs(tmp.fd, attrs)
        self._precheck(target, expect, what)  # again: narrows the outside-writer window
        os.rename(tmp.path, target)
        try:
            st = os.fstat(tmp.fd)  # our inode, whatever happens to the name next
        finally:
            tmp.close()
        fsync_dir(os.path.dirname(target))
        entry = entry_of(path, st)
        assert entry is not None
        return entry

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        p = self._abs(path) if not path else self._leaf(path, "mkdir")

        def do() -> RemoteEntry:
            with contextlib.suppress(FileExistsError):
                os.makedirs(p, exist_ok=True)
            st = os.lstat(p)
            if not st_.S_ISDIR(st.st_mode):
                raise FileExistsError(errno.EEXIST, "File exists (not a directory)")
            if attrs != FileAttrs():
                fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    apply_attrs(fd, attrs)
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
            entry = entry_of(path, st)
            assert entry is not None
            return entry

        return await self._run(f"mkdir {path!r}", do)

    async def set_attrs(self, path: str, attrs: FileAttrs, *, expect: str | None = None) -> RemoteEntry:
        """chown, chmod, utime of a file or directory in place (``local_ops.change_attrs``).  The
        revision holds the ctime, so a change gives a new one: the answer says it.

        Concurrency: under the path's lock, so never interleaved with our own write of it; a
        program writing the file in place between the revision check and the change (a few
        system calls) gets its content re-labelled -- the same window as ``write``'s."""
        p = self._leaf(path, "set_attrs")
        what = f"set_attrs {path!r}"

        def do() -> RemoteEntry:
            entry = entry_of(path, change_attrs(p, attrs, expect, what))
            assert entry is not None
            return entry

        async with self._locked(path):
            return await self._run(what, do)

    async def rmdir(self, path: str) -> None:
        p = self._leaf(path, "rmdir")
        ours = frozenset(self._in_progress)

        def do() -> None:
            try:
                os.rmdir(p)
            except FileNotFoundError:
                return
            except NotADirectoryError:
                raise remote_error(RemoteError, errno.ENOTDIR, f"rmdir {path!r}: not a directory") from None
            except OSError as exc:
                if exc.errno != errno.ENOTEMPTY:
                    raise
                # Only hidden leftovers of crashed writes (not our running ones)? Then it is empty.
                names = os.listdir(p)
                if not names or not all(
                    n.startswith(TMP_PREFIX) and os.path.join(p, n) not in ours for n in names
                ):
                    raise
                for n in names:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(p, n))
                os.rmdir(p)

        await self._run(f"rmdir {path!r}", do)

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        p = self._leaf(path, "delete")
        what = f"delete {path!r}"

        def do() -> None:
            st = lstat_or_none(p)
            if st is None:
                return
            if st_.S_ISDIR(st.st_mode):
                raise remote_error(RemoteError, errno.EISDIR, f"{what}: is a directory")
            if expect is not None:
                check_expect(st, expect, what)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)

        async with self._locked(path):
            await self._run(what, do)

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        """Native rename (directories too, which S3 cannot do)."""
        s, d = self._leaf(src, "rename"), self._leaf(dst, "rename")
        what = f"rename {src!r} -> {dst!r}"

        def do() -> RemoteEntry:
            st = os.lstat(s)
            if expect is not None:
                check_expect(st, expect, what)
            dst_st = lstat_or_none(d)
            if dst_st is not None and st_.S_ISDIR(dst_st.st_mode) and not st_.S_ISDIR(st.st_mode):
                raise remote_error(RemoteError, errno.EISDIR, f"{what}: destination is a directory")
            os.makedirs(os.path.dirname(d), exist_ok=True)
            os.rename(s, d)
            fsync_dir(os.path.dirname(d))
            if os.path.dirname(s) != os.path.dirname(d):
                fsync_dir(os.path.dirname(s))
            st = os.lstat(d)
            entry = entry_of(dst, st, os.readlink(d) if st_.S_ISLNK(st.st_mode) else None)
            assert entry is not None
            return entry

        async with self._locked(src, dst):
            return await self._run(what, do)

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        """Copy content and attributes (like ``cp -p``) through ``write`` (temp + rename, ``expect``
        checked under the path lock, again right before the rename); a symlink is copied as a
        symlink.  ``rev`` pins the source: checked on the opened file, and again before the
        rename (``FileSource.check``: a change while copying is a conflict)."""
        s = self._leaf(src, "copy")
        self._leaf(dst, "copy")
        what = f"copy {src!r}"
        st = await self._run(what, os.lstat, s)
        if st_.S_ISLNK(st.st_mode) or (special := specials.of_stat(st)) is not None:
            if rev is not None:
                check_expect(st, rev, what)
            target = await self._run(what, os.readlink, s) if st_.S_ISLNK(st.st_mode) else special.marker()
            return await self._symlink_over(dst, target, expect)
        if not st_.S_ISREG(st.st_mode):
            raise RemoteUnsupported(f"{what}: only files and symlinks can be copied")
        fd = await self._run(what, os.open, s, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = await self._run(what, os.fstat, fd)
            if rev is not None:
                check_expect(st, rev, what)
            attrs = FileAttrs(st_.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns)
            return await self.write(dst, FileSource(fd, st, what), expect=expect, attrs=attrs)
        finally:
            os.close(fd)

    def same_version(self, a: str, b: str, *, path: str | None = None) -> bool:
        """Whether revisions ``a`` and ``b`` name one version (the module docstring: hard links)."""
        return same_version(a, b)

    async def link(self, src: str, dst: str, *, rev: str | None, expect: Expect | str) -> RemoteEntry:
        """``dst`` as another name of ``src``'s inode (``os.link``; a symlink or special file
        itself, never what it points to), as ``base.Remote`` describes.

        Under both paths' locks, in one worker-thread call: ``src`` is checked against ``rev``
        and ``dst`` against ``expect``; a new name is linked directly, an existing one is replaced
        by linking a temp name and renaming it over (checked again first), then the directory is
        fsync'ed.  A program changing either path directly can still do so between the last
        check and the link or rename (a few system calls), as with ``write``.  A crash leaves at
        worst a temp name, another name of ``src`` that ``abort_incomplete_uploads`` removes."""
        s, d = self._leaf(src, "link"), self._leaf(dst, "link")
        what = f"link {src!r} -> {dst!r}"
        tmp = os.path.join(os.path.dirname(d), f"{TMP_PREFIX}{secrets.token_hex(8)}")
        async with self._locked(src, dst):
            self._in_progress.add(tmp)
            try:
                return await self._run(what, self._link, s, d, tmp, dst, rev, expect, what)
            finally:
                self._in_progress.discard(tmp)

    @staticmethod
    def _link(s: str, d: str, tmp: str, dst: str, rev: str | None, expect: Expect | str, what: str) -> RemoteEntry:
        def checked() -> tuple[os.stat_result, os.stat_result | None]:
            """(src, dst) as they are now, if the link may go ahead; raises if not."""
            st = lstat_or_none(s)
            if rev is not None:
                check_expect(st, rev, f"{what} (source)")
            if st is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory (the source)")
            if st_.S_ISDIR(st.st_mode):
                raise remote_error(RemoteError, errno.EISDIR, f"{what}: the source is a directory")
            return st, lstat_or_none(d)

        def answer() -> RemoteEntry:
            now = os.lstat(d)
            entry = entry_of(dst, now, os.readlink(d) if st_.S_ISLNK(now.st_mode) else None)
            assert entry is not None
            return entry

        st, old = checked()
        if old is not None and (old.st_dev, old.st_ino) == (st.st_dev, st.st_ino):
            return answer()  # already a name of it: a redo after a lost reply
        if old is not None and st_.S_ISDIR(old.st_mode):
            raise remote_error(RemoteError, errno.EISDIR, f"{what}: the destination is a directory")
        check_expect(old, expect, f"{what} (destination)")
        parent = os.path.dirname(d)
        if old is None:
            os.makedirs(parent, exist_ok=True)
            os.link(s, d, follow_symlinks=False)
        else:
            os.link(s, tmp, follow_symlinks=False)
            try:
                st, old = checked()  # again: narrows the outside-writer window
                check_expect(old, expect, f"{what} (destination)")
                os.rename(tmp, d)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        fsync_dir(parent)
        return answer()

    async def _symlink_over(self, dst: str, target: str, expect: Expect | str) -> RemoteEntry:
        """``symlink`` at ``dst``, replacing what is there only as ``expect`` allows (a copied
        symlink).  The check, the delete and the create are three steps under the lock each
        takes: a program creating ``dst`` between them makes the create fail (a conflict,
        ``PreconditionFailed`` unless ``expect`` is ANY), never lose its file."""
        what = f"copy to {dst!r}"
        if expect is not Expect.ABSENT:
            if expect is not Expect.ANY:
                check_expect(await self._run(what, lstat_or_none, self._leaf(dst, "copy")), expect, what)
            await self.delete(dst, expect=None if expect is Expect.ANY else expect)
        try:
            return await self.symlink(dst, target)
        except RemoteExists:
            if expect is Expect.ANY:
                raise
            raise PreconditionFailed(f"{what}: something is there now") from None

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        """A symlink, or -- for a special-file marker (``cloudgw.remotes.specials``) -- the real
        FIFO, socket or device node, with the marker's mode and (where we may) owner."""
        p = self._leaf(path, "symlink")
        special = specials.parse(target)

        def do() -> RemoteEntry:
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if special is None:
                os.symlink(target, p)
            else:
                os.mknod(p, special.st_mode, special.rdev)
                os.chmod(p, special.mode)  # (mknod applied our umask)
                with contextlib.suppress(PermissionError):  # not root: ours, as any file we write
                    os.chown(p, special.uid, special.gid, follow_symlinks=False)
            fsync_dir(os.path.dirname(p))
            entry = entry_of(path, os.lstat(p), None if special else target)
            assert entry is not None
            return entry

        async with self._locked(path):
            return await self._run(f"symlink {path!r}", do)

    async def readlink(self, path: str) -> str:
        """The target of a symlink; a special file's marker."""
        p = self._leaf(path, "readlink")

        def do() -> str:
            special = specials.of_stat(os.lstat(p))
            return special.marker() if special is not None else os.readlink(p)

        return await self._run(f"readlink {path!r}", do)

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        """Remove ``.cloudgw-tmp-*`` files older than ``stale_tmp_age`` (by ctime,
        which nobody can set back) that no write of ours is using.  The age spares
        temp files of another process writing the same tree right now.

        In the directories of ``paths`` (our own interrupted uploads) every temp
        file older than this remote object is removed: temp names do not say
        their target, so a live writer's temp file there would be removed too
        (its rename then fails and it retries)."""
        ours = frozenset(self._in_progress)
        cutoff = time.time() - self.stale_tmp_age
        crashed_dirs = {os.path.dirname(os.path.join(self.root, p)) for p in paths}
        started = self._created

        def do() -> int:
            removed = 0
            for dirpath, _dirs, files in os.walk(self.root):
                for name in files:
                    p = os.path.join(dirpath, name)
                    if not name.startswith(TMP_PREFIX) or p in ours:
                        continue
                    st = lstat_or_none(p)
                    stale = self.stale_tmp_age <= 0 or st is not None and st.st_ctime <= cutoff
                    crashed = dirpath in crashed_dirs and st is not None and st.st_ctime < started
                    if st is not None and (stale or crashed):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(p)
                            removed += 1
            return removed

        return await self._run("abort_incomplete_uploads", do)

    async def aclose(self) -> None:
        return None


def _build(url: RemoteURL, options: dict, common: Common) -> LocalRemote:
    if url.netloc not in ("", "localhost") or not url.path.startswith("/"):
        raise url.bad("the path must be absolute (three slashes)")
    return LocalRemote(Path(urllib.parse.unquote(url.path)))


REMOTE_TYPE = RemoteType(
    options=(
        Option("name_rules", str, "store names as a stricter remote must: 'windows' (the directory is an SMB/Windows "
               "share) or 'onedrive' (also: tests of the name mapping); mapped names are shown as the originals"),
    ),
    build=_build,
    names=lambda options: names.named_on_linux(options["name_rules"]),
)
