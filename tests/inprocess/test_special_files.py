"""Special files against changes made elsewhere and races with their own uploads (in-process,
file://): a marker is only ever replaced where it is still ours, a file that took a special
file's name elsewhere is kept, a chmod during the first upload is not lost, and a FIFO found
where a file was is never opened."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import trio

from cloudgw.errors import RemoteError, TransientRemoteError
from cloudgw.filesystem import acl
from cloudgw.metadata.model import ROOT_INO, FileState
from cloudgw.remotes.base import Kind
from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import running


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    """The file:// remote's directory."""
    (tmp_path / "cloud").mkdir()
    return tmp_path / "cloud"


@pytest.mark.allow_warnings("conflict: p became a file on the remote")
async def test_a_chmod_keeps_a_file_that_replaced_the_fifo_elsewhere(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        fifo = await h.fs.ns.mknod(ROOT_INO, "p", Kind.FIFO, 0o644, 0, 0, 0)
        await h.settle()
        assert stat.S_ISFIFO(os.lstat(cloud / "p").st_mode)
        os.unlink(cloud / "p")  # elsewhere, before this gateway polls: the FIFO becomes a file
        (cloud / "p").write_bytes(b"precious data")
        h.fs.ns.setattr(fifo.ino, mode=0o600)
        await h.settle()
        copies = [n for n in os.listdir(cloud) if n.startswith("p.conflict-")]
        assert len(copies) == 1 and (cloud / copies[0]).read_bytes() == b"precious data"
        assert stat.S_ISFIFO(os.lstat(cloud / "p").st_mode) and _mode(cloud / "p") == 0o600


@pytest.mark.allow_warnings("not deleting q on the remote: it was changed elsewhere")
async def test_a_file_that_replaced_the_fifo_elsewhere_comes_in_and_a_rename_leaves_it(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.fs.ns.mknod(ROOT_INO, "p", Kind.FIFO, 0o644, 0, 0, 0)
        await h.fs.ns.mknod(ROOT_INO, "q", Kind.FIFO, 0o644, 0, 0, 0)
        await h.settle()
        os.unlink(cloud / "p")
        (cloud / "p").write_bytes(b"precious data")
        await h.engine.poll_now()
        assert await h.read_file("p") == b"precious data"  # the poll shows what it is now
        os.unlink(cloud / "q")
        (cloud / "q").write_bytes(b"more data")
        await h.rename("q", "r")  # before a poll: the tombstone of the old name is at the FIFO's revision
        await h.settle()
        await h.engine.poll_now()
        assert (cloud / "q").read_bytes() == b"more data"
        assert stat.S_ISFIFO(os.lstat(cloud / "r").st_mode)


class GatedSymlinks(LocalRemote):
    """``symlink`` waits for ``gate`` once ``started`` is set: a chmod lands mid-upload."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.started, self.gate = trio.Event(), trio.Event()

    async def symlink(self, path: str, target: str):  # noqa: ANN201
        if not self.started.is_set():
            self.started.set()
            await self.gate.wait()
        return await super().symlink(path, target)


async def test_a_chmod_while_the_marker_is_first_made_is_not_lost(tmp_path: Path, cloud: Path):
    remote = GatedSymlinks(cloud)
    async with running(remote, tmp_path / "cache") as h:
        fifo = await h.fs.ns.mknod(ROOT_INO, "p", Kind.FIFO, 0o644, 0, 0, 0)
        await remote.started.wait()
        assert fifo.state is FileState.UPLOADING
        h.fs.ns.setattr(fifo.ino, mode=0o600)
        remote.gate.set()
        await h.settle()
        assert _mode(cloud / "p") == 0o600
        assert fifo.state is FileState.CLEAN and not fifo.needs_sync


class LostFirstReply(LocalRemote):
    """The first ``symlink`` is made, but its reply is lost (as a kill -9 before the commit)."""

    lost = False

    async def symlink(self, path: str, target: str):  # noqa: ANN201
        made = await super().symlink(path, target)
        if not self.lost:
            self.lost = True
            raise TransientRemoteError(f"symlink {path!r}: connection reset (test)")
        return made


@pytest.mark.allow_warnings("connection reset (test)")
async def test_a_marker_made_before_a_lost_reply_and_a_chmod_is_replaced(tmp_path: Path, cloud: Path):
    """The redo finds a marker of its type with the old mode: adopted as ours, then replaced."""
    async with running(LostFirstReply(cloud), tmp_path / "cache") as h:
        fifo = await h.fs.ns.mknod(ROOT_INO, "p", Kind.FIFO, 0o644, 0, 0, 0)
        with trio.fail_after(10):
            while not os.path.lexists(cloud / "p"):
                await trio.sleep(0.01)
        h.fs.ns.setattr(fifo.ino, mode=0o600)
        await h.settle()
        assert _mode(cloud / "p") == 0o600 and fifo.state is FileState.CLEAN


async def test_an_acl_that_changes_a_special_files_mode_rewrites_its_marker(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        h.fs.ns.acls = True
        fifo = await h.fs.ns.mknod(ROOT_INO, "p", Kind.FIFO, 0o644, 0, 0, 0)
        await h.settle()
        value = acl.encode([(acl.USER_OBJ, 6, 0), (acl.USER, 6, 2000), (acl.GROUP_OBJ, 4, 0), (acl.MASK, 6, 0),
                            (acl.OTHER, 0, 0)])
        h.fs.ns.setxattr(fifo.ino, acl.ACCESS, value)
        assert fifo.mode == 0o660
        await h.settle()
        assert _mode(cloud / "p") == 0o660


async def test_a_fifo_where_a_file_was_is_never_opened(tmp_path: Path, cloud: Path):
    os.mkfifo(cloud / "f")
    remote = LocalRemote(cloud)
    with trio.fail_after(10):  # (an open of the FIFO would block until a writer came)
        with pytest.raises(RemoteError) as info:
            await remote.read("f", 0, 10)
    assert "not a regular file" in str(info.value)
