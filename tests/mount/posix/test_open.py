"""open(2) through the mount, after pjdfstest's open/ category: O_CREAT's mode less the
umask and the creator's ids, parent times moved only when a file is created, O_EXCL,
O_TRUNC (times moved), O_APPEND, O_NOFOLLOW, O_DIRECTORY, access modes enforced on the
descriptor, and the errno of every refusal, permissions included."""

from __future__ import annotations

import errno
import os

import pytest

from tests.mount.posix.util import (LONG_NAME, LONG_PATH, NOBODY, OTHER, as_user, err, loop, mode, owner, tick,
                                    times, workdir, write)

pytestmark = pytest.mark.mount


def _create(name: str, perm: int) -> None:
    os.close(os.open(name, os.O_CREAT | os.O_WRONLY, perm))


def _open(name: str, flags: int) -> None:
    os.close(os.open(name, flags))


def test_create_mode_owner_times_and_open_flags(gw):
    d = workdir(gw.mnt)
    for name, perm, umask, expected in (("a", 0o755, 0o022, 0o755), ("b", 0o151, 0, 0o151), ("c", 0o151, 0o077, 0o100),
                                        ("e", 0o345, 0o070, 0o305), ("g", 0o345, 0o501, 0o244)):
        assert as_user(d, _create, name, perm, umask=umask) == 0
        assert (mode(d / name), owner(d / name)) == (expected, (NOBODY, NOBODY)), name
    assert as_user(d, _create, "h", 0o644, gid=OTHER) == 0
    assert owner(d / "h") == (NOBODY, OTHER)
    _, dmtime, dctime = times(d)
    tick()
    _create(str(d / "new"), 0o644)
    assert min(times(d / "new")) > dctime
    _, dmtime2, dctime2 = times(d)
    assert dmtime2 > dmtime and dctime2 > dctime
    tick()
    fd = os.open(d / "new", os.O_CREAT | os.O_RDONLY, 0o600)  # exists: opened, not created
    os.close(fd)
    assert times(d)[1:] == (dmtime2, dctime2) and mode(d / "new") == 0o644
    f = d / "f"
    write(f, b"hello")
    (d / "dir").mkdir()
    os.symlink("f", d / "link")
    os.symlink("target", d / "dangling")
    excl = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    for name in ("f", "dir", "link", "dangling"):
        assert err(os.open, d / name, excl, 0o644) == errno.EEXIST, name
    assert not os.path.lexists(d / "target")
    os.close(os.open(d / "fresh", excl, 0o644))
    assert os.path.isfile(d / "fresh")
    os.close(os.open(d / "dangling", os.O_CREAT | os.O_WRONLY, 0o644))  # O_CREAT follows a dangling link
    assert os.path.isfile(d / "target")
    assert err(os.open, d / "link", os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    assert err(os.open, f, os.O_RDONLY | os.O_DIRECTORY) == errno.ENOTDIR
    assert err(os.open, d / "dir", os.O_WRONLY) == errno.EISDIR
    assert err(os.open, d / "dir", os.O_RDWR) == errno.EISDIR
    assert err(os.open, d / "dir", os.O_CREAT | os.O_RDONLY) == errno.EISDIR
    os.close(os.open(d / "dir", os.O_RDONLY | os.O_DIRECTORY))
    fd = os.open(f, os.O_RDONLY)
    assert err(os.write, fd, b"x") == errno.EBADF
    os.close(fd)
    fd = os.open(f, os.O_WRONLY)
    assert err(os.read, fd, 1) == errno.EBADF
    os.close(fd)
    _, mtime, ctime = times(f)
    tick()
    fd = os.open(f, os.O_WRONLY | os.O_TRUNC)
    assert os.fstat(fd).st_size == 0
    os.close(fd)
    _, mtime2, ctime2 = times(f)
    assert os.path.getsize(f) == 0 and mtime2 > mtime and ctime2 > ctime
    write(f, b"hello")
    fd = os.open(f, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b" world")  # at the end, wherever the offset was
    os.close(fd)
    assert f.read_bytes() == b"hello world"
    fd = os.open(f, os.O_RDWR)
    os.pwrite(fd, b"J", 0)
    assert os.pread(fd, 100, 0) == b"Jello world"
    os.close(fd)


def test_open_refusals_and_their_errno(gw):
    d = workdir(gw.mnt)
    f = d / "f"
    write(f, b"data")
    assert err(os.open, f / "x", os.O_RDONLY) == errno.ENOTDIR
    assert err(os.open, f / "x", os.O_CREAT | os.O_WRONLY, 0o644) == errno.ENOTDIR
    assert err(os.open, d / "missing", os.O_RDONLY) == errno.ENOENT
    assert err(os.open, d / "missing" / "x", os.O_CREAT | os.O_WRONLY, 0o644) == errno.ENOENT
    assert err(os.open, d / LONG_NAME, os.O_RDONLY) == errno.ENAMETOOLONG
    assert err(os.open, d / LONG_NAME, os.O_CREAT | os.O_WRONLY, 0o644) == errno.ENAMETOOLONG
    assert err(os.open, d / LONG_PATH, os.O_CREAT | os.O_WRONLY, 0o644) == errno.ENAMETOOLONG
    assert err(os.open, loop(d), os.O_RDONLY) == errno.ELOOP
    assert err(os.open, d / "loop1" / "x", os.O_CREAT | os.O_WRONLY, 0o644) == errno.ELOOP
    # permissions: root's 0644 file, nobody's 0 file, a group's 070 file
    assert as_user(d, _open, "f", os.O_RDONLY) == 0
    assert as_user(d, _open, "f", os.O_WRONLY) == errno.EACCES
    assert as_user(d, _open, "f", os.O_RDWR) == errno.EACCES
    assert as_user(d, _open, "f", os.O_RDONLY | os.O_TRUNC) == errno.EACCES
    assert f.read_bytes() == b"data"
    os.chmod(f, 0o600)
    assert as_user(d, _open, "f", os.O_RDONLY) == errno.EACCES
    os.chmod(f, 0o222)
    assert as_user(d, _open, "f", os.O_RDONLY) == errno.EACCES
    assert as_user(d, _open, "f", os.O_WRONLY) == 0
    os.chown(f, NOBODY, NOBODY)
    os.chmod(f, 0o077)  # the owner's bits decide for the owner, even when others may
    assert as_user(d, _open, "f", os.O_RDONLY) == errno.EACCES
    os.chown(f, 0, OTHER)
    os.chmod(f, 0o070)
    assert as_user(d, _open, "f", os.O_RDWR, groups=(OTHER,)) == 0
    assert as_user(d, _open, "f", os.O_RDWR) == errno.EACCES
    root_only = d / "root-only"
    root_only.mkdir(mode=0o755)
    write(root_only / "g", b"", perm=0o666)
    os.chmod(root_only / "g", 0o666)
    assert as_user(d, _create, "root-only/new", 0o644) == errno.EACCES  # no write permission on the directory
    assert as_user(d, _open, "root-only/g", os.O_RDWR) == 0
    os.chmod(root_only, 0o700)
    assert as_user(d, _open, "root-only/g", os.O_RDWR) == errno.EACCES  # no search permission
    assert not os.path.exists(root_only / "new")


def test_truncating_open_of_an_empty_file_moves_its_times(gw):
    d = workdir(gw.mnt)
    f = d / "stamp"
    write(f, b"")  # what `: > stamp` in a Makefile relies on to mark a step done
    _, mtime, ctime = times(f)
    tick()
    os.close(os.open(f, os.O_WRONLY | os.O_TRUNC))
    _, mtime2, ctime2 = times(f)
    assert mtime2 > mtime and ctime2 > ctime
