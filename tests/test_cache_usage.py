"""The cache's disk usage (what the evictor and ``cloudgw_cache_used_bytes`` go by) is kept
in the index and counted again only for data files that changed (issue 15: an evictor pass
used to ``stat`` every cached file, ~4 s every 30 s at a million).  What must hold: the
total equals what the data files take on the disk after writes, truncation, emptying and
removal, after a clean restart, after an unclean shutdown, and for a cache made before the
count was kept."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cloudgw.cache.files import BLOCK_SIZE, CacheFiles

FILES = 40


def _on_disk(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in (root / "data").iterdir())


def _cached(root: Path, files: int = FILES) -> None:
    """A closed cache of ``files`` entries (inos 2..) of 1 to 3 blocks of fetched data."""
    with closing(CacheFiles(root)) as cache:
        for ino in range(2, files + 2):
            size = (ino % 3 + 1) * BLOCK_SIZE
            entry = cache.entry_for(ino, rev=f"r{ino}", remote_size=size)
            fd = cache.open_fd(entry)
            os.pwrite(fd, b"x" * size, 0)
            cache.release(entry)


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The inodes whose data file the cache ``stat``s to count its usage."""
    seen: list[int] = []
    count = CacheFiles.disk_usage

    def counting(self: CacheFiles, ino: int) -> int:
        seen.append(ino)
        return count(self, ino)

    monkeypatch.setattr(CacheFiles, "disk_usage", counting)
    return seen


def test_the_total_follows_writes_truncation_emptying_and_removal(tmp_path: Path, stats: list[int]):
    root = tmp_path / "cache"
    _cached(root)
    del stats[:]
    with closing(CacheFiles(root)) as cache:
        assert cache.used_bytes() == _on_disk(root) > 0
        assert stats == []  # nothing changed since the clean close: no file is looked at

        grown = cache.get(5)
        fd = cache.open_fd(grown)
        os.pwrite(fd, b"y" * BLOCK_SIZE, 4 * BLOCK_SIZE)
        cache.release(grown)
        reader = cache.get(6)
        cache.open_fd(reader, writes=False)
        cache.release(reader)
        assert cache.used_bytes() == _on_disk(root)
        assert stats == [5]  # the one written, not the one read nor the other 38

        cache.reset(cache.get(7), rev="r7b", remote_size=BLOCK_SIZE)  # remote changed: emptied
        cache.new_local(8)  # O_TRUNC of a cached file, its entry not in memory
        cache.remove(9)  # evicted
        assert cache.used_bytes() == _on_disk(root)
        assert sorted(stats) == [5, 7, 8]
    with closing(CacheFiles(root)) as cache:  # a clean restart trusts the counts
        assert cache.used_bytes() == _on_disk(root)
    assert sorted(stats) == [5, 7, 8]


def test_a_file_still_open_for_writing_is_counted_again_until_it_is_closed(tmp_path: Path, stats: list[int]):
    root = tmp_path / "cache"
    _cached(root, 3)
    with closing(CacheFiles(root)) as cache:
        entry = cache.get(2)
        fd = cache.open_fd(entry)
        for block in range(5, 8):  # a long writer, counted between its writes
            os.pwrite(fd, b"z" * BLOCK_SIZE, block * BLOCK_SIZE)
            assert cache.used_bytes() == _on_disk(root)
        cache.release(entry)
        assert cache.used_bytes() == _on_disk(root)
        del stats[:]
        assert cache.used_bytes() == _on_disk(root)
        assert stats == []  # closed and counted: no longer looked at


def test_after_an_unclean_shutdown_every_file_is_counted_again(tmp_path: Path, stats: list[int]):
    root = tmp_path / "cache"
    _cached(root)
    cache = CacheFiles(root)
    assert cache.used_bytes() == _on_disk(root)
    entry = cache.get(3)
    os.pwrite(cache.open_fd(entry), b"w" * BLOCK_SIZE, 6 * BLOCK_SIZE)  # written, never counted
    cache._db.close()  # the daemon dies: no flush, no close
    os.close(entry.fd)
    with closing(CacheFiles(root, trust_maps=False)) as cache:
        del stats[:]
        assert cache.used_bytes(count_unknown=False) == 0  # (the metrics: only what is counted so far)
        assert stats == []
        pages = []
        while not cache.count_unknown_usage(7):  # as the evictor does at start, between requests
            pages.append(len(stats))
        assert pages == [7, 14, 21, 28, 35] and sorted(stats) == list(range(2, FILES + 2))
        del stats[:]
        assert cache.used_bytes() == _on_disk(root)
        assert stats == []  # once
    with closing(CacheFiles(root, trust_maps=False)) as cache:  # used_bytes alone counts them all
        del stats[:]
        assert cache.used_bytes() == _on_disk(root)
        assert sorted(stats) == list(range(2, FILES + 2))


def test_a_cache_made_before_the_count_was_kept_is_counted_once(tmp_path: Path, stats: list[int]):
    root = tmp_path / "cache"
    _cached(root)
    with closing(sqlite3.connect(root / "cache-index.db")) as db:  # the index as it was before
        db.execute("ALTER TABLE entries DROP COLUMN used")
        db.commit()
    with closing(CacheFiles(root)) as cache:
        del stats[:]
        assert cache.used_bytes() == _on_disk(root)
        assert len(stats) == FILES
    with closing(CacheFiles(root)) as cache:
        assert cache.used_bytes() == _on_disk(root)
    assert len(stats) == FILES


def test_a_data_file_left_without_its_row_is_counted_when_the_file_is_cached_again(tmp_path: Path):
    root = tmp_path / "cache"
    with closing(CacheFiles(root)) as cache:
        (root / "data" / f"{100:x}").write_bytes(b"left" * BLOCK_SIZE)  # its index row lost (power loss, fsck)
        cache.entry_for(100, rev="r", remote_size=BLOCK_SIZE)
        assert cache.used_bytes() == _on_disk(root) > 0
