"""Every metadata change of the categories above survives an unmount and a mount: what
``stat`` shows of each entry (type, inode, mode with set-id and sticky bits, owner,
size, atime/mtime/ctime to the nanosecond), symlink targets, contents, and the names
that rename, rmdir and unlink took away."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.mount.posix.util import NOBODY, UTIME_OMIT, utimensat, workdir, write

pytestmark = pytest.mark.mount


def _snapshot(root: Path, rel: str = "") -> dict[str, tuple]:
    """What stat shows of everything under ``root``, read with O_NOATIME (a plain read
    or listing would move atimes on a local disk, where the test can run too)."""
    out: dict[str, tuple] = {}
    fd = os.open(root / rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NOATIME)
    try:
        names = sorted(e.name for e in os.scandir(fd))
    finally:
        os.close(fd)
    for name in names:
        path = f"{rel}/{name}" if rel else name
        extra: bytes | str | None = None
        if os.path.islink(root / path):
            extra = os.readlink(root / path)  # before lstat: it may move a local link's atime
        st = os.lstat(root / path)
        if stat.S_ISREG(st.st_mode):
            f = os.open(root / path, os.O_RDONLY | os.O_NOATIME)
            try:
                extra = os.read(f, 1 << 16)
            finally:
                os.close(f)
        out[path] = (st.st_mode, st.st_ino, st.st_uid, st.st_gid, st.st_size, st.st_nlink,
                     st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns, extra)
        if stat.S_ISDIR(st.st_mode):
            out |= _snapshot(root, path)
    return out


def test_metadata_changes_survive_a_remount(gw):
    d = workdir(gw.mnt)
    write(d / "chmod", b"x")
    os.chmod(d / "chmod", 0o4751)
    (d / "sticky").mkdir()
    os.chmod(d / "sticky", 0o3777)
    write(d / "chown", b"x")
    os.chown(d / "chown", 123, 456)
    os.mkdir(d / "mkdir", 0o750)
    os.chown(d / "mkdir", NOBODY, NOBODY)
    write(d / "mkdir" / "moved", b"moved")
    os.rename(d / "mkdir" / "moved", d / "renamed")
    (d / "old-dir").mkdir()
    write(d / "old-dir" / "inner", b"inner")
    os.rename(d / "old-dir", d / "sticky" / "new-dir")
    (d / "rmdir").mkdir()
    os.rmdir(d / "rmdir")
    os.symlink("../renamed", d / "mkdir" / "symlink")
    os.lchown(d / "mkdir" / "symlink", 77, 88)
    write(d / "truncate", b"abcdef")
    os.truncate(d / "truncate", 3)
    os.truncate(d / "truncate", 8)
    write(d / "unlink", b"x")
    os.unlink(d / "unlink")
    write(d / "append", b"a")
    write(d / "append", b"b", flags=os.O_WRONLY | os.O_APPEND)
    write(d / "utime", b"x")
    utimensat(d / "utime", 1_900_000_000_123_456_789, 1_950_000_000_987_654_321)
    utimensat(d / "mkdir", UTIME_OMIT, 2**32 * 10**9 + 1)
    utimensat(d / "mkdir" / "symlink", 100_000_000_000_000_001, 200_000_000_000_000_002, follow_symlinks=False)
    os.utime(d / "sticky", ns=(5, 7))
    before = _snapshot(d)
    assert sorted(before) == ["append", "chmod", "chown", "mkdir", "mkdir/symlink", "renamed", "sticky",
                              "sticky/new-dir", "sticky/new-dir/inner", "truncate", "utime"]
    assert before["truncate"][-1] == b"abc\0\0\0\0\0" and before["append"][-1] == b"ab"
    gw.umount()
    gw.mount()
    after = _snapshot(d)
    assert after == before
