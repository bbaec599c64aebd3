"""rename(2) through the mount, after pjdfstest's rename/ category: the inode keeps its
number, mode and content under its new name, ctime of the moved entry and mtime/ctime of
both parents move, what may replace what (EISDIR, ENOTDIR, ENOTEMPTY), a directory never
into its own subtree (EINVAL), renaming onto itself, RENAME_NOREPLACE, and who may rename
(write permission, sticky directories, a directory's own write bit for a new parent)."""

from __future__ import annotations

import errno
import os

import pytest

from tests.mount.posix.util import (LONG_NAME, LONG_PATH, NOBODY, RENAME_NOREPLACE, as_user, ctime, err, loop,
                                    renameat2, tick, times, workdir, write)

pytestmark = pytest.mark.mount


def test_rename_keeps_the_inode_and_moves_times(gw):
    d = workdir(gw.mnt)
    src, dst = d / "src", d / "dst"
    src.mkdir()
    dst.mkdir()
    write(src / "f", b"content", perm=0o640)
    os.chmod(src / "f", 0o640)
    (src / "sub").mkdir()
    write(src / "sub" / "inner", b"in")
    os.symlink("../target", src / "link")
    ino = {n: os.lstat(src / n).st_ino for n in ("f", "sub", "link")}
    cts = {n: ctime(src / n) for n in ("f", "sub", "link")}
    src_times, dst_times = times(src), times(dst)
    tick()
    os.rename(src / "f", src / "g")  # same directory
    os.rename(src / "sub", dst / "sub")  # a directory to another parent
    os.rename(src / "link", dst / "link2")
    assert not any(os.path.lexists(src / n) for n in ("f", "sub", "link"))
    assert os.listdir(src) == ["g"] and sorted(os.listdir(dst)) == ["link2", "sub"]
    g = os.lstat(src / "g")
    assert (g.st_ino, g.st_mode & 0o7777, (src / "g").read_bytes()) == (ino["f"], 0o640, b"content")
    assert os.lstat(dst / "sub").st_ino == ino["sub"] and (dst / "sub" / "inner").read_bytes() == b"in"
    assert os.stat(dst / "sub" / "..").st_ino == os.stat(dst).st_ino
    assert os.lstat(dst / "link2").st_ino == ino["link"] and os.readlink(dst / "link2") == "../target"
    assert ctime(src / "g") > cts["f"] and ctime(dst / "sub") > cts["sub"] and ctime(dst / "link2") > cts["link"]
    assert times(src)[1] > src_times[1] and times(src)[2] > src_times[2]
    assert times(dst)[1] > dst_times[1] and times(dst)[2] > dst_times[2]
    before = os.lstat(src / "g")
    os.rename(src / "g", src / "g")  # onto itself: nothing happens
    after = os.lstat(src / "g")
    assert (after.st_ino, after.st_ctime_ns, after.st_mtime_ns) == (before.st_ino, before.st_ctime_ns,
                                                                    before.st_mtime_ns)


