"""``CacheFiles`` loads an entry when first asked for and keeps it only while it is needed
(issue 15: memory flat in the number of cached files).  What must never happen: two
objects for one inode, a map change lost because its entry left memory before it was
persisted, a removed entry's late change landing on its successor, or the evictor
ordering by stale access times."""

from __future__ import annotations

import gc
import os
import tracemalloc
import zlib
from contextlib import closing
from pathlib import Path

from cloudgw.cache.evictor import EvictionPolicy, Evictor
from cloudgw.cache.files import ABSENT, BLOCK_SIZE, PRESENT, SUMMED, CacheFiles


def _filled(root: Path, files: int, *, blocks: int = 1) -> None:
    """A closed cache of ``files`` entries (inos 2..), each ``blocks`` fetched and summed blocks."""
    cache = CacheFiles(root)
    data = b"y" * BLOCK_SIZE
    for ino in range(2, files + 2):
        entry = cache.entry_for(ino, rev=f"r{ino}", remote_size=blocks * BLOCK_SIZE)
        fd = cache.open_fd(entry)
        for b in range(blocks):
            os.pwrite(fd, data, b * BLOCK_SIZE)
            entry.set_sum(b, zlib.crc32(data))
        cache.release(entry)
    cache.close()


def _push_out(cache: CacheFiles, inos: range) -> None:
    """Use other entries until the recently used window has forgotten the earlier ones."""
    for ino in inos:
        assert cache.get(ino) is not None
    gc.collect()


def test_an_opened_cache_holds_no_entry_until_one_is_asked_for(tmp_path: Path):
    root = tmp_path / "cache"
    _filled(root, 2000)
    tracemalloc.start()
    try:
        cache = CacheFiles(root)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    try:
        assert cache.in_memory() == 0
        assert held < 200_000, held  # was ~1 MB: 480 bytes per entry
        assert cache.count() == 2000
        entry = cache.get(700)
        assert entry is not None and cache.get(700) is entry  # one object per inode
        assert (entry.rev, entry.fetch_limit, bytes(entry.blocks)) == ("r700", BLOCK_SIZE, bytes([SUMMED]))
        assert entry.unchecked == {0}  # verified again before its first read by this process
        assert cache.in_memory() == 1
    finally:
        cache.close()


def test_entries_leave_memory_when_nobody_needs_them_and_held_ones_stay(tmp_path: Path):
    root = tmp_path / "cache"
    _filled(root, 60)
    with closing(CacheFiles(root, recent=10)) as cache:
        held = cache.get(2)
        _push_out(cache, range(3, 62))
        assert cache.in_memory() == 11  # the ten recently used, and the one still held
        assert cache.get(2) is held  # the holder and the next user share the object
        fd = cache.open_fd(cache.get(5))  # an open data file keeps its entry too
        _push_out(cache, range(20, 62))
        assert cache.in_memory() == 12
        entry = cache.get(5)
        assert entry is not None and entry.fd == fd and entry.users == 1
        cache.release(entry)


def test_a_changed_map_stays_in_memory_until_persisted(tmp_path: Path):
    """A block written here and its map change dropped unpersisted would come back ABSENT from the
    index, and a read would fetch the remote's old bytes over the only copy of the new ones."""
    root = tmp_path / "cache"
    _filled(root, 30, blocks=2)
    with closing(CacheFiles(root, recent=4)) as cache:
        entry = cache.get(7)
        assert entry is not None
        entry.forget_block(1)  # (the map changes, as a damaged block found by a read does)
        entry.mark_written(1)  # a local write: PRESENT, and changed since r7
        del entry
        _push_out(cache, range(10, 32))
        again = cache.get(7)
        assert again is not None and bytes(again.blocks) == bytes([SUMMED, PRESENT])
        assert again.changed == {1}
        cache.flush()  # persisted: it may go now, and comes back the same
        del again
        _push_out(cache, range(10, 32))
        assert cache.in_memory() == 4
        reloaded = cache.get(7)
        assert reloaded is not None and bytes(reloaded.blocks) == bytes([SUMMED, PRESENT])
        assert reloaded.changed == {1}
    with closing(CacheFiles(root)) as cache:
        entry = cache.get(7)
        assert entry is not None and bytes(entry.blocks) == bytes([SUMMED, PRESENT]) and entry.changed == {1}


def test_a_removed_entrys_late_changes_do_not_touch_its_successor(tmp_path: Path):
    root = tmp_path / "cache"
    _filled(root, 3)
    with closing(CacheFiles(root, recent=1)) as cache:
        old = cache.get(3)
        assert old is not None
        cache.open_fd(old)  # an upload still reads it
        cache.remove(3)
        new = cache.new_local(3)  # the inode's data starts again, locally
        old.forget_block(0)  # the upload's late bookkeeping on the removed entry
        cache.release(old)
        assert cache.get(3) is new
        del new
        _push_out(cache, range(2, 5, 2))
        cache.flush()
        entry = cache.get(3)
        assert entry is not None and (entry.rev, bytes(entry.blocks)) == (None, b"")


def test_after_an_unclean_shutdown_only_the_maps_of_unsynced_files_are_kept(tmp_path: Path):
    root = tmp_path / "cache"
    _filled(root, 3, blocks=2)
    with closing(CacheFiles(root, trust_maps=False, keep_maps={3})) as cache:
        assert bytes(cache.get(2).blocks) == bytes([ABSENT, ABSENT])  # fetched again
        kept = cache.get(3)
        assert kept is not None and bytes(kept.blocks) == bytes([SUMMED, SUMMED])
        assert kept.changed is None and cache.get(4).changed is None  # not known after a crash
    with closing(CacheFiles(root)) as cache:  # and a clean restart does not bring the forgotten maps back
        assert bytes(cache.get(2).blocks) == bytes([ABSENT, ABSENT])
        assert cache.get(3).changed is None


def test_files_with_blocks_left_to_sum_are_known_without_loading_them(tmp_path: Path):
    root = tmp_path / "cache"
    _filled(root, 4)
    with closing(CacheFiles(root)) as cache:
        cache.adopt_as_clean(cache.get(3), rev="r3b", size=BLOCK_SIZE)  # just uploaded: to be summed
    with closing(CacheFiles(root)) as cache:
        assert cache.unsummed == {3} and cache.in_memory() == 0
        assert bytes(cache.get(3).blocks) == bytes([PRESENT])


def test_the_evictor_goes_by_last_use_even_of_entries_that_left_memory(tmp_path: Path):
    root = tmp_path / "cache"
    _filled(root, 12)
    with closing(CacheFiles(root, recent=2)) as cache:
        for ino in (13, 2, 3):  # the oldest ones, used again now (and pushed out of memory)
            entry = cache.get(ino)
            cache.open_fd(entry)
            cache.release(entry)
        del entry
        _push_out(cache, range(4, 13))
        in_use = cache.get(12)
        cache.open_fd(in_use)
        evicted: list[int] = []
        each = cache.disk_usage(5)
        policy = EvictionPolicy(max_size=5 * each, min_free=0)
        Evictor(cache, policy, can_evict=lambda ino: ino != 6, on_evicted=evicted.append).evict_once()
        # 12 cached, room for 5: the least recently used go, but not the one in use nor the
        # one the owner keeps (dirty); the three used last stay.
        assert sorted(evicted) == [4, 5, 7, 8, 9, 10, 11]
        assert cache.count() == 5 and cache.used_bytes() == 5 * each
        cache.release(in_use)
