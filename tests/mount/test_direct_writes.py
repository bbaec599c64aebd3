"""Write-only opens get FUSE direct I/O (one request per write(2): no GETXATTR
``security.capability`` before each): what that must not change, through the real mount.

Other handles' reads and mmaps see the bytes at once (kernel 6.x drops the written range
from the page cache), O_APPEND lands at the end, the data reaches the remote; the daemon
does what the kernel then leaves out: set-id bits cleared by another user's write (and the
kernel's cached mode with them, which exec and permission checks use), the file capability
removed by anyone's write.  The POSIX suite's chmod/12.t (``_append``, O_WRONLY) covers
the plain set-id case too.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
from pathlib import Path

import pytest

from tests.mount.posix.util import NOBODY, as_user, mode, workdir, write

pytestmark = pytest.mark.mount

CAP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)  # v2, effective: CAP_NET_BIND_SERVICE
_libc = ctypes.CDLL(None, use_errno=True)


def cached_mode(path: Path) -> int:
    """The permission bits the kernel holds for ``path``, without asking the daemon
    (statx with AT_STATX_DONT_SYNC)."""
    buf = ctypes.create_string_buffer(256)
    if _libc.statx(-100, os.fsencode(path), 0x4000, 0x2, buf) != 0:  # AT_FDCWD, AT_STATX_DONT_SYNC, STATX_MODE
        raise OSError(ctypes.get_errno(), "statx")
    return struct.unpack_from("<H", buf.raw, 28)[0] & 0o7777  # stx_mode


def _pwrite(name: str, data: bytes, offset: int) -> None:
    fd = os.open(name, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def test_write_only_handle_is_seen_by_open_readers_and_mmaps(file_gw):
    f = file_gw.mnt / "shared.bin"
    write(f, b"a" * 20000)
    r = os.open(f, os.O_RDONLY)
    try:
        view = mmap.mmap(r, 20000, prot=mmap.PROT_READ)
        assert os.pread(r, 20000, 0) == b"a" * 20000 and view[8190:8194] == b"aaaa"  # both in the page cache now
        w = os.open(f, os.O_WRONLY)
        try:
            assert os.pwrite(w, b"BBBB", 8190) == 4  # across a page boundary
            assert os.pread(r, 8, 8188) == b"aaBBBBaa"
            assert view[8188:8196] == b"aaBBBBaa"
            os.pwrite(w, b"CC", 19999)  # the last byte and one past the end
            assert os.fstat(r).st_size == 20001
            assert os.pread(r, 10, 19995) == b"aaaaCC" and view[19995:20000] == b"aaaaC"
        finally:
            os.close(w)
        a = os.open(f, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(a, b"END")
        finally:
            os.close(a)
        assert os.pread(r, 10, 19995) == b"aaaaCCEND"
        view.close()
    finally:
        os.close(r)
    expected = b"a" * 8190 + b"BBBB" + b"a" * (19999 - 8194) + b"CCEND"
    assert f.read_bytes() == expected  # a new open (keep_cache) too
    file_gw.sync()
    file_gw.umount()
    file_gw.mount()
    assert f.read_bytes() == expected


def test_write_only_writes_clear_set_id_bits_and_the_capability(file_gw):
    d = workdir(file_gw.mnt)
    f = d / "tool"
    write(f, b"x")
    os.chmod(f, 0o6777)
    assert cached_mode(f) == 0o6777
    assert as_user(d, _pwrite, "tool", b"y", 0) == 0
    os.access(f, os.X_OK)  # a permission check: refetches the mode only if the kernel was told it changed
    assert cached_mode(f) == 0o777, "the kernel still holds the set-id bits (exec would honour them)"
    assert mode(f) == 0o777
    fd = os.open(f, os.O_WRONLY)  # a handle opened before the bits are set again: each write checks
    try:
        os.chmod(f, 0o4777)
        os.write(fd, b"root")  # root (CAP_FSETID) keeps them
        assert mode(f) == 0o4777
        os.fchown(fd, NOBODY, NOBODY)
        os.chmod(f, 0o4777)
    finally:
        os.close(fd)
    assert as_user(d, _pwrite, "tool", b"z", 1) == 0  # the owner, not root
    assert mode(f) == 0o777
    os.setxattr(f, "security.capability", CAP)
    _pwrite(str(f), b"w", 0)  # a capability goes whoever writes
    with pytest.raises(OSError) as exc:
        os.getxattr(f, "security.capability")
    assert exc.value.errno == errno.ENODATA
    assert f.read_bytes() == b"wzot"
