"""chmod(2) through the mount, after pjdfstest's chmod/ category: permission bits set
(with set-id and sticky bits), symlinks followed, ctime moved by a change and kept by a
refused one, the errno of every refusal, S_ISGID dropped for a non-member, and set-id
bits cleared when another user writes the file (chmod/12.t)."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from tests.mount.posix.util import (LONG_NAME, LONG_PATH, NOBODY, OTHER, as_user, ctime, err, file_dir_and_link, loop,
                                    mode, tick, workdir, write)

pytestmark = pytest.mark.mount


def test_chmod_sets_bits_follows_symlinks_and_moves_ctime(gw):
    d = workdir(gw.mnt)
    f, sub, link, before = file_dir_and_link(d)
    os.chmod(f, 0o111)
    assert mode(f) == 0o111 and stat.S_ISREG(os.stat(f).st_mode)
    os.chmod(sub, 0o753)
    assert mode(sub) == 0o753 and stat.S_ISDIR(os.stat(sub).st_mode)
    assert ctime(f) > before[f] and ctime(sub) > before[sub]
    for bits in (0o4755, 0o2755, 0o1755, 0o7777, 0o6555, 0):  # root may set every bit on a file
        os.chmod(f, bits)
        assert mode(f) == bits
    os.chmod(sub, 0o1777)
    assert mode(sub) == 0o1777
    os.chmod(link, 0o640)  # through the link: the target changes, the link stays 0777
    assert mode(f) == 0o640
    assert mode(link) == 0o777 and ctime(link) == before[link]
    os.chown(f, NOBODY, OTHER)
    assert as_user(d, os.chmod, "f", 0o2755) == 0
    assert mode(f) == 0o755  # nobody is not in group OTHER: S_ISGID silently dropped
    assert as_user(d, os.chmod, "f", 0o2755, groups=(OTHER,)) == 0
    assert mode(f) == 0o2755
    assert as_user(d, os.chmod, "f", 0o4755) == 0  # S_ISUID: the owner may
    assert mode(f) == 0o4755


def _append(name: str) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"more")
    finally:
        os.close(fd)


def test_chmod_refusals_and_set_id_bits_cleared_by_other_writers(gw):
    d = workdir(gw.mnt)
    f = d / "f"
    write(f, b"x")
    assert err(os.chmod, f / "x", 0o644) == errno.ENOTDIR
    assert err(os.chmod, d / "missing", 0o644) == errno.ENOENT
    assert err(os.chmod, d / LONG_NAME, 0o644) == errno.ENAMETOOLONG
    assert err(os.chmod, d / LONG_PATH, 0o644) == errno.ENAMETOOLONG
    assert err(os.chmod, loop(d), 0o644) == errno.ELOOP
    closed = d / "closed"
    closed.mkdir(mode=0o700)
    write(closed / "g", b"")
    os.chown(closed / "g", NOBODY, NOBODY)  # nobody's file, in a directory nobody cannot search
    assert as_user(d, os.chmod, "closed/g", 0o600) == errno.EACCES
    c = ctime(f)
    tick()
    assert as_user(d, os.chmod, "f", 0o777) == errno.EPERM  # not the owner
    assert as_user(d, os.chmod, "f", 0o644, groups=(0,)) == errno.EPERM  # group membership is not ownership
    assert mode(f) == 0o644 and ctime(f) == c  # a refused chmod changes nothing
    os.chown(f, NOBODY, NOBODY)
    assert as_user(d, os.chmod, "f", 0o600) == 0
    assert mode(f) == 0o600
    for bits in (0o4777, 0o2777, 0o6777):  # chmod/12.t: another user's write clears set-id bits
        f = d / f"f{bits:o}"
        write(f, b"x")
        os.chmod(f, bits)
        assert as_user(d, _append, f.name) == 0
        assert mode(f) == 0o777, f"{bits:o} after a write by nobody: {mode(f):o}"
    root_written = d / "root"
    write(root_written, b"x")
    os.chmod(root_written, 0o6777)
    _append(str(root_written))  # root (CAP_FSETID) keeps them
    assert mode(root_written) == 0o6777
