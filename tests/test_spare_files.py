"""The pool of unnamed empty files a create links into place (``cloudgw.cache.spares``)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cloudgw.cache.files import CacheFiles
from cloudgw.cache.spares import SpareFiles


def _wait_ready(pool: SpareFiles, n: int) -> None:
    deadline = time.monotonic() + 30
    while pool.ready() < n:
        assert time.monotonic() < deadline, f"only {pool.ready()} spares after 30 s"
        time.sleep(0.01)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_take_names_an_empty_file_and_the_filler_refills(tmp_path: Path):
    pool = SpareFiles(tmp_path, high=4, low=4)
    try:
        assert not pool.take("a")  # nothing made yet: the caller creates its own file
        assert not (tmp_path / "a").exists()
        _wait_ready(pool, 4)  # the first take started the filler
        assert os.listdir(tmp_path) == []  # spares have no name: nothing to find or clean up
        assert pool.take("a")
        assert (tmp_path / "a").read_bytes() == b""
        _wait_ready(pool, 4)  # below LOW again: refilled to HIGH
    finally:
        pool.close()


def test_an_existing_name_is_left_to_the_caller_and_the_spare_kept(tmp_path: Path):
    pool = SpareFiles(tmp_path, high=2, low=0)
    try:
        pool.start()
        _wait_ready(pool, 2)
        (tmp_path / "x").write_bytes(b"cached bytes")
        assert not pool.take("x")  # the caller truncates it itself
        assert (tmp_path / "x").read_bytes() == b"cached bytes"
        assert pool.ready() == 2
    finally:
        pool.close()


def test_close_releases_every_descriptor(tmp_path: Path):
    before = _open_fds()
    pool = SpareFiles(tmp_path, high=16, low=8)
    pool.start()
    _wait_ready(pool, 16)
    assert _open_fds() >= before + 16
    pool.close()
    assert _open_fds() == before


def test_no_spare_is_handed_out_twice(tmp_path: Path):
    pool = SpareFiles(tmp_path, high=64, low=32)
    dests = tmp_path
    taken: list[Path] = []
    lock = threading.Lock()
    try:
        pool.start()
        _wait_ready(pool, 64)

        def taker(k: int) -> None:
            for i in range(100):
                d = dests / f"{k}-{i}"
                if pool.take(d.name):
                    with lock:
                        taken.append(d)

        threads = [threading.Thread(target=taker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        inodes = {d.stat().st_ino for d in taken}
        assert len(taken) >= 64 and len(inodes) == len(taken)  # one inode per name: none linked twice
    finally:
        pool.close()


def test_a_cache_create_uses_a_spare(tmp_path: Path):
    cache = CacheFiles(tmp_path / "cache")
    try:
        cache.spares.low = 0  # no refill after the first fill: what a create takes shows
        cache.spares.start()
        _wait_ready(cache.spares, cache.spares.high)
        entry = cache.new_local(7)
        assert cache.spares.ready() == cache.spares.high - 1
        fd = cache.open_fd(entry)
        os.pwrite(fd, b"hello", 0)
        cache.release(entry)
        assert Path(entry.path).read_bytes() == b"hello"
        assert sorted(os.listdir(tmp_path / "cache" / "data")) == ["7"]
    finally:
        cache.close()