def test_what_may_replace_what(gw):
    d = workdir(gw.mnt)
    write(d / "a", b"A")
    write(d / "b", b"B")
    ino_a = os.lstat(d / "a").st_ino
    os.rename(d / "a", d / "b")  # a file replaces a file
    assert not os.path.exists(d / "a") and (d / "b").read_bytes() == b"A" and os.lstat(d / "b").st_ino == ino_a
    for n in ("dir", "empty", "full", "full/sub", "dir/child"):
        (d / n).mkdir()
    os.rename(d / "empty", d / "dir2")
    os.rename(d / "dir2", d / "dir" / "child")  # a directory replaces an empty directory
    assert os.listdir(d / "dir") == ["child"] and not os.path.exists(d / "dir2")
    assert err(os.rename, d / "dir", d / "full") == errno.ENOTEMPTY
    assert err(os.rename, d / "b", d / "dir") == errno.EISDIR
    assert err(os.rename, d / "dir", d / "b") == errno.ENOTDIR
    assert err(os.rename, d / "dir", d / "dir" / "child" / "x") == errno.EINVAL  # into its own subtree
    assert err(os.rename, d / "dir", d / "dir" / "child") == errno.EINVAL
    assert err(os.rename, d / "full", d / "full" / "sub" / "deeper") == errno.EINVAL
    assert err(os.rename, f"{d}/dir/.", d / "x") == errno.EBUSY  # (pathlib would drop the ".")
    assert err(os.rename, d / "missing", d / "x") == errno.ENOENT
    assert err(os.rename, d / "b", d / "missing" / "x") == errno.ENOENT
    assert err(os.rename, d / "b" / "x", d / "x") == errno.ENOTDIR
    assert err(os.rename, d / "b", d / "b" / "x") == errno.ENOTDIR
    assert err(os.rename, d / "b", d / LONG_NAME) == errno.ENAMETOOLONG
    assert err(os.rename, d / "b", d / LONG_PATH) == errno.ENAMETOOLONG
    assert err(os.rename, loop(d) / "x", d / "x") == errno.ELOOP
    assert sorted(os.listdir(d)) == ["b", "dir", "full", "loop1", "loop2"]
    os.symlink("b", d / "s")
    write(d / "c", b"C")
    os.rename(d / "s", d / "c")  # a link replaces a file; its target is untouched
    assert os.readlink(d / "c") == "b" and (d / "b").read_bytes() == b"A"
    write(d / "e", b"E")
    assert err(renameat2, d / "e", d / "b", RENAME_NOREPLACE) == errno.EEXIST
    assert (d / "b").read_bytes() == b"A" and (d / "e").read_bytes() == b"E"
    renameat2(d / "e", d / "e2", RENAME_NOREPLACE)
    assert (d / "e2").read_bytes() == b"E" and not os.path.exists(d / "e")


def test_who_may_rename(gw):
    d = workdir(gw.mnt)
    sticky = workdir(d, "sticky", 0o1777)
    write(sticky / "roots", b"r", perm=0o666)
    os.chmod(sticky / "roots", 0o666)
    assert as_user(d, write, "sticky/mine", b"m") == 0
    c = ctime(sticky / "roots")
    tick()
    assert as_user(d, os.rename, "sticky/roots", "sticky/x") == errno.EPERM  # sticky: not the file's owner
    assert as_user(d, os.rename, "sticky/mine", "sticky/roots") == errno.EPERM  # nor the replaced file's
    assert ctime(sticky / "roots") == c and (sticky / "roots").read_bytes() == b"r"
    assert as_user(d, os.rename, "sticky/mine", "sticky/mine2") == 0
    theirs = workdir(d, "theirs", 0o1777)
    os.chown(theirs, NOBODY, NOBODY)
    write(theirs / "roots", b"r")
    assert as_user(d, os.rename, "theirs/roots", "theirs/moved") == 0  # the sticky directory's owner may
    ro = d / "ro"
    ro.mkdir(mode=0o755)
    write(ro / "f", b"")
    assert as_user(d, os.rename, "ro/f", "ro/g") == errno.EACCES
    assert as_user(d, os.rename, "ro/f", "f") == errno.EACCES
    assert as_user(d, os.rename, "sticky/mine2", "ro/mine") == errno.EACCES
    assert os.listdir(ro) == ["f"]
    write(d / "plain", b"")  # root's file in a directory anyone may write: anyone may rename it
    assert as_user(d, os.rename, "plain", "plain2") == 0
    (d / "rootdir").mkdir(mode=0o755)
    other = workdir(d, "other")
    assert as_user(d, os.rename, "rootdir", "other/rootdir") == errno.EACCES  # its ".." would change
    assert as_user(d, os.rename, "rootdir", "rootdir2") == 0  # same parent: ".." stays
    assert os.path.isdir(d / "rootdir2") and os.listdir(other) == []
