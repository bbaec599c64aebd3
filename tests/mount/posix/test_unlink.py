"""unlink(2) through the mount, after pjdfstest's unlink/ category: the name goes (a
symlink's target stays), the parent's mtime and ctime move, an open file stays usable
and shows no links and a new ctime (unlink/14.t), the other name of a hard-linked file
gets a new ctime; every refusal's errno (EISDIR for directories), write permission and
sticky directories deciding who may."""

from __future__ import annotations

import errno
import os

import pytest

from tests.mount.posix.util import (LONG_NAME, LONG_PATH, MAX_NAME, NOBODY, as_user, ctime, err, loop, tick, times,
                                    workdir, write)

pytestmark = pytest.mark.mount


def test_unlink_removes_names_moves_parent_times_and_spares_open_files(gw):
    d = workdir(gw.mnt)
    write(d / "f", b"x")
    write(d / "g", b"y")
    (d / "dir").mkdir()
    os.symlink("g", d / "link")
    os.symlink("dir", d / "dirlink")
    write(d / MAX_NAME, b"")
    _, mtime, ctime_ = times(d)
    tick()
    os.unlink(d / "f")
    assert not os.path.lexists(d / "f")
    _, mtime2, ctime2 = times(d)
    assert mtime2 > mtime and ctime2 > ctime_
    os.unlink(d / "link")
    os.unlink(d / "dirlink")
    assert (d / "g").read_bytes() == b"y" and os.path.isdir(d / "dir")  # the links went, not their targets
    os.unlink(d / MAX_NAME)
    write(d / "roots", b"")
    assert as_user(d, os.unlink, "roots") == 0  # root's file, in a directory anyone may write
    assert sorted(os.listdir(d)) == ["dir", "g"]
    # an open file stays usable after unlink (unlink/14.t)
    fd = os.open(d / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"Hello, World!")
        os.unlink(d / "f")
        assert not os.path.lexists(d / "f")
        assert os.pread(fd, 100, 0) == b"Hello, World!"
        os.pwrite(fd, b"Bye", 13)
        assert os.pread(fd, 100, 0) == b"Hello, World!Bye" and os.fstat(fd).st_size == 16
        write(d / "f", b"new")  # the name is free for another file
        assert (d / "f").read_bytes() == b"new" and os.pread(fd, 5, 0) == b"Hello"
        assert os.stat(d / "f").st_ino != os.fstat(fd).st_ino
    finally:
        os.close(fd)


def test_unlink_refusals_and_their_errno(gw):
    d = workdir(gw.mnt)
    write(d / "f", b"x")
    (d / "dir").mkdir()
    _, mtime, ctime_ = times(d)
    tick()
    assert err(os.unlink, d / "dir") == errno.EISDIR
    assert err(os.unlink, d / "f" / "x") == errno.ENOTDIR
    assert err(os.unlink, str(d / "f") + "/") == errno.ENOTDIR
    assert err(os.unlink, d / "missing") == errno.ENOENT
    assert err(os.unlink, d / LONG_NAME) == errno.ENAMETOOLONG
    assert err(os.unlink, d / LONG_PATH) == errno.ENAMETOOLONG
    assert times(d)[1:] == (mtime, ctime_)
    assert err(os.unlink, loop(d) / "x") == errno.ELOOP
    ro = d / "ro"
    ro.mkdir(mode=0o755)
    write(ro / "f", b"", perm=0o666)
    closed = d / "closed"
    closed.mkdir(mode=0o700)
    write(closed / "f", b"")
    os.chown(closed / "f", NOBODY, NOBODY)
    assert as_user(d, os.unlink, "ro/f") == errno.EACCES
    assert as_user(d, os.unlink, "closed/f") == errno.EACCES
    sticky = workdir(d, "sticky", 0o1777)
    write(sticky / "roots", b"", perm=0o666)
    os.chmod(sticky / "roots", 0o666)
    assert as_user(d, write, "sticky/mine", b"m") == 0
    assert as_user(d, os.unlink, "sticky/roots") == errno.EPERM  # sticky: neither its owner nor the directory's
    assert as_user(d, os.unlink, "sticky/mine") == 0
    theirs = workdir(d, "theirs", 0o1777)
    os.chown(theirs, NOBODY, NOBODY)
    write(theirs / "roots", b"")
    assert as_user(d, os.unlink, "theirs/roots") == 0  # the sticky directory's owner may
    assert os.listdir(sticky) == ["roots"] and os.listdir(ro) == ["f"] and os.listdir(closed) == ["f"]
    assert os.path.isdir(d / "dir") and (d / "f").read_bytes() == b"x"


def test_an_unlinked_open_file_shows_no_links(gw):
    d = workdir(gw.mnt)
    write(d / "b", b"B")
    fd = os.open(d / "f", os.O_RDWR | os.O_CREAT, 0o644)
    fd2 = os.open(d / "b", os.O_RDONLY)
    try:
        assert os.fstat(fd).st_nlink == 1
        os.unlink(d / "f")
        write(d / "a", b"A")
        os.rename(d / "a", d / "b")  # replaces the file fd2 has open
        assert os.pread(fd2, 5, 0) == b"B"
        assert (os.fstat(fd).st_nlink, os.fstat(fd2).st_nlink) == (0, 0)
    finally:
        os.close(fd)
        os.close(fd2)


def test_unlink_moves_the_ctime_of_the_file(gw):
    d = workdir(gw.mnt)
    fd = os.open(d / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        before = os.fstat(fd).st_ctime_ns
        tick()
        os.unlink(d / "f")
        assert os.fstat(fd).st_ctime_ns > before
    finally:
        os.close(fd)


def test_unlink_of_one_name_moves_the_ctime_of_the_other(gw):
    d = workdir(gw.mnt)
    write(d / "f", b"x")
    os.link(d / "f", d / "g")
    assert os.stat(d / "g").st_nlink == 2
    c = ctime(d / "g")
    tick()
    os.unlink(d / "f")
    st = os.stat(d / "g")
    assert st.st_nlink == 1 and st.st_ctime_ns > c and (d / "g").read_bytes() == b"x"
