"""link(2) through the mount, after pjdfstest's link/ category: every name of a file,
FIFO, socket, device or symlink is the same inode (st_ino, type, mode, owner, content);
link and unlink move the link count and the file's ctime, and the parents' mtime and
ctime; link() of a symlink links the symlink itself; every refusal's errno (EEXIST,
ENOENT, ENOTDIR, EPERM for directories, ENAMETOOLONG, ELOOP, EACCES) leaves everything
as it was; rename onto another name of the same inode does nothing; readdir lists each
name of a group exactly once, also when it resumes at offsets; all of it across a remount.

(Until cloudgw has hard links, link(2) answers EPERM on the mount and these tests fail:
that is the point of them.)"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat
from pathlib import Path

import pytest

from tests.mount.posix.util import (AT_FDCWD, LONG_NAME, LONG_PATH, MAX_NAME, NOBODY, as_user, ctime, err, loop, mode,
                                    owner, tick, times, workdir, write)

pytestmark = pytest.mark.mount

KINDS = ["regular", "fifo", "socket", "chr", "blk"]
FMT = {"regular": stat.S_IFREG, "fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK, "chr": stat.S_IFCHR,
       "blk": stat.S_IFBLK}


def make(path: Path, kind: str) -> None:
    """A new ``kind`` (one of KINDS) at ``path``, mode 0644."""
    if kind == "regular":
        write(path, b"data")
    elif kind == "fifo":
        os.mkfifo(path, 0o644)
    elif kind == "socket":
        bind_socket(path)
    elif kind == "chr":
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 3))
    else:
        os.mknod(path, stat.S_IFBLK | 0o644, os.makedev(7, 2))
    os.chmod(path, 0o644)


def bind_socket(path: Path) -> None:
    """A Unix socket bound at ``path`` (by its name from its directory: sun_path holds 108 bytes)."""
    cwd = os.getcwd()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.chdir(path.parent)
        s.bind(path.name)
    finally:
        s.close()
        os.chdir(cwd)


AT_SYMLINK_FOLLOW = 0x400
_libc = ctypes.CDLL(None, use_errno=True)


def link_following(src: Path, dst: Path) -> None:
    """linkat(2) with AT_SYMLINK_FOLLOW (os.link's follow_symlinks=True calls plain link(2) on Linux)."""
    if _libc.linkat(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), AT_SYMLINK_FOLLOW) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(src))


def nlinks(*paths: Path) -> list[int]:
    return [os.lstat(p).st_nlink for p in paths]


def same_inode(*paths: Path) -> bool:
    return len({(os.lstat(p).st_dev, os.lstat(p).st_ino) for p in paths}) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_link_and_unlink_move_counts_and_times(gw, kind: str):
    d = workdir(gw.mnt)
    sub = workdir(d, "sub")
    n0, n1, n2 = d / "n0", d / "n1", sub / "n2"
    make(n0, kind)
    st0 = os.lstat(n0)
    assert (stat.S_IFMT(st0.st_mode), st0.st_nlink) == (FMT[kind], 1)
    _, dmtime, dctime = times(d)
    c = st0.st_ctime_ns
    tick()
    os.link(n0, n1)
    st0, st1 = os.lstat(n0), os.lstat(n1)
    assert st1.st_ino == st0.st_ino and stat.S_IFMT(st1.st_mode) == FMT[kind]
    assert (st0.st_nlink, st1.st_nlink) == (2, 2)
    assert st0.st_ctime_ns > c and st1.st_ctime_ns == st0.st_ctime_ns  # link moved the file's ctime
    _, dmtime2, dctime2 = times(d)
    assert dmtime2 > dmtime and dctime2 > dctime  # and the new name's parent's times
    if kind in ("chr", "blk"):
        assert os.lstat(n1).st_rdev == os.lstat(n0).st_rdev
    _, smtime, sctime = times(sub)
    c = ctime(n0)
    tick()
    os.link(n1, n2)  # into another directory, from the second name
    assert nlinks(n0, n1, n2) == [3, 3, 3] and same_inode(n0, n1, n2)
    assert ctime(n0) > c
    _, smtime2, sctime2 = times(sub)
    assert smtime2 > smtime and sctime2 > sctime
    assert times(d)[1:] == (dmtime2, dctime2)  # the source's directory did not change

    # chmod and chown through one name show through every other (link/00.t)
    os.chmod(n1, 0o601)
    os.chown(n2, NOBODY, 65533)
    for p in (n0, n1, n2):
        assert (mode(p), owner(p)) == (0o601, (NOBODY, 65533)), p

    c = ctime(n1)
    _, dmtime, dctime = times(d)
    tick()
    os.unlink(n0)
    assert not os.path.lexists(n0)
    assert nlinks(n1, n2) == [2, 2] and ctime(n1) > c and ctime(n2) == ctime(n1)  # unlink moved the others' ctime
    _, dmtime2, dctime2 = times(d)
    assert dmtime2 > dmtime and dctime2 > dctime
    c = ctime(n1)
    tick()
    os.unlink(n2)
    assert not os.path.lexists(n2) and nlinks(n1) == [1] and ctime(n1) > c
    assert stat.S_IFMT(os.lstat(n1).st_mode) == FMT[kind] and mode(n1) == 0o601
    if kind == "regular":
        assert n1.read_bytes() == b"data"
    os.unlink(n1)
    assert os.listdir(d) == ["sub"] and os.listdir(sub) == []


