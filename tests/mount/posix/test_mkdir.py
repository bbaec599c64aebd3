"""mkdir(2) through the mount, after pjdfstest's mkdir/ category: the mode given less the
umask (sticky bit kept), the creator's ids, fresh times, the parent's mtime and ctime
moved, every refusal's errno with the parent untouched, and the group (and S_ISGID) a
set-group-ID directory hands down to what is created in it."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from tests.mount.posix.util import (LONG_NAME, LONG_PATH, MAX_NAME, NOBODY, OTHER, as_user, err, loop, mode,
                                    owner, tick, times, workdir, write)

pytestmark = pytest.mark.mount


def test_mkdir_mode_owner_and_times(gw):
    d = workdir(gw.mnt)
    _, dmtime, dctime = times(d)
    tick()
    os.mkdir(d / "a", 0o755)
    st = os.lstat(d / "a")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755 and (st.st_uid, st.st_gid) == (0, 0)
    assert min(st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns) > dctime
    _, mtime2, ctime2 = times(d)
    assert mtime2 > dmtime and ctime2 > dctime
    assert os.listdir(d / "a") == []
    os.mkdir(d / "sticky", 0o1777)  # root's umask 022
    assert mode(d / "sticky") == 0o1755
    assert as_user(d, os.mkdir, "b", 0o777, umask=0o077) == 0
    assert (mode(d / "b"), owner(d / "b")) == (0o700, (NOBODY, NOBODY))
    assert as_user(d, os.mkdir, "c", 0o345, umask=0o070, gid=OTHER) == 0
    assert (mode(d / "c"), owner(d / "c")) == (0o305, (NOBODY, OTHER))
    assert as_user(d, os.mkdir, "e", 0o777, umask=0) == 0
    assert mode(d / "e") == 0o777
    os.mkdir(d / MAX_NAME)
    assert os.path.isdir(d / MAX_NAME)


def test_mkdir_refusals_and_their_errno(gw):
    d = workdir(gw.mnt)
    f = d / "f"
    write(f, b"")
    (d / "dir").mkdir()
    os.symlink("f", d / "link")
    os.symlink("nowhere", d / "dangling")
    root_only = d / "root-only"
    root_only.mkdir(mode=0o755)
    closed = d / "closed"
    closed.mkdir(mode=0o700)
    lp = loop(d)
    _, mtime, ctime = times(d)
    tick()
    for name in ("f", "dir", "link", "dangling"):
        assert err(os.mkdir, d / name) == errno.EEXIST, name
    assert err(os.mkdir, f / "x") == errno.ENOTDIR
    assert err(os.mkdir, d / "missing" / "x") == errno.ENOENT
    assert err(os.mkdir, d / LONG_NAME) == errno.ENAMETOOLONG
    assert err(os.mkdir, d / LONG_PATH) == errno.ENAMETOOLONG
    assert err(os.mkdir, lp / "x") == errno.ELOOP
    assert as_user(d, os.mkdir, "root-only/x") == errno.EACCES  # no write permission
    assert as_user(d, os.mkdir, "closed/x") == errno.EACCES  # no search permission
    assert times(d)[1:] == (mtime, ctime)  # nothing created, parent untouched
    assert sorted(os.listdir(d)) == ["closed", "dangling", "dir", "f", "link", "loop1", "loop2", "root-only"]
    assert os.listdir(root_only) == [] and os.listdir(closed) == []


def test_entries_made_in_a_setgid_directory_take_its_group(gw):
    d = workdir(gw.mnt)
    shared = d / "shared"
    shared.mkdir()
    os.chown(shared, 0, 4242)
    os.chmod(shared, 0o2777)
    assert as_user(d, os.mkdir, "shared/sub", 0o755) == 0
    assert owner(shared / "sub") == (NOBODY, 4242)
    assert mode(shared / "sub") == 0o2755  # subdirectories inherit S_ISGID
    assert as_user(d, lambda: os.close(os.open("shared/f", os.O_CREAT | os.O_WRONLY, 0o644))) == 0
    assert (owner(shared / "f"), mode(shared / "f")) == ((NOBODY, 4242), 0o644)
    assert as_user(d, os.symlink, "f", "shared/link") == 0
    assert owner(shared / "link") == (NOBODY, 4242)
