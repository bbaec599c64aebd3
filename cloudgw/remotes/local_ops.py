"""Blocking file-system steps of the ``file://`` remote (run in worker threads
by ``local.py``): OSError mapping, revisions, entries, temp files."""

from __future__ import annotations

import contextlib
import errno
import os
import stat as st_
import tempfile
import time
from pathlib import Path

from cloudgw.errors import (
    PreconditionFailed,
    RemoteError,
    RemoteExists,
    RemoteNotEmpty,
    RemoteNotFound,
    RemotePermissionDenied,
    RemoteUnsupported,
)
from cloudgw.remotes import specials
from cloudgw.remotes.base import Expect, FileAttrs, Kind, RemoteEntry
from cloudgw.remotes.util import remote_error

TMP_PREFIX = ".cloudgw-tmp-"
LINKED = "-l"  # the suffix of the revision of a file with several names (``local_rev``)

_ERRNO_CLASS: dict[int, type[RemoteError]] = {
    errno.ENOENT: RemoteNotFound,
    errno.ENOTDIR: RemoteNotFound,  # a path through a file: nothing is there
    errno.EACCES: RemotePermissionDenied,
    errno.EPERM: RemotePermissionDenied,
    errno.EEXIST: RemoteExists,
    errno.ENOTEMPTY: RemoteNotEmpty,
    errno.EOPNOTSUPP: RemoteUnsupported,
}


def map_oserror(exc: OSError, what: str) -> RemoteError:
    cls = _ERRNO_CLASS.get(exc.errno or 0, RemoteError)
    detail = exc.strerror or str(exc)
    return remote_error(cls, exc.errno if cls is RemoteError else None, f"{what}: {detail}")


def local_rev(st: os.stat_result) -> str:
    """The revision of what ``st`` describes (``local.py``'s docstring says why the two forms).

    One name: ino-size-mtime-ctime.  Several names (``st_nlink > 1``): ino-size-mtime-l, the same
    string for every name, and not moved by a link or unlink of any of them (those move the ctime)."""
    if st.st_nlink > 1:
        return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}{LINKED}"
    return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}"


def _version(rev: str) -> tuple[str, str, str] | None:
    """(ino, size, mtime) of a revision in either form of ``local_rev``; None for anything else."""
    parts = rev.split("-")
    if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]) or not (parts[3] == "l" or parts[3].isdigit()):
        return None
    return parts[0], parts[1], parts[2]


def same_version(a: str, b: str) -> bool:
    """Whether revisions ``a`` and ``b`` name the same version of one file.

    Equal strings do.  Otherwise only where either is of a file with several names (``-l``) and
    ino, size and mtime agree: a link or unlink of any name between the two (ours too) changed
    the form or the ctime, not the content.  Two one-name revisions still compare whole."""
    if a == b:
        return True
    if not (a.endswith(LINKED) or b.endswith(LINKED)):
        return False
    va = _version(a)
    return va is not None and va == _version(b)


def at_version(st: os.stat_result, rev: str) -> bool:
    """Whether the file ``st`` describes is at revision ``rev`` (``same_version``)."""
    return same_version(local_rev(st), rev)


def entry_of(path: str, st: os.stat_result, target: str | None = None) -> RemoteEntry | None:
    mode = st.st_mode
    attrs = FileAttrs(st_.S_IMODE(mode), st.st_uid, st.st_gid, st.st_mtime_ns)
    if st_.S_ISDIR(mode):
        return RemoteEntry(path, Kind.DIR, 0, st.st_mtime_ns, None, attrs)
    if st_.S_ISREG(mode):
        return RemoteEntry(path, Kind.FILE, st.st_size, st.st_mtime_ns, local_rev(st), attrs)
    if st_.S_ISLNK(mode):
        return RemoteEntry(path, Kind.SYMLINK, st.st_size, st.st_mtime_ns, local_rev(st), attrs, target)
    special = specials.of_stat(st)
    if special is not None:  # a FIFO, socket or device: a symlink to its marker at the contract
        return RemoteEntry(path, Kind.SYMLINK, 0, st.st_mtime_ns, local_rev(st), attrs, special.marker())
    return None


def read_umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # racy with other threads, so only the fallback
    os.umask(mask)
    return mask


def check_expect(st: os.stat_result | None, expect: Expect | str, what: str) -> None:
    if expect is Expect.ANY:
        return
    if expect is Expect.ABSENT:
        if st is not None:
            raise PreconditionFailed(f"{what}: already exists")
    elif st is None:
        raise PreconditionFailed(f"{what}: expected revision {expect}, but it is gone")
    elif not at_version(st, expect):
        raise PreconditionFailed(f"{what}: expected revision {expect}, found {local_rev(st)}")


