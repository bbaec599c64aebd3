"""rmdir(2) through the mount, after pjdfstest's rmdir/ category: an empty directory goes
and its parent's mtime and ctime move; anything in it (file, directory, symlink) is
ENOTEMPTY; "." is EINVAL; files and links to directories are ENOTDIR; write permission
and sticky directories decide who may; a refusal leaves the parent untouched."""

from __future__ import annotations

import errno
import os

import pytest

from tests.mount.posix.util import (LONG_NAME, LONG_PATH, MAX_NAME, NOBODY, as_user, err, loop, tick, times, workdir,
                                    write)

pytestmark = pytest.mark.mount


def test_rmdir_removes_and_moves_parent_times(gw):
    d = workdir(gw.mnt)
    (d / "a").mkdir()
    (d / MAX_NAME).mkdir()
    (d / "roots").mkdir()
    _, mtime, ctime = times(d)
    tick()
    os.rmdir(d / "a")
    assert not os.path.lexists(d / "a")
    _, mtime2, ctime2 = times(d)
    assert mtime2 > mtime and ctime2 > ctime
    os.rmdir(d / MAX_NAME)
    assert as_user(d, os.mkdir, "mine") == 0
    assert as_user(d, os.rmdir, "mine") == 0
    assert as_user(d, os.rmdir, "roots") == 0  # root's empty directory, in a directory anyone may write
    assert os.listdir(d) == []


def test_rmdir_refusals_and_their_errno(gw):
    d = workdir(gw.mnt)
    for n in ("with-file", "with-dir", "with-dir/sub", "with-link", "target"):
        (d / n).mkdir()
    write(d / "with-file" / "f", b"")
    os.symlink("nowhere", d / "with-link" / "l")
    write(d / "f", b"")
    os.symlink("target", d / "to-dir")
    _, mtime, ctime = times(d)
    tick()
    for n in ("with-file", "with-dir", "with-link"):
        assert err(os.rmdir, d / n) == errno.ENOTEMPTY, n
    assert err(os.rmdir, d / "f") == errno.ENOTDIR
    assert err(os.rmdir, d / "to-dir") == errno.ENOTDIR  # a link to a directory is not one
    assert err(os.rmdir, d / "f" / "x") == errno.ENOTDIR
    assert err(os.rmdir, d / "missing") == errno.ENOENT
    assert err(os.rmdir, d / LONG_NAME) == errno.ENAMETOOLONG
    assert err(os.rmdir, d / LONG_PATH) == errno.ENAMETOOLONG
    assert err(os.rmdir, f"{d}/target/.") == errno.EINVAL
    assert err(os.rmdir, f"{d}/with-dir/sub/..") == errno.ENOTEMPTY
    assert times(d)[1:] == (mtime, ctime)
    assert err(os.rmdir, loop(d) / "x") == errno.ELOOP
    ro = d / "ro"
    ro.mkdir(mode=0o755)
    (ro / "sub").mkdir()
    closed = d / "closed"
    closed.mkdir(mode=0o700)
    (closed / "sub").mkdir()
    os.chown(closed / "sub", NOBODY, NOBODY)
    assert as_user(d, os.rmdir, "ro/sub") == errno.EACCES
    assert as_user(d, os.rmdir, "closed/sub") == errno.EACCES
    sticky = workdir(d, "sticky", 0o1777)
    (sticky / "roots").mkdir()
    assert as_user(d, os.mkdir, "sticky/mine") == 0
    assert as_user(d, os.rmdir, "sticky/roots") == errno.EPERM
    assert as_user(d, os.rmdir, "sticky/mine") == 0
    assert os.listdir(sticky) == ["roots"] and os.listdir(ro) == ["sub"]
    assert all(os.path.isdir(d / n) for n in ("with-file", "with-dir", "with-link", "target"))
