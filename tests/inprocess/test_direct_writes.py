"""Writes through a direct-I/O handle (the FUSE adapter gives one to write-only opens) do what
the kernel does before a cached write and skips for those: set-id bits cleared unless root
writes, the file capability removed whoever writes, and the inode reported for the kernel's
attribute cache.  Through the real mount: ``tests/mount/test_direct_writes.py``."""

from __future__ import annotations

import errno
import os

import pytest

from cloudgw.filesystem import FsError
from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import running

CAP = bytes.fromhex("0100000200040000000000000000000000000000")  # v2: CAP_NET_BIND_SERVICE


async def _write_through(h, ino: int, *, uid: int, direct: bool) -> None:  # noqa: ANN001
    handle = await h.fs.data.open(ino, os.O_WRONLY, uid, direct=direct)
    try:
        await h.fs.data.write(handle.fh, 0, b"y")
    finally:
        h.fs.data.release(handle.fh)


def _capability(h, ino: int) -> bytes | None:  # noqa: ANN001
    try:
        return h.fs.ns.getxattr(ino, "security.capability")
    except FsError as exc:
        assert exc.errno == errno.ENODATA
        return None


@pytest.mark.parametrize("bits, after", [(0o6755, 0o755), (0o4755, 0o755), (0o2755, 0o755), (0o2745, 0o2745)])
async def test_a_direct_write_by_another_user_clears_set_id_bits(dirs, bits, after):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        f = await h.write_file("tool", b"x")
        h.fs.ns.setattr(f.ino, mode=bits)
        await _write_through(h, f.ino, uid=1000, direct=True)
        assert f.mode == after  # set-group-ID without group execute stays, as FUSE's setattr leaves it
        assert h.fs.data.privileges_dropped == ({f.ino} if after != bits else set())


async def test_root_keeps_set_id_bits_and_cached_handles_leave_them_to_the_kernel(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        f = await h.write_file("tool", b"x")
        h.fs.ns.setattr(f.ino, mode=0o6755)
        await _write_through(h, f.ino, uid=0, direct=True)
        await _write_through(h, f.ino, uid=1000, direct=False)
        assert f.mode == 0o6755
        assert not h.fs.data.privileges_dropped


async def test_a_direct_write_removes_the_file_capability_even_roots(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        f = await h.write_file("tool", b"x")
        plain = await h.write_file("plain", b"x")
        h.fs.ns.setxattr(f.ino, "security.capability", CAP)
        h.fs.ns.setxattr(plain.ino, "security.other", b"kept")  # another security.* attribute is no capability
        assert h.fs.ns.holds_capability(f.ino) and not h.fs.ns.holds_capability(plain.ino)
        await _write_through(h, plain.ino, uid=0, direct=True)
        assert h.fs.ns.getxattr(plain.ino, "security.other") == b"kept"
        await _write_through(h, f.ino, uid=0, direct=False)
        assert _capability(h, f.ino) == CAP  # a cached handle: the kernel removes it (REMOVEXATTR)
        await _write_through(h, f.ino, uid=0, direct=True)
        assert _capability(h, f.ino) is None and not h.fs.ns.holds_capability(f.ino)
        assert h.fs.data.privileges_dropped == {f.ino}
        h.fs.ns.setxattr(f.ino, "security.capability", CAP)  # set again while known: asked again
        assert h.fs.ns.holds_capability(f.ino)