def test_link_of_a_symlink_links_the_symlink_itself(gw):
    d = workdir(gw.mnt)
    write(d / "f", b"target")
    os.symlink("f", d / "s")
    os.symlink("nowhere", d / "dangling")
    c = ctime(d / "s")
    tick()
    os.link(d / "s", d / "s2", follow_symlinks=False)  # link(2): a symlink is not followed
    assert stat.S_ISLNK(os.lstat(d / "s2").st_mode) and os.readlink(d / "s2") == "f"
    assert same_inode(d / "s", d / "s2") and nlinks(d / "s", d / "s2", d / "f") == [2, 2, 1]
    assert ctime(d / "s") > c and (d / "s2").read_bytes() == b"target"
    os.link(d / "dangling", d / "dangling2", follow_symlinks=False)
    assert os.readlink(d / "dangling2") == "nowhere" and nlinks(d / "dangling") == [2]
    link_following(d / "s", d / "g")  # linkat(AT_SYMLINK_FOLLOW): the file the symlink names
    assert not os.path.islink(d / "g") and same_inode(d / "g", d / "f") and nlinks(d / "f") == [2]
    assert err(link_following, d / "dangling", d / "x") == errno.ENOENT
    os.link(d / "s", d / "plain")  # plain link(2) never follows
    assert stat.S_ISLNK(os.lstat(d / "plain").st_mode) and nlinks(d / "s") == [3]
    os.unlink(d / "plain")
    os.unlink(d / "s")
    assert os.readlink(d / "s2") == "f" and nlinks(d / "s2") == [1]
    assert sorted(os.listdir(d)) == ["dangling", "dangling2", "f", "g", "s2"]


def test_link_refusals_and_their_errno(gw):
    d = workdir(gw.mnt)
    f = d / "f"
    write(f, b"x")
    (d / "dir").mkdir()
    os.symlink("f", d / "link")
    os.symlink("nowhere", d / "dangling")
    os.mkfifo(d / "fifo")
    lp = loop(d)
    names = sorted(os.listdir(d))
    _, mtime, ctime_ = times(d)
    fctime = ctime(f)
    tick()
    for name in ("f", "dir", "link", "dangling", "fifo", "loop1"):  # the new name exists, whatever it is
        assert err(os.link, f, d / name) == errno.EEXIST, name
    assert err(os.link, d / "missing", d / "x") == errno.ENOENT  # no source
    assert err(os.link, f, d / "missing" / "x") == errno.ENOENT  # no directory for the new name
    assert err(os.link, d / "missing" / "f", d / "x") == errno.ENOENT
    assert err(os.link, f / "x", d / "x") == errno.ENOTDIR  # a path component is a file
    assert err(os.link, f, f / "x") == errno.ENOTDIR
    assert err(os.link, str(f) + "/", d / "x") == errno.ENOTDIR
    assert err(os.link, d / "dir", d / "dir2") == errno.EPERM  # never a directory, even for root
    assert err(os.link, f, d / LONG_NAME) == errno.ENAMETOOLONG  # link/02.t
    assert err(os.link, d / LONG_NAME, d / "x") == errno.ENAMETOOLONG
    assert err(os.link, f, d / LONG_PATH) == errno.ENAMETOOLONG  # link/03.t
    assert err(os.link, lp / "x", d / "x") == errno.ELOOP  # link/08.t
    assert err(os.link, f, lp / "x") == errno.ELOOP
    assert times(d)[1:] == (mtime, ctime_) and ctime(f) == fctime and nlinks(f) == [1]
    assert sorted(os.listdir(d)) == names
    os.link(f, d / MAX_NAME)  # NAME_MAX bytes is fine
    assert nlinks(f) == [2] and (d / MAX_NAME).read_bytes() == b"x"


