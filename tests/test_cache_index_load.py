"""What ``CacheFiles`` makes of its index when it loads an entry (``_load``, at the first
use of a cached file since it was last in memory): damaged or missing parts are never
trusted."""

from __future__ import annotations

import os
import sqlite3
import zlib
from contextlib import closing
from pathlib import Path

from cloudgw.cache.files import ABSENT, BLOCK_SIZE, PRESENT, SUMMED, CacheFiles


def _cache_with_one_fetched_file(root: Path, blocks: int) -> str:
    """A cache holding ino 2: ``blocks`` blocks of remote revision r1, all fetched."""
    cache = CacheFiles(root)
    entry = cache.entry_for(2, rev="r1", remote_size=blocks * BLOCK_SIZE)
    fd = cache.open_fd(entry)
    os.pwrite(fd, b"x" * (blocks * BLOCK_SIZE), 0)
    for block in range(blocks):
        entry.set_sum(block, zlib.crc32(b"x" * BLOCK_SIZE))  # as a fetch does
    cache.release(entry)
    path = entry.path
    cache.close()
    return path


def _rewrite(root: Path, sql: str) -> None:
    db = sqlite3.connect(root / "cache-index.db", isolation_level=None)
    db.execute(sql)
    db.close()


def test_summed_blocks_whose_sums_are_lost_load_as_present_and_are_summed_again(tmp_path: Path):
    root = tmp_path / "cache"
    _cache_with_one_fetched_file(root, 3)
    _rewrite(root, "UPDATE entries SET sums = NULL")
    with closing(CacheFiles(root)) as cache:
        entry = cache.get(2)
        assert entry is not None and list(entry.blocks) == [PRESENT] * 3
        assert not entry.unchecked  # nothing claims a sum to check against
        assert 2 in cache.unsummed


def test_summed_blocks_are_checked_before_their_first_read(tmp_path: Path):
    root = tmp_path / "cache"
    _cache_with_one_fetched_file(root, 2)
    with closing(CacheFiles(root)) as cache:
        entry = cache.get(2)
        assert entry is not None and list(entry.blocks) == [SUMMED, SUMMED]
        assert entry.unchecked == {0, 1}


def test_blocks_past_the_end_of_a_shortened_data_file_are_fetched_again(tmp_path: Path):
    root = tmp_path / "cache"
    path = _cache_with_one_fetched_file(root, 3)
    os.truncate(path, BLOCK_SIZE + 10)  # the second block cut short, the third gone
    with closing(CacheFiles(root)) as cache:
        entry = cache.get(2)
        assert entry is not None and list(entry.blocks) == [SUMMED, ABSENT, ABSENT]
        assert entry.unchecked == {0}


def test_an_entry_whose_data_file_is_gone_is_dropped_from_the_index(tmp_path: Path):
    root = tmp_path / "cache"
    os.unlink(_cache_with_one_fetched_file(root, 1))
    with closing(CacheFiles(root)) as cache:
        assert cache.get(2) is None
    db = sqlite3.connect(root / "cache-index.db")
    assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 0
    db.close()
