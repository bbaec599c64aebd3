"""symlink(2) through the mount, after pjdfstest's symlink/ category: a link holds its
target byte for byte (relative, absolute, dangling, up to PATH_MAX - 1 bytes), lstat sees
the link (0777, size = target length, the creator's ids), stat and open follow it, the
parent's times move; every refusal's errno (EEXIST for any existing name, a target of
PATH_MAX bytes, loops), with the parent untouched."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from tests.mount.posix.util import (LONG_NAME, LONG_PATH, NOBODY, as_user, err, loop, owner, tick, times, workdir,
                                    write)

pytestmark = pytest.mark.mount


def test_symlink_holds_its_target_and_moves_parent_times(gw):
    d = workdir(gw.mnt)
    write(d / "f", b"data")
    _, mtime, ctime = times(d)
    tick()
    os.symlink("f", d / "link")
    st = os.lstat(d / "link")
    assert stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o777 and st.st_size == 1
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert min(st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns) > ctime
    assert os.readlink(d / "link") == "f"
    assert os.stat(d / "link").st_ino == os.stat(d / "f").st_ino and (d / "link").read_bytes() == b"data"
    _, mtime2, ctime2 = times(d)
    assert mtime2 > mtime and ctime2 > ctime
    targets = {
        "dangling": "nowhere",
        "absolute": str(d / "f"),
        "up": "../t/./f",
        "odd": "ä b/../\t\x01 :*?<>|\\",
        "long": "/".join(["x" * 254] * 16)[:4095],  # PATH_MAX - 1 bytes
    }
    for name, target in targets.items():
        os.symlink(target, d / name)
    for name, target in targets.items():
        assert os.readlink(d / name) == target, name
        assert os.lstat(d / name).st_size == len(target.encode()), name
    assert os.path.lexists(d / "dangling") and not os.path.exists(d / "dangling")
    assert (d / "up").read_bytes() == b"data" and (d / "absolute").read_bytes() == b"data"
    assert as_user(d, os.symlink, "f", "nobodys") == 0
    assert owner(d / "nobodys") == (NOBODY, NOBODY)
    os.symlink("link", d / "chain")  # a link to a link
    assert (d / "chain").read_bytes() == b"data"


def test_symlink_refusals_and_their_errno(gw):
    d = workdir(gw.mnt)
    write(d / "f", b"")
    (d / "dir").mkdir()
    os.symlink("f", d / "link")
    ro = d / "ro"
    ro.mkdir(mode=0o755)
    closed = d / "closed"
    closed.mkdir(mode=0o700)
    lp = loop(d)
    _, mtime, ctime = times(d)
    tick()
    for name in ("f", "dir", "link", "loop1"):
        assert err(os.symlink, "x", d / name) == errno.EEXIST, name
    assert err(os.symlink, "x", d / "f" / "x") == errno.ENOTDIR
    assert err(os.symlink, "x", d / "missing" / "x") == errno.ENOENT
    assert err(os.symlink, "x", d / LONG_NAME) == errno.ENAMETOOLONG
    assert err(os.symlink, "x", d / LONG_PATH) == errno.ENAMETOOLONG
    assert err(os.symlink, "x" * 4096, d / "too-long") == errno.ENAMETOOLONG  # PATH_MAX bytes
    assert err(os.symlink, "x", lp / "x") == errno.ELOOP
    assert as_user(d, os.symlink, "x", "ro/x") == errno.EACCES
    assert as_user(d, os.symlink, "x", "closed/x") == errno.EACCES
    assert times(d)[1:] == (mtime, ctime)
    assert sorted(os.listdir(d)) == ["closed", "dir", "f", "link", "loop1", "loop2", "ro"]
    for i in range(41):  # Linux follows at most 40 links in one lookup
        os.symlink(f"c{i + 1}" if i < 40 else "f", d / f"c{i}")
    assert err(os.stat, d / "c0") == errno.ELOOP
    assert os.stat(d / "c1").st_ino == os.stat(d / "f").st_ino
    assert err(os.stat, lp) == errno.ELOOP and err(os.open, lp, os.O_RDONLY) == errno.ELOOP