def test_who_may_link(gw):
    """link/06.t and 07.t: search permission on both paths, write permission on the new
    name's directory; Linux's fs.protected_hardlinks; sticky directories decide who may
    remove a name as they do for any file."""
    d = workdir(gw.mnt)
    assert as_user(d, write, "mine", b"m") == 0  # nobody's own file
    closed = d / "closed"
    closed.mkdir(mode=0o700)
    write(closed / "f", b"c")
    os.chown(closed / "f", NOBODY, NOBODY)
    ro = d / "ro"
    ro.mkdir(mode=0o755)
    _, mtime, ctime_ = times(d)
    tick()
    assert as_user(d, os.link, "closed/f", "x") == errno.EACCES  # no search permission on the source's path
    assert as_user(d, os.link, "mine", "closed/x") == errno.EACCES  # nor on the new name's
    assert as_user(d, os.link, "mine", "ro/x") == errno.EACCES  # no write permission on the new name's directory
    assert os.listdir(closed) == ["f"] and os.listdir(ro) == [] and nlinks(d / "mine", closed / "f") == [1, 1]
    assert times(d)[1:] == (mtime, ctime_)
    assert as_user(d, os.link, "mine", "mine2") == 0
    assert same_inode(d / "mine", d / "mine2") and owner(d / "mine2") == (NOBODY, NOBODY)
    write(d / "roots", b"r", perm=0o644)
    os.chmod(d / "roots", 0o644)
    write(d / "shared", b"s", perm=0o666)
    os.chmod(d / "shared", 0o666)
    if Path("/proc/sys/fs/protected_hardlinks").read_text().strip() == "1":
        assert as_user(d, os.link, "roots", "x") == errno.EPERM  # neither the owner nor may read and write it
        assert not os.path.lexists(d / "x")
        assert as_user(d, os.link, "shared", "shared2") == 0
        assert same_inode(d / "shared", d / "shared2")
    sticky = workdir(d, "sticky", 0o1777)
    write(sticky / "roots", b"r", perm=0o666)
    os.link(sticky / "roots", sticky / "roots2")
    assert as_user(d, write, "sticky/own", b"o") == 0
    assert as_user(d, os.link, "sticky/own", "sticky/own2") == 0
    assert as_user(d, os.unlink, "sticky/roots2") == errno.EPERM  # sticky: neither the file's nor the directory's
    assert as_user(d, os.unlink, "sticky/own2") == 0
    assert sorted(os.listdir(sticky)) == ["own", "roots", "roots2"]
    assert nlinks(sticky / "own", sticky / "roots") == [1, 2]


def test_rename_between_names_of_one_inode(gw):
    d = workdir(gw.mnt)
    sub = workdir(d, "sub")
    write(d / "f", b"x")
    os.link(d / "f", d / "g")
    os.link(d / "f", sub / "h")
    before = os.lstat(d / "f")
    dtimes, stimes = times(d), times(sub)
    tick()
    os.rename(d / "f", d / "g")  # onto another name of the same inode: nothing happens, both stay
    os.rename(sub / "h", d / "f")
    for p in (d / "f", d / "g", sub / "h"):
        st = os.lstat(p)
        assert (st.st_ino, st.st_nlink, st.st_ctime_ns) == (before.st_ino, 3, before.st_ctime_ns), p
    assert (times(d), times(sub)) == (dtimes, stimes)
    assert sorted(os.listdir(d)) == ["f", "g", "sub"] and os.listdir(sub) == ["h"]
    os.rename(sub / "h", d / "moved")  # a second name moves like any name
    assert same_inode(d / "f", d / "g", d / "moved") and nlinks(d / "f", d / "moved") == [3, 3]
    assert ctime(d / "f") > before.st_ctime_ns and os.listdir(sub) == []
    write(d / "other", b"other")
    os.rename(d / "other", d / "g")  # another file replaces one name: the inode loses that name only
    assert nlinks(d / "f", d / "g") == [2, 1] and not same_inode(d / "f", d / "g")
    assert (d / "f").read_bytes() == b"x" and (d / "moved").read_bytes() == b"x" and (d / "g").read_bytes() == b"other"
    os.rename(d / "moved", d / "sub" / "back")
    assert nlinks(d / "f") == [2] and (d / "sub" / "back").read_bytes() == b"x"


