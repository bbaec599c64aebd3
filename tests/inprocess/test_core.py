"""The filesystem core in-process over a real file:// remote: what a user sees."""

from __future__ import annotations

import errno
import os

import pytest
import trio

from cloudgw.filesystem import FsError
from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import running


async def test_written_file_reaches_remote_and_reads_back(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        await h.mkdir("docs")
        await h.write_file("docs/a.txt", b"hello world")
        assert await h.read_file("docs/a.txt") == b"hello world"
        await h.settle()
        assert (cloud / "docs" / "a.txt").read_bytes() == b"hello world"
        assert h.fs.ns.getxattr((await h.resolve("docs/a.txt")).ino, "user.cloudgw.state") == b"clean"


async def test_existing_remote_tree_is_listed_and_read(dirs):
    cloud, cache = dirs
    (cloud / "sub").mkdir()
    (cloud / "sub" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (cloud / "top.txt").write_text("top")
    async with running(LocalRemote(cloud), cache) as h:
        assert await h.listdir("") == ["sub", "top.txt"]
        assert await h.read_file("sub/big.bin") == (cloud / "sub" / "big.bin").read_bytes()


async def test_partial_overwrite_of_uncached_file_keeps_the_rest(dirs):
    cloud, cache = dirs
    original = os.urandom(5 * 1024 * 1024)
    (cloud / "f.bin").write_bytes(original)
    async with running(LocalRemote(cloud), cache) as h:
        await h.write_file("f.bin", b"X" * 100, offset=2 * 1024 * 1024 + 10, create=False)
        await h.settle()
    expected = bytearray(original)
    expected[2 * 1024 * 1024 + 10 : 2 * 1024 * 1024 + 110] = b"X" * 100
    assert (cloud / "f.bin").read_bytes() == bytes(expected)


async def test_rename_and_delete_follow_on_remote(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        await h.mkdir("d")
        await h.write_file("d/one", b"1")
        await h.write_file("two", b"2")
        await h.settle()
        await h.rename("d", "e")
        await h.rename("two", "e/three")
        await h.settle()
        assert sorted(p.relative_to(cloud).as_posix() for p in cloud.rglob("*")) == ["e", "e/one", "e/three"]
        await h.unlink("e/one")
        await h.unlink("e/three")
        await h.rmdir("e")
        await h.settle()
        assert list(cloud.iterdir()) == []


async def test_delete_of_dirty_file_before_upload_leaves_nothing(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache, write_back_delay=30) as h:
        await h.write_file("tmp.txt", b"x")
        await h.mkdir("newdir")
        await h.write_file("newdir/f", b"y")
        await h.rename("newdir", "renamed")
        await h.unlink("tmp.txt")
        await h.settle()
        assert sorted(p.relative_to(cloud).as_posix() for p in cloud.rglob("*")) == ["renamed", "renamed/f"]


async def test_outside_changes_appear_after_poll(dirs):
    cloud, cache = dirs
    (cloud / "keep.txt").write_text("v1")
    (cloud / "gone.txt").write_text("bye")
    async with running(LocalRemote(cloud), cache) as h:
        assert await h.read_file("keep.txt") == b"v1"
        assert await h.listdir("") == ["gone.txt", "keep.txt"]
        (cloud / "keep.txt").write_text("version two")
        (cloud / "gone.txt").unlink()
        (cloud / "new").mkdir()
        (cloud / "new" / "n.txt").write_text("new")
        await h.engine.poll_now()
        assert await h.listdir("") == ["keep.txt", "new"]
        assert await h.read_file("keep.txt") == b"version two"
        assert await h.read_file("new/n.txt") == b"new"


@pytest.mark.allow_warnings("conflict: ")
async def test_remote_change_under_local_edit_keeps_both(dirs):
    cloud, cache = dirs
    (cloud / "doc.txt").write_text("base")
    async with running(LocalRemote(cloud), cache, write_back_delay=30) as h:
        assert await h.read_file("doc.txt") == b"base"
        await h.write_file("doc.txt", b"mine")
        (cloud / "doc.txt").write_text("theirs")
        await h.settle()
        assert (cloud / "doc.txt").read_text() == "mine"
        copies = [p for p in cloud.iterdir() if p.name.startswith("doc.conflict-")]
        assert len(copies) == 1 and copies[0].read_text() == "theirs"
        assert h.engine.status()["conflicts"] == 1


async def test_errors_are_posix(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        await h.mkdir("d")
        await h.write_file("d/f", b"1")
        with pytest.raises(FsError) as e:
            await h.rmdir("d")
        assert e.value.errno == errno.ENOTEMPTY
        with pytest.raises(FsError) as e:
            await h.mkdir("d")
        assert e.value.errno == errno.EEXIST
        with pytest.raises(FsError) as e:
            await h.resolve("nope")
        assert e.value.errno == errno.ENOENT


async def test_full_block_write_is_not_overwritten_by_readahead_in_flight(dirs):
    """A read-ahead of block 1 in flight must not clobber a full overwrite of block 1."""
    cloud, cache = dirs
    MiB = 1024 * 1024
    (cloud / "f.bin").write_bytes(b"r" * (4 * MiB))
    class SlowSecondBlock(LocalRemote):
        async def read(self, path, offset, length, *, rev=None):  # noqa: ANN001
            if offset == MiB:
                await trio.sleep(0.5)  # the read-ahead of block 1 is still in flight when the write lands
            return await super().read(path, offset, length, rev=rev)

    async with running(SlowSecondBlock(cloud), cache, write_back_delay=30) as h:
        inode = await h.resolve("f.bin")
        handle = await h.fs.data.open(inode.ino, os.O_RDWR)
        await h.fs.data.read(handle.fh, 0, 4096)  # sequential start: read-ahead of later blocks begins
        await h.fs.data.read(handle.fh, 4096, 4096)
        await h.fs.data.write(handle.fh, MiB, b"w" * MiB)  # full block 1 while its fetch is in flight
        await trio.sleep(0.7)  # let the delayed fetch of block 1 land
        assert await h.fs.data.read(handle.fh, MiB, 8) == b"w" * 8
        h.fs.data.release(handle.fh)
        await h.settle()
    data = (cloud / "f.bin").read_bytes()
    assert data[:MiB] == b"r" * MiB and data[MiB : 2 * MiB] == b"w" * MiB and data[2 * MiB :] == b"r" * (2 * MiB)


async def test_pending_counts_without_sorting_the_queue_or_loading_the_deletes(dirs, monkeypatch):
    """``pending()`` runs every few seconds under systemd (the STATUS line) and at every
    scrape: it must not sort the upload queue or read every tombstone row to count them."""
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache, write_back_delay=30) as h:
        await h.write_file("gone.txt", b"x")
        await h.settle()
        await h.write_file("waiting.txt", b"y")
        await h.write_file("other.txt", b"z")
        await h.unlink("gone.txt")  # a remote delete to make
        snap = h.engine.queue.snapshot()
        expected = len(snap.queued) + len(snap.uploading) + len(h.store.tombstones())
        assert expected >= 2
        with monkeypatch.context() as m:  # no await inside: the engine's own tasks do not run
            m.setattr(h.engine.queue, "snapshot", lambda: pytest.fail("pending() sorted the queue"))
            m.setattr(h.store, "tombstones", lambda: pytest.fail("pending() loaded every tombstone"))
            assert h.engine.pending() == expected
