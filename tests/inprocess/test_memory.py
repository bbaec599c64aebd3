"""Memory stays bounded by what the kernel holds and what is in flight, never by the tree:
a poll that walks every placed entry, readers of many files and the kernel's FORGETs
leave no per-entry object behind (issue 15).  The RSS figures are in ``benchmarks/``."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import Harness, running

N = 600


def seed(cloud: Path) -> None:
    for d in range(6):
        (cloud / f"d{d}").mkdir()
        for i in range(N // 6):
            (cloud / f"d{d}" / f"f{i}.txt").write_bytes(b"x" * (i % 7))


async def listed_everywhere(h: Harness) -> None:
    for d in await h.listdir(""):
        assert len(await h.listdir(d)) == N // 6


async def test_a_poll_over_many_placed_entries_keeps_none_in_memory(dirs):
    cloud, cache = dirs
    seed(cloud)
    async with running(LocalRemote(cloud), cache) as h:
        await listed_everywhere(h)
        before = h.store.in_memory()
        assert before == (7, 7)  # the root and the six directories the "kernel" looked up
        (cloud / "d0" / "f1.txt").write_bytes(b"changed elsewhere")
        (cloud / "d5" / "new.txt").write_bytes(b"new")
        result = await h.engine.poller.poll()
        assert result.changed == 2
        assert h.store.in_memory() == before  # none of the 600 entries it walked
        assert h.engine.status()["inodes_in_memory"] == {"pinned": 7, "held": 7}
        assert await h.read_file("d0/f1.txt") == b"changed elsewhere"
        assert "new.txt" in await h.listdir("d5")


BIG = 20_000


async def poll_peak(h: Harness) -> tuple[int, int]:
    """(changes, peak bytes of Python objects) of one poll."""
    tracemalloc.start()
    try:
        result = await h.engine.poller.poll()
        return result.changed, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_full_listing_poll_holds_its_changes_not_the_listing(dirs):
    """Without a change feed every poll lists the whole remote.  Held as objects that is
    ~800 bytes per entry (16 MiB here, 755 MiB at a million); spilled to SQLite it is one
    batch, whether the entries are placed here or lie in folders nobody opened yet."""
    cloud, cache = dirs
    for d in range(20):
        (cloud / f"d{d}").mkdir()
        for i in range(BIG // 20):
            (cloud / f"d{d}" / f"f{i}").write_bytes(b"")
    async with running(LocalRemote(cloud), cache) as h:
        changed, unopened = await poll_peak(h)  # 20,000 entries below folders not listed here
        assert changed == 0
        for d in range(20):
            assert len(await h.listdir(f"d{d}")) == BIG // 20
        changed, placed = await poll_peak(h)  # 20,000 entries placed here, unchanged
        assert changed == 0
        (cloud / "d7" / "f3").write_bytes(b"changed elsewhere")
        (cloud / "d19" / "new").write_bytes(b"new")
        (cloud / "d2" / "f5").unlink()
        changed, with_changes = await poll_peak(h)
        assert changed == 3
        assert max(unopened, placed, with_changes) < 3 * 2**20, (unopened, placed, with_changes)
        assert await h.read_file("d7/f3") == b"changed elsewhere"
        assert await h.read_file("d19/new") == b"new"
        assert "f5" not in await h.listdir("d2")


async def test_entries_the_kernel_was_given_stay_until_it_forgets_them(dirs):
    cloud, cache = dirs
    seed(cloud)
    async with running(LocalRemote(cloud), cache) as h:
        ns = h.fs.ns
        given = []
        for d in await h.listdir(""):
            for _, _, child in await ns.readdir((await h.resolve(d)).ino, 0):
                ns.remember(child.ino)  # what the FUSE adapter does for each readdir entry
                given.append(child.ino)
        del child
        given_dirs = list(ns.lookups)
        await h.engine.poller.poll()
        assert h.store.in_memory()[0] >= N  # GETATTR of a known entry answers from memory
        first = h.store.get(given[0])
        assert h.store.get(given[0]) is first  # one object per inode
        for ino in given + given_dirs:
            ns.forget(ino, ns.lookups[ino])
        del first
        pinned, held = h.store.in_memory()
        assert pinned <= 1 and held <= 1, (pinned, held)


async def test_an_open_file_keeps_its_object_after_the_kernel_forgets_it(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        f = await h.write_file("f.txt", b"before")
        ino = f.ino
        handle = await h.fs.data.open(ino, os.O_RDWR)
        h.fs.ns.forget(ino, h.fs.ns.lookups[ino])  # the kernel may forget an inode a handle still has open
        del f
        await h.fs.data.write(handle.fh, 0, b"written, not yet flushed")
        assert h.store.get(ino) is handle.inode  # the poll, the uploader and a new LOOKUP see that object
        assert h.store.get(ino).size == len(b"written, not yet flushed")
        h.fs.data.flush(handle.fh)
        h.fs.data.release(handle.fh)
        await h.settle()
        assert (cloud / "f.txt").read_bytes() == b"written, not yet flushed"


async def test_readers_of_many_files_leave_no_read_ahead_state_behind(dirs):
    cloud, cache = dirs
    seed(cloud)
    async with running(LocalRemote(cloud), cache) as h:
        await listed_everywhere(h)
        for i in range(N // 6):
            assert await h.read_file(f"d3/f{i}.txt") == b"x" * (i % 7)
        assert h.engine.fetcher.streams_kept() == 0


async def test_readers_of_many_cached_files_keep_only_the_recently_used_entries(dirs):
    """The cache's entry (block map) of a file is in memory while the file is used, or among
    the recently used, not for every file ever cached (was ~0.5 KiB each for the daemon's life)."""
    import gc

    cloud, cache = dirs
    seed(cloud)
    async with running(LocalRemote(cloud), cache, cache_recent=50) as h:
        await listed_everywhere(h)
        for d in range(6):
            for i in range(N // 6):
                assert await h.read_file(f"d{d}/f{i}.txt") == b"x" * (i % 7)
        h.cache.flush()
        gc.collect()
        assert h.cache.count() == N  # every file read has its entry in the index
        assert h.cache.in_memory() <= 50
    async with running(LocalRemote(cloud), cache, cache_recent=50) as h:  # a remount loads none
        assert h.cache.in_memory() == 0
        assert await h.read_file("d3/f5.txt") == b"xxxxx"  # from the cache, loaded on demand
        assert h.cache.in_memory() == 1
        assert h.engine.fetcher.streams_kept() == 0
