"""A directory renamed here, on a remote that renames directories in one call (file://:
``Capabilities.dir_rename``): one remote rename, everything below follows, also what was
never listed here, and a later poll changes nothing."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import AsyncIterator

import trio

from cloudgw.remotes.base import RemoteEntry
from cloudgw.remotes.faulty import Fault, FaultPlan, FaultyRemote, Rule
from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import Harness, running


class CountingLocal(LocalRemote):
    """file:// that counts renames and directory creations (what a remote rename costs)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.renames: list[tuple[str, str]] = []
        self.mkdirs: list[str] = []
        self.writes = 0

    async def write(self, path, source, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.writes += 1
        return await super().write(path, source, **kwargs)

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        self.renames.append((src, dst))
        return await super().rename(src, dst, expect=expect)

    async def mkdir(self, path, attrs=None):  # noqa: ANN001, ANN201
        self.mkdirs.append(path)
        return await (super().mkdir(path) if attrs is None else super().mkdir(path, attrs))


async def test_a_directory_rename_is_one_remote_rename_and_carries_unlisted_subtrees(tmp_path: Path):
    cloud = tmp_path / "cloud"
    (cloud / "d" / "never-listed" / "deeper").mkdir(parents=True)
    for i in range(40):
        (cloud / "d" / f"f{i}.txt").write_text(f"file {i}")
    (cloud / "d" / "never-listed" / "deeper" / "x.txt").write_text("deep")
    remote = CountingLocal(cloud)
    async with running(remote, tmp_path / "cache") as h:
        assert len(await h.listdir("d")) == 41  # d listed; d/never-listed not
        ino_before = (await h.resolve("d/f7.txt")).ino
        assert await h.read_file("d/f7.txt") == b"file 7"  # cached
        await h.rename("d", "e")
        await h.settle()
        assert remote.renames == [("d", "e")] and remote.mkdirs == []
        assert not (cloud / "d").exists()
        assert sorted(p.name for p in (cloud / "e").iterdir()) == sorted([f"f{i}.txt" for i in range(40)] + ["never-listed"])
        assert (cloud / "e" / "never-listed" / "deeper" / "x.txt").read_text() == "deep"
        assert (await h.engine.poller.poll()).changed == 0  # the poll sees nothing to change
        assert (await h.resolve("e/f7.txt")).ino == ino_before
        assert await h.read_file("e/f7.txt") == b"file 7"
        assert await h.read_file("e/never-listed/deeper/x.txt") == b"deep"
        assert h.store.count_needing_sync() == 0


async def test_a_directory_renamed_with_a_new_file_inside_before_its_upload(tmp_path: Path):
    cloud = tmp_path / "cloud"
    (cloud / "d").mkdir(parents=True)
    (cloud / "d" / "old.txt").write_text("old")
    remote = CountingLocal(cloud)
    async with running(remote, tmp_path / "cache", write_back_delay=3600) as h:
        await h.write_file("d/new.txt", b"new content")  # not uploaded yet (long delay)
        await h.write_file("d/old.txt", b"edited", create=False)
        await h.rename("d", "e")
        await h.rename("e/new.txt", "e/renamed.txt")
        await h.settle()
        assert remote.renames[0] == ("d", "e")
        assert not (cloud / "d").exists()
        assert (cloud / "e" / "renamed.txt").read_bytes() == b"new content"
        assert (cloud / "e" / "old.txt").read_bytes() == b"edited"
        assert sorted(p.name for p in (cloud / "e").iterdir()) == ["old.txt", "renamed.txt"]
        assert (await h.engine.poller.poll()).changed == 0


async def test_a_directory_renamed_on_a_remote_without_directory_renames_takes_its_unlisted_subtree(tmp_path: Path):
    """S3-like (no one-call directory rename): the entries are moved one by one, so the
    subdirectories never opened here are listed first; none stays behind under the old name."""
    cloud = tmp_path / "cloud"
    (cloud / "d" / "s" / "t").mkdir(parents=True)
    (cloud / "d" / "s" / "t" / "x.txt").write_text("deep")
    (cloud / "d" / "f.txt").write_text("f")
    remote = CountingLocal(cloud)
    remote.capabilities = dataclasses.replace(remote.capabilities, dir_rename=False)
    async with running(remote, tmp_path / "cache") as h:
        assert await h.listdir("d") == ["f.txt", "s"]  # d/s never listed
        await h.rename("d", "e")
        await h.settle()
        assert sorted(p.relative_to(cloud).as_posix() for p in cloud.rglob("*")) == [
            "e", "e/f.txt", "e/s", "e/s/t", "e/s/t/x.txt"]
        assert await h.read_file("e/s/t/x.txt") == b"deep"
        assert (await h.engine.poller.poll()).changed == 0
        assert await h.listdir("") == ["e"]


@contextlib.asynccontextmanager
async def _a_moved_to_b_answered_late(tmp_path: Path) -> AsyncIterator[Harness]:
    """a/f1, a/f2 on the remote; ``mv a b`` done here, and on the remote, whose answer is
    still on its way (0.5 s) when the body runs."""
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    late = Rule(Fault.LATE_REPLY, ops="rename", path="a", seconds=0.5, limit=1)  # done, answer late
    plan = FaultPlan([late])
    plan.off()
    async with running(FaultyRemote(LocalRemote(cloud), plan), tmp_path / "cache") as h:
        await h.mkdir("a")
        await h.write_file("a/f1", b"one")
        await h.write_file("a/f2", b"two")
        await h.settle()
        plan.on()
        await h.rename("a", "b")
        with trio.fail_after(5):
            while not await trio.to_thread.run_sync(lambda: late.fired == 1):
                await trio.sleep(0.01)
        yield h


def _remote_tree(cloud: Path) -> list[str]:
    return sorted(p.relative_to(cloud).as_posix() for p in cloud.rglob("*"))


async def test_a_file_moved_out_of_a_directory_whose_one_call_rename_is_in_flight(tmp_path: Path):
    """mv a b; mv b/f2 top while the remote's a -> b is still under way: f2's move waits for
    it (its remote path is about to change) instead of moving a/f2, which is gone by then
    (it took the "vanished, upload from the cache" path and asked for CLEAN -> UPLOADING)."""
    async with _a_moved_to_b_answered_late(tmp_path) as h:
        await h.rename("b/f2", "top")
        await h.settle()
        assert _remote_tree(tmp_path / "cloud") == ["b", "b/f1", "top"]
        assert (tmp_path / "cloud" / "top").read_bytes() == b"two"
        assert await h.read_file("top") == b"two"


async def test_a_file_deleted_in_a_directory_whose_one_call_rename_is_in_flight(tmp_path: Path):
    """mv a b; rm b/f2 while the remote's a -> b is still under way: the delete (a tombstone
    at a/f2, where f2 was placed) waits for the move and follows it to b/f2, instead of
    deleting a/f2, which is gone by then, and leaving b/f2 to come back with the next poll."""
    async with _a_moved_to_b_answered_late(tmp_path) as h:
        await h.unlink("b/f2")
        await h.settle()
        await h.engine.poller.poll()
        await h.engine.poller.poll()
        assert _remote_tree(tmp_path / "cloud") == ["b", "b/f1"]
        assert await h.listdir("b") == ["f1"]
        assert h.store.tombstones() == []


class HeldListing(LocalRemote):
    """file:// whose listing of one folder is read, then held until released."""

    def __init__(self, root: Path, held: str) -> None:
        super().__init__(root)
        self.held, self.read_done, self.release = held, trio.Event(), trio.Event()

    async def list(self, path: str, *, recursive: bool = False):  # noqa: ANN201
        entries = [e async for e in super().list(path, recursive=recursive)]
        if path == self.held:
            self.read_done.set()
            await self.release.wait()
        for e in entries:
            yield e


async def test_a_folder_listed_while_a_one_call_rename_above_moves_it_shows_its_entries(tmp_path: Path):
    """d/s is being listed (never opened before) when mv d e is sent as one remote rename
    and committed: the listing's entries (at d/s/...) were all refused as our own change,
    and d/s was marked listed, empty, with x.txt on the remote under e/s."""
    cloud = tmp_path / "cloud"
    (cloud / "d" / "s").mkdir(parents=True)
    (cloud / "d" / "s" / "x.txt").write_text("x")
    remote = HeldListing(cloud, "d/s")
    async with running(remote, tmp_path / "cache") as h:
        assert await h.listdir("d") == ["s"]
        s = await h.resolve("d/s")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(h.fs.ns.readdir, s.ino, 0)
            await remote.read_done.wait()
            await h.rename("d", "e")
            await h.settle()
            assert (cloud / "e" / "s" / "x.txt").exists()
            remote.release.set()
        assert await h.listdir("e/s") == ["x.txt"]
        assert await h.read_file("e/s/x.txt") == b"x"


async def test_a_poll_during_a_one_call_directory_rename_leaves_what_moves_alone(tmp_path: Path):
    """The remote has moved d -> e but not answered yet, and a poll lists now: it sees d's
    entries gone and e's new.  Both are our own move under way: no entry may lose its
    placement (each would be uploaded again), none may be adopted twice."""
    cloud = tmp_path / "cloud"
    (cloud / "d").mkdir(parents=True)
    for i in range(5):
        (cloud / "d" / f"f{i}").write_text(str(i))
    inner = CountingLocal(cloud)
    late = Rule(Fault.LATE_REPLY, ops="rename", path="d", seconds=1.0, limit=1)  # done, answer late
    plan = FaultPlan([late])
    async with running(FaultyRemote(inner, plan), tmp_path / "cache") as h:
        assert len(await h.listdir("d")) == 5
        await h.rename("d", "e")
        with trio.fail_after(5):  # (``fired`` counts the decision, made before the inner call)
            while not await trio.to_thread.run_sync(lambda: late.fired == 1 and not (cloud / "d").exists()):
                await trio.sleep(0.01)  # until moved on the remote, not answered yet
        assert (await h.engine.poller.poll()).changed == 0
        assert all(h.store.get(ino).remote_path for ino in h.store.descendants((await h.resolve("e")).ino))
        await h.settle()
        assert sorted(p.name for p in (cloud / "e").iterdir()) == [f"f{i}" for i in range(5)]
        assert inner.renames == [("d", "e")] and inner.writes == 0  # nothing uploaded again
        assert await h.listdir("") == ["e"]