def lstat_or_none(p: str) -> os.stat_result | None:
    try:
        return os.lstat(p)
    except (FileNotFoundError, NotADirectoryError):
        return None


def fsync_dir(d: str) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply_attrs(fd: int, attrs: FileAttrs) -> None:
    """Owner first, then mode: a chown clears the setuid and setgid bits (Linux, even as root)."""
    if attrs.uid is not None or attrs.gid is not None:
        with contextlib.suppress(PermissionError):  # best effort unless we are root
            os.fchown(fd, -1 if attrs.uid is None else attrs.uid, -1 if attrs.gid is None else attrs.gid)
    if attrs.mode is not None:
        os.fchmod(fd, attrs.mode & 0o7777)
    if attrs.mtime_ns is not None:
        os.utime(fd, ns=(time.time_ns(), attrs.mtime_ns))


def change_attrs(p: str, attrs: FileAttrs, expect: str | None, what: str) -> os.stat_result:
    """``set_attrs`` of the file or directory at ``p``; returns its stat afterwards.

    The inode is opened once (``O_PATH | O_NOFOLLOW``: no permission needed, a symlink is not
    followed) and checked and changed through that descriptor (``/proc/self/fd``), so a name
    swapped meanwhile (for a symlink to elsewhere) is never what gets changed.  Each attribute
    is applied only where it differs: attributes already as asked leave the ctime, and so the
    revision, alone.  Owner first, then mode: a chown clears the setuid and setgid bits (Linux,
    even as root), so after one the mode is set again (the asked one, or the one it had).
    Not fsync'ed: an attribute change is metadata the remote's filesystem journals.
    """
    try:
        fd = os.open(p, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        if expect is not None:
            raise PreconditionFailed(f"{what}: expected revision {expect}, but it is gone") from None
        raise
    try:
        st = os.fstat(fd)
        if not (st_.S_ISREG(st.st_mode) or st_.S_ISDIR(st.st_mode)):
            raise RemoteUnsupported(f"{what}: only files and directories have attributes to change here")
        if expect is not None:
            check_expect(st, expect, what)
        node = f"/proc/self/fd/{fd}"  # the inode checked above, whatever its name is now
        uid = attrs.uid if attrs.uid is not None and attrs.uid != st.st_uid else -1
        gid = attrs.gid if attrs.gid is not None and attrs.gid != st.st_gid else -1
        chowned = False
        if uid != -1 or gid != -1:
            with contextlib.suppress(PermissionError):  # best effort unless we are root (as ``apply_attrs``)
                os.chown(node, uid, gid)
                chowned = True
        mode = st_.S_IMODE(st.st_mode) if attrs.mode is None else attrs.mode & 0o7777
        if chowned or mode != st_.S_IMODE(st.st_mode):
            os.chmod(node, mode)
        mtime = st.st_mtime_ns if attrs.mtime_ns is None else attrs.mtime_ns
        if mtime != st.st_mtime_ns:
            os.utime(node, ns=(st.st_atime_ns, mtime))
        after = os.fstat(fd)
        if expect is not None and (after.st_size, after.st_mtime_ns) != (st.st_size, mtime):
            # written in place meanwhile: the new revision is someone else's content, not ours
            raise PreconditionFailed(f"{what}: the file changed while its attributes were set")
        return after
    finally:
        os.close(fd)


class Temp:
    """An open temp file; close() is idempotent so no fd is ever closed twice."""

    def __init__(self, target: str) -> None:
        parent = os.path.dirname(target)
        os.makedirs(parent, exist_ok=True)
        self.fd, self.path = tempfile.mkstemp(prefix=TMP_PREFIX, dir=parent)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class FileSource:
    """UploadSource over an open file of the remote itself (``copy``): its
    errors are remote errors, and a change while copying is a conflict."""

    def __init__(self, fd: int, st: os.stat_result, what: str) -> None:
        self.fd, self.size, self._rev, self._what = fd, st.st_size, local_rev(st), what

    def read(self, offset: int, length: int) -> bytes:
        try:
            return os.pread(self.fd, length, offset)
        except OSError as exc:
            raise map_oserror(exc, self._what) from exc

    def check(self) -> None:
        try:
            now = local_rev(os.fstat(self.fd))
        except OSError as exc:
            raise map_oserror(exc, self._what) from exc
        if not same_version(now, self._rev):  # (a link made or removed meanwhile: the same content)
            raise PreconditionFailed(f"{self._what}: the source changed while it was copied")
