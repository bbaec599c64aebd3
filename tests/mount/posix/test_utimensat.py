"""utimensat(2) through the mount, after pjdfstest's utimensat/ category: explicit times
kept to the nanosecond on files, directories and (not followed) symlinks, past 2038 and
before 1980, ctime moved; UTIME_NOW and UTIME_OMIT in every combination; who may: the
owner or root for explicit times (else EPERM), anyone with write permission for
UTIME_NOW (else EACCES), a refusal leaving every time as it was."""

from __future__ import annotations

import errno
import os
import time

import pytest

from tests.mount.posix.util import (NOBODY, UTIME_NOW, UTIME_OMIT, as_user, ctime, err, file_dir_and_link, tick, times,
                                    utimensat, workdir, write)

pytestmark = pytest.mark.mount

T1 = 1_900_000_000_123_456_789  # 2030, odd nanoseconds
T2 = 1_950_000_000_987_654_321
Y2038 = 2**31 * 10**9  # just past the signed 32-bit seconds
Y2106 = 2**32 * 10**9
T1973 = 100_000_000_100_000_000  # pjdfstest's subsecond check: 0.1 s
T1976 = 200_000_000_200_000_000


def _near_now(ns: int) -> bool:
    """Set to the current time (a generous window: no test asserts on durations)."""
    return abs(ns - time.time_ns()) < 5 * 10**9


def test_explicit_nanosecond_now_and_omitted_times(gw):
    d = workdir(gw.mnt)
    f, sub, link, before = file_dir_and_link(d)
    for p in (f, sub):
        utimensat(p, T1, T2)
        assert times(p)[:2] == (T1, T2), p
    assert ctime(f) > before[f] and ctime(sub) > before[sub]
    for a, m in ((Y2038, Y2106), (T1973, T1976), (0, 1)):
        os.utime(f, ns=(a, m))
        assert times(f)[:2] == (a, m)
    os.utime(link, ns=(T2, T1))  # follows the link
    assert times(f)[:2] == (T2, T1) and ctime(link) == before[link]
    utimensat(link, T1, T2, follow_symlinks=False)  # the link itself
    assert times(link)[:2] == (T1, T2) and times(f)[:2] == (T2, T1) and ctime(link) > before[link]
    # UTIME_NOW and UTIME_OMIT, in every combination
    utimensat(f, T1, T2)
    c = ctime(f)
    tick()
    utimensat(f, UTIME_OMIT, UTIME_OMIT)  # nothing at all, not even ctime
    assert times(f) == (T1, T2, c)
    utimensat(f, UTIME_OMIT, Y2038)
    a, m, c2 = times(f)
    assert (a, m) == (T1, Y2038) and c2 > c
    utimensat(f, Y2106, UTIME_OMIT)
    assert times(f)[:2] == (Y2106, Y2038)
    utimensat(f, UTIME_NOW, UTIME_OMIT)
    a, m, _ = times(f)
    assert _near_now(a) and m == Y2038
    utimensat(f, T1, UTIME_NOW)
    a, m, _ = times(f)
    assert a == T1 and _near_now(m)
    utimensat(f, T1, T2)
    utimensat(f, UTIME_NOW, UTIME_NOW)
    a, m, c3 = times(f)
    assert _near_now(a) and _near_now(m) and c3 >= m
    utimensat(f, T1, T2)
    os.utime(f)  # times=None: both now
    a, m, _ = times(f)
    assert _near_now(a) and _near_now(m)


def test_who_may_set_times(gw):
    d = workdir(gw.mnt)
    f = d / "f"
    write(f, b"x")  # root's, 0644
    utimensat(f, T1, T2)
    before = times(f)
    tick()
    assert as_user(d, utimensat, "f", UTIME_NOW, UTIME_NOW) == errno.EACCES
    assert as_user(d, utimensat, "f", T2, T1) == errno.EPERM
    assert as_user(d, utimensat, "f", UTIME_NOW, UTIME_OMIT) == errno.EPERM  # "now" for both, or it is explicit
    assert times(f) == before  # a refusal changes nothing
    os.chown(f, NOBODY, NOBODY)
    os.chmod(f, 0o444)  # the owner may, without write permission
    assert as_user(d, utimensat, "f", T2, T1) == 0
    assert times(f)[:2] == (T2, T1)
    assert as_user(d, utimensat, "f", UTIME_NOW, UTIME_NOW) == 0
    os.chown(f, 0, 0)
    os.chmod(f, 0o666)  # write permission: UTIME_NOW only
    utimensat(f, T1, T2)
    assert as_user(d, utimensat, "f", UTIME_NOW, UTIME_NOW) == 0
    assert times(f)[:2] != (T1, T2)
    assert as_user(d, utimensat, "f", T1, T2) == errno.EPERM
    assert as_user(d, utimensat, "f", UTIME_OMIT, T2) == errno.EPERM
    assert err(utimensat, d / "missing", T1, T2) == errno.ENOENT
