"""truncate(2)/ftruncate(2) through the mount, after pjdfstest's truncate/ and ftruncate/
categories: shrinking keeps the head, growing reads back zeros, mtime and ctime move (to
the same size too, as Linux does), symlinks are followed; every refusal's errno with the
file untouched; set-id bits cleared when another user truncates (truncate(2) or
open(O_TRUNC))."""

from __future__ import annotations

import errno
import os

import pytest

from tests.mount.posix.util import (LONG_NAME, LONG_PATH, NOBODY, as_user, err, loop, mode, tick, times, workdir,
                                    write)

pytestmark = pytest.mark.mount


def test_truncate_resizes_and_moves_times(gw):
    d = workdir(gw.mnt)
    f = d / "f"
    write(f, b"abcdef")
    os.symlink("f", d / "link")
    _, mtime, ctime = times(f)
    tick()
    os.truncate(f, 3)
    assert f.read_bytes() == b"abc"
    _, mtime2, ctime2 = times(f)
    assert mtime2 > mtime and ctime2 > ctime
    os.truncate(d / "link", 10)  # follows the link
    assert f.read_bytes() == b"abc" + b"\0" * 7 and os.lstat(d / "link").st_size == 1
    big = (1 << 20) + 1
    os.truncate(f, big)
    with open(f, "rb") as fh:
        fh.seek(big - 5)
        assert fh.read() == b"\0" * 5
    fd = os.open(f, os.O_RDWR)
    os.ftruncate(fd, 1)
    assert os.fstat(fd).st_size == 1 and os.pread(fd, 10, 0) == b"a"
    os.pwrite(fd, b"Z", 4)  # writing past the end leaves a hole of zeros
    assert os.pread(fd, 10, 0) == b"a\0\0\0Z"
    os.close(fd)
    _, mtime3, ctime3 = times(f)
    tick()
    os.truncate(f, 5)  # the same size
    _, mtime4, ctime4 = times(f)
    assert mtime4 > mtime3 and ctime4 > ctime3 and f.read_bytes() == b"a\0\0\0Z"


def test_truncate_refusals_and_set_id_bits_cleared_by_other_users(gw):
    d = workdir(gw.mnt)
    f = d / "f"
    write(f, b"data")
    (d / "dir").mkdir()
    before = times(f)
    tick()
    assert err(os.truncate, d / "dir", 0) == errno.EISDIR
    assert err(os.truncate, f, -1) == errno.EINVAL
    assert err(os.truncate, f / "x", 0) == errno.ENOTDIR
    assert err(os.truncate, d / "missing", 0) == errno.ENOENT
    assert err(os.truncate, d / LONG_NAME, 0) == errno.ENAMETOOLONG
    assert err(os.truncate, d / LONG_PATH, 0) == errno.ENAMETOOLONG
    assert err(os.truncate, loop(d), 0) == errno.ELOOP
    fd = os.open(f, os.O_RDONLY)
    assert err(os.ftruncate, fd, 0) == errno.EINVAL  # Linux: not open for writing
    os.close(fd)
    fd = os.open(f, os.O_RDWR)
    assert err(os.ftruncate, fd, -1) == errno.EINVAL
    os.close(fd)
    assert as_user(d, os.truncate, "f", 0) == errno.EACCES  # root's 0644 file
    assert f.read_bytes() == b"data" and times(f)[1:] == before[1:]
    os.chown(f, NOBODY, NOBODY)
    os.chmod(f, 0o444)
    assert as_user(d, os.truncate, "f", 0) == errno.EACCES  # the owner, without write permission
    os.chown(f, 0, 0)
    os.chmod(f, 0o666)
    assert as_user(d, os.truncate, "f", 2) == 0  # anyone with write permission
    assert f.read_bytes() == b"da"
    os.chmod(f, 0o6777)
    assert as_user(d, os.truncate, "f", 1) == 0  # another user's truncate clears set-id bits
    assert mode(f) == 0o777


def test_truncating_open_by_another_user_clears_setuid_and_setgid(gw):
    d = workdir(gw.mnt)
    f = d / "f"
    write(f, b"data")
    os.chmod(f, 0o6777)
    assert as_user(d, lambda: os.close(os.open("f", os.O_WRONLY | os.O_TRUNC))) == 0
    assert os.path.getsize(f) == 0
    assert mode(f) == 0o777
