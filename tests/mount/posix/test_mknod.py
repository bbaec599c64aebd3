"""mkfifo(3) and mknod(2) through the mount, after pjdfstest's mkfifo/ and mknod/ categories:
type, mode less the umask, the creator's ids, device numbers, fresh times and the parent's
moved ones; the kernel's refusals (devices by non-root: EPERM) and the filesystem's (EEXIST,
ENOTDIR, ENOENT, ENAMETOOLONG, EACCES, ELOOP) with the parent untouched; chmod, chown,
rename and unlink of special files, and all of it across a remount."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from tests.mount.posix.util import (LONG_NAME, MAX_NAME, NOBODY, as_user, err, loop, mode, owner, tick, times,
                                    workdir, write)

pytestmark = pytest.mark.mount

KINDS = [("fifo", stat.S_IFIFO, 0), ("chr", stat.S_IFCHR, os.makedev(1, 3)), ("blk", stat.S_IFBLK, os.makedev(7, 2))]


def _kind_and_dev(path) -> tuple[int, int]:  # noqa: ANN001
    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), st.st_rdev


def test_mknod_type_mode_owner_device_and_times(gw):
    d = workdir(gw.mnt)
    _, dmtime, dctime = times(d)
    tick()
    for name, kind, dev in KINDS:
        os.mknod(d / name, kind | 0o640, dev)
        assert _kind_and_dev(d / name) == (kind, dev), name
        assert mode(d / name) == 0o640 and owner(d / name) == (0, 0)
        assert min(times(d / name)) > dctime
    _, mtime2, ctime2 = times(d)
    assert mtime2 > dmtime and ctime2 > dctime
    os.mkfifo(d / MAX_NAME, 0o777)  # root's umask 022
    assert stat.S_ISFIFO(os.lstat(d / MAX_NAME).st_mode) and mode(d / MAX_NAME) == 0o755
    assert as_user(d, os.mkfifo, "nobody-fifo", 0o666, umask=0o027) == 0
    assert (mode(d / "nobody-fifo"), owner(d / "nobody-fifo")) == (0o640, (NOBODY, NOBODY))
    assert sorted(os.listdir(d)) == sorted(["fifo", "chr", "blk", MAX_NAME, "nobody-fifo"])


def test_mknod_refusals_and_their_errno(gw):
    d = workdir(gw.mnt)
    write(d / "f", b"")
    os.mkfifo(d / "p")
    closed = d / "closed"
    closed.mkdir(mode=0o755)
    lp = loop(d)
    _, mtime, ctime = times(d)
    tick()
    assert err(os.mkfifo, d / "f") == errno.EEXIST
    assert err(os.mkfifo, d / "p") == errno.EEXIST
    assert err(os.mknod, d / "p", stat.S_IFCHR | 0o600, os.makedev(1, 3)) == errno.EEXIST
    assert err(os.mkfifo, d / "f" / "x") == errno.ENOTDIR
    assert err(os.mkfifo, d / "missing" / "x") == errno.ENOENT
    assert err(os.mkfifo, d / LONG_NAME) == errno.ENAMETOOLONG
    assert err(os.mkfifo, lp / "x") == errno.ELOOP
    assert as_user(d, os.mknod, "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3)) == errno.EPERM  # CAP_MKNOD
    assert as_user(d, os.mkfifo, "closed/x") == errno.EACCES
    assert times(d)[1:] == (mtime, ctime)
    assert sorted(os.listdir(d)) == sorted(["f", "p", "closed", "loop1", "loop2"])


def test_special_files_change_move_and_go_like_files_and_survive_a_remount(gw):
    d = workdir(gw.mnt)
    os.mkfifo(d / "p", 0o600)
    os.mknod(d / "c", stat.S_IFCHR | 0o600, os.makedev(10, 200))
    c0 = times(d / "p")[2]
    tick()
    os.chmod(d / "p", 0o4640)
    os.chown(d / "c", 1234, 5678)
    assert mode(d / "p") == 0o4640 and times(d / "p")[2] > c0
    assert owner(d / "c") == (1234, 5678)
    os.rename(d / "p", d / "q")
    os.mkdir(d / "sub")
    os.rename(d / "c", d / "sub" / "c2")
    os.mkfifo(d / "gone")
    os.unlink(d / "gone")
    assert sorted(os.listdir(d)) == ["q", "sub"]
    gw.umount()
    gw.mount()
    assert stat.S_ISFIFO(os.lstat(d / "q").st_mode) and mode(d / "q") == 0o4640
    assert _kind_and_dev(d / "sub" / "c2") == (stat.S_IFCHR, os.makedev(10, 200))
    assert owner(d / "sub" / "c2") == (1234, 5678)
    assert not os.path.lexists(d / "gone")
