"""chown(2)/lchown(2) through the mount, after pjdfstest's chown/ category: root gives
any owner, symlinks followed (lchown changes the link), -1 keeps an id, a file's owner
may change its group to one of its own groups and nothing else, ctime moved by a change
and kept by a refusal, and set-id bits cleared on a file that changes owner or group."""

from __future__ import annotations

import errno
import os

import pytest

from tests.mount.posix.util import (LONG_NAME, LONG_PATH, NOBODY, OTHER, as_user, ctime, err, file_dir_and_link, loop,
                                    mode, owner, tick, workdir, write)

pytestmark = pytest.mark.mount


def test_root_changes_owners_follows_symlinks_moves_ctime_and_clears_set_id_bits(gw):
    d = workdir(gw.mnt)
    f, sub, link, before = file_dir_and_link(d)
    os.chown(f, 123, 456)
    assert owner(f) == (123, 456)
    os.chown(sub, 123, 456)
    assert owner(sub) == (123, 456)
    os.chown(link, 65533, 65532)  # follows the link
    assert owner(f) == (65533, 65532) and owner(link) == (0, 0) and ctime(link) == before[link]
    os.lchown(link, 77, 88)  # the link itself
    assert owner(link) == (77, 88) and owner(f) == (65533, 65532)
    assert all(ctime(p) > c for p, c in before.items())
    os.chown(f, -1, 99)
    assert owner(f) == (65533, 99)
    os.chown(f, 98, -1)
    assert owner(f) == (98, 99)
    os.chown(f, -1, -1)
    assert owner(f) == (98, 99)
    # set-id bits go when a file changes owner or group
    os.chown(f, NOBODY, OTHER)
    os.chmod(f, 0o6555)
    os.chown(f, 65532, 65531)  # even root's chown clears them (Linux)
    assert (mode(f), owner(f)) == (0o555, (65532, 65531))
    os.chown(f, NOBODY, OTHER)
    os.chmod(f, 0o6555)
    assert as_user(d, os.chown, "f", NOBODY, 65532, groups=(65532,)) == 0  # the owner's chgrp too
    assert (mode(f), owner(f)) == (0o555, (NOBODY, 65532))
    os.chmod(sub, 0o6755)
    os.chown(sub, 0, 0)  # directories keep them (Linux)
    assert mode(sub) == 0o6755


def test_who_may_chown_and_the_errno_of_refusals(gw):
    d = workdir(gw.mnt)
    f, g = d / "f", d / "g"
    write(f, b"x")
    write(g, b"x")
    os.chown(f, NOBODY, OTHER)
    groups = (65532, 65531)  # the owner may give the file to one of its own groups, nothing else
    assert as_user(d, os.chown, "f", -1, 65532, groups=groups) == 0
    assert owner(f) == (NOBODY, 65532)
    assert as_user(d, os.chown, "f", NOBODY, 65531, groups=groups) == 0
    assert owner(f) == (NOBODY, 65531)
    c = ctime(f)
    tick()
    assert as_user(d, os.chown, "f", -1, 65530, groups=groups) == errno.EPERM  # not a member
    assert as_user(d, os.chown, "f", 0, -1, groups=groups) == errno.EPERM  # giving it away
    assert as_user(d, os.chown, "f", OTHER, 65531, groups=groups) == errno.EPERM
    assert owner(f) == (NOBODY, 65531) and ctime(f) == c
    # another user's file: only "no change" is allowed
    assert as_user(d, os.chown, "g", -1, -1) == 0
    assert as_user(d, os.chown, "g", NOBODY, -1) == errno.EPERM
    assert as_user(d, os.chown, "g", -1, NOBODY) == errno.EPERM
    assert as_user(d, os.chown, "g", NOBODY, NOBODY) == errno.EPERM
    assert owner(g) == (0, 0)
    assert err(os.chown, g / "x", 1, 1) == errno.ENOTDIR
    assert err(os.chown, d / "missing", 1, 1) == errno.ENOENT
    assert err(os.lchown, d / "missing", 1, 1) == errno.ENOENT
    assert err(os.chown, d / LONG_NAME, 1, 1) == errno.ENAMETOOLONG
    assert err(os.chown, d / LONG_PATH, 1, 1) == errno.ENAMETOOLONG
    assert err(os.chown, loop(d), 1, 1) == errno.ELOOP
    assert err(os.lchown, d / "loop1", 1, 1) == 0  # the link itself: no loop to follow
    closed = d / "closed"
    closed.mkdir(mode=0o700)
    write(closed / "h", b"")
    os.chown(closed / "h", NOBODY, NOBODY)
    assert as_user(d, os.chown, "closed/h", -1, NOBODY) == errno.EACCES  # no search permission