def test_names_share_content_and_attributes_across_a_remount(gw):
    d = workdir(gw.mnt)
    sub = workdir(d, "sub")
    a, b, c = d / "a", d / "b", sub / "c"
    write(a, b"first")
    os.link(a, b)
    os.link(b, c)
    write(b, b"written through b")
    assert a.read_bytes() == b"written through b" and c.read_bytes() == b"written through b"
    fd = os.open(a, os.O_RDWR)
    try:
        fd2 = os.open(c, os.O_WRONLY)
        try:
            os.pwrite(fd2, b"W", 0)
        finally:
            os.close(fd2)
        assert os.pread(fd, 100, 0) == b"Written through b"  # an open handle of one name sees writes through another
        os.ftruncate(fd, 7)
    finally:
        os.close(fd)
    assert b.read_bytes() == c.read_bytes() == b"Written"
    os.utime(c, ns=(1_600_000_000_000_000_001, 1_600_000_000_000_000_002))
    os.setxattr(a, "user.color", b"blue")
    assert os.getxattr(b, "user.color") == b"blue" and os.stat(b).st_mtime_ns == 1_600_000_000_000_000_002
    stats = {p: os.lstat(p) for p in (a, b, c)}
    assert len({st.st_ino for st in stats.values()}) == 1 and {st.st_nlink for st in stats.values()} == {3}
    gw.umount()
    gw.mount()
    for p, st in stats.items():
        now = os.lstat(p)
        assert (now.st_ino, now.st_nlink, now.st_size, now.st_mtime_ns, now.st_ctime_ns) == \
            (st.st_ino, 3, 7, st.st_mtime_ns, st.st_ctime_ns), p
        assert p.read_bytes() == b"Written" and os.getxattr(p, "user.color") == b"blue"
    os.unlink(a)
    write(c, b"after the remount")
    assert b.read_bytes() == b"after the remount" and nlinks(b, c) == [2, 2]


def test_readdir_lists_every_name_once(gw):
    d = workdir(gw.mnt)
    write(d / "f", b"f")
    os.link(d / "f", d / "g")
    os.link(d / "f", d / "h")
    write(d / "other", b"o")
    assert sorted(os.listdir(d)) == ["f", "g", "h", "other"]
    assert sorted(e.name for e in os.scandir(d)) == ["f", "g", "h", "other"]
    # enough names that the kernel asks for the directory in several pieces, resuming at offsets
    big = workdir(d, "big")
    expected = set()
    for i in range(300):
        name, second = f"file-{i:04d}-{'x' * 40}", f"second-name-{i:04d}-{'y' * 40}"
        write(big / name, str(i).encode())
        os.link(big / name, big / second)
        expected |= {name, second}
    listed = os.listdir(big)
    assert len(listed) == 600 and set(listed) == expected
    by_ino: dict[int, list[str]] = {}
    for e in os.scandir(big):
        by_ino.setdefault(e.stat(follow_symlinks=False).st_ino, []).append(e.name)
    assert len(by_ino) == 300 and all(len(names) == 2 for names in by_ino.values())
    for i in (0, 150, 299):
        assert (big / f"second-name-{i:04d}-{'y' * 40}").read_bytes() == str(i).encode()
    gw.umount()
    gw.mount()
    listed = os.listdir(big)
    assert len(listed) == 600 and set(listed) == expected
    assert {os.lstat(big / n).st_nlink for n in listed[::37]} == {2}
