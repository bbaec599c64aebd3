"""Helpers of the POSIX conformance suite: errno of a call, calls as another user in a
forked child, utimensat/renameat2 through ctypes, a wait for the clock to move.

A child drops root after ``chdir`` into the test's directory: pytest's base temporary
directory is 0700 (root's), so another user could not walk to the mount by its path;
every path a child uses is relative to that directory.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import stat
import time
from pathlib import Path
from typing import Any, Callable

NOBODY = 65534  # uid and gid of nobody/nogroup
OTHER = 65533  # a uid and gid no test process belongs to (unless given as a supplementary group)
LONG_NAME = "n" * 256  # one byte over NAME_MAX
MAX_NAME = "m" * 255
LONG_PATH = "/".join(["d" * 200] * 21)  # over PATH_MAX (4096) in all

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE = 1

_libc = ctypes.CDLL(None, use_errno=True)


def err(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """The errno ``fn(*args)`` fails with, 0 if it succeeds."""
    try:
        fn(*args, **kwargs)
    except OSError as exc:
        return exc.errno or -1
    return 0


def as_user(cwd: Path, fn: Callable[..., Any], *args: Any, uid: int = NOBODY, gid: int = NOBODY,
            groups: tuple[int, ...] = (), umask: int = 0o022) -> Any:
    """``fn(*args)`` in a forked child that enters ``cwd``, then runs as ``uid``/``gid``
    (supplementary ``groups``): its return value, or the errno (an int) of the OSError it
    raised -- so ``fn`` returns None or a non-int when it succeeds.  Any other exception
    in the child fails the test."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            try:
                os.chdir(cwd)
                os.setgroups(list(groups))
                os.setgid(gid)
                os.setuid(uid)
                os.umask(umask)
                result: tuple[str, Any] = ("ok", fn(*args))
            except OSError as exc:
                result = ("errno", exc.errno)
            except BaseException as exc:  # noqa: BLE001 -- reported to the parent
                result = ("error", repr(exc))
            try:
                data = pickle.dumps(result)
            except Exception as exc:  # noqa: BLE001
                data = pickle.dumps(("error", f"unpicklable result: {exc!r}"))
            os.write(w, data)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    assert kind != "error", f"child as uid {uid} raised {value}"
    if kind == "ok":
        assert not isinstance(value, int), "fn's result would read as an errno"
        return value if value is not None else 0
    return value


def utimensat(path: str | Path, atime: int, mtime: int, *, follow_symlinks: bool = True) -> None:
    """utimensat(2) with nanosecond times; UTIME_NOW or UTIME_OMIT as either time picks
    that meaning (os.utime offers neither UTIME_OMIT nor a mix)."""
    times = (_Timespec * 2)(_timespec(atime), _timespec(mtime))
    flags = 0 if follow_symlinks else AT_SYMLINK_NOFOLLOW
    if _libc.utimensat(AT_FDCWD, os.fsencode(path), times, flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))


def renameat2(old: str | Path, new: str | Path, flags: int) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(old))


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _timespec(ns: int) -> _Timespec:
    if ns in (UTIME_NOW, UTIME_OMIT):
        return _Timespec(0, ns)
    return _Timespec(*divmod(ns, 1_000_000_000))


def tick() -> None:
    """Let the clock move past the last change: ext4 stamps ctime from the kernel's coarse
    clock (a jiffy, up to 10 ms); 20 ms is enough, and no test asserts on durations."""
    time.sleep(0.02)


def times(path: str | Path, *, follow_symlinks: bool = False) -> tuple[int, int, int]:
    """(atime, mtime, ctime) in ns."""
    st = os.stat(path, follow_symlinks=follow_symlinks)
    return st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns


def ctime(path: str | Path, *, follow_symlinks: bool = False) -> int:
    return os.stat(path, follow_symlinks=follow_symlinks).st_ctime_ns


def mode(path: str | Path, *, follow_symlinks: bool = False) -> int:
    return stat.S_IMODE(os.stat(path, follow_symlinks=follow_symlinks).st_mode)


def owner(path: str | Path, *, follow_symlinks: bool = False) -> tuple[int, int]:
    st = os.stat(path, follow_symlinks=follow_symlinks)
    return st.st_uid, st.st_gid


def workdir(root: Path, name: str = "t", perm: int = 0o777) -> Path:
    """A fresh directory for one test (0777 by default, so other users may create in it)."""
    d = root / name
    d.mkdir()
    os.chmod(d, perm)
    return d


def write(path: str | Path, data: bytes, *, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
          perm: int = 0o644) -> None:
    fd = os.open(path, flags, perm)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def file_dir_and_link(d: Path) -> tuple[Path, Path, Path, dict[Path, int]]:
    """A file ``f``, a directory ``sub`` and a symlink ``link`` to ``f`` in ``d``, and their
    ctimes, after which the clock has moved on (``tick``)."""
    f, sub, link = d / "f", d / "sub", d / "link"
    write(f, b"x")
    sub.mkdir()
    os.symlink("f", link)
    before = {p: ctime(p) for p in (f, sub, link)}
    tick()
    return f, sub, link, before


def loop(d: Path) -> Path:
    """A pair of symlinks pointing at each other; a path through it fails with ELOOP."""
    os.symlink("loop2", d / "loop1")
    os.symlink("loop1", d / "loop2")
    return d / "loop1"

