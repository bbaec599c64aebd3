"""The read cache through the mount: eviction limits, never evicting dirty data,
conflicts kept as copies."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.mount.conftest import make_backend
from tests.mount.gateway import Gateway
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount

MiB = 1024 * 1024


def cache_bytes(cache_dir: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in (cache_dir / "cache" / "data").iterdir())


def test_eviction_keeps_cache_under_limit_and_never_drops_dirty(tmp_path: Path):
    backend = make_backend("file", tmp_path, None)
    contents = {f"f{i}.bin": os.urandom(3 * MiB) for i in range(6)}
    for name, data in contents.items():
        backend.view.put(name, data)
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env,
                 args=("--cache-max-size", "8M"))
    try:
        gw.mount("--write-back", "3600")
        dirty = os.urandom(5 * MiB)
        (gw.mnt / "dirty.bin").write_bytes(dirty)  # never uploaded while this test runs
        for name, data in contents.items():
            assert (gw.mnt / name).read_bytes() == data
        deadline = time.monotonic() + 40
        while cache_bytes(gw.cache_dir) > 8 * MiB + 6 * MiB and time.monotonic() < deadline:
            time.sleep(0.2)
        # clean data was evicted down to the limit; the 5 MiB of dirty data stays
        assert cache_bytes(gw.cache_dir) <= 8 * MiB + 6 * MiB
        assert os.getxattr(gw.mnt / "dirty.bin", "user.cloudgw.state") == b"dirty"
        os.system("echo 3 > /proc/sys/vm/drop_caches")
        assert (gw.mnt / "dirty.bin").read_bytes() == dirty
        for name, data in contents.items():  # evicted files are fetched again
            assert (gw.mnt / name).read_bytes() == data
        assert "dirty.bin" not in backend.view.files()
        gw.umount()
        assert backend.view.get("dirty.bin") == dirty
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_a_remount_loads_the_entries_of_cached_files_as_they_are_read(tmp_path: Path):
    """A cache of many files costs the daemon memory for the files in use, not for every cached
    file (issue 15): after a remount no cached file's entry is in memory, yet every read is
    served from the cache, and the cache still counts all of them."""
    from tests.mount.test_metrics import scrape, value
    from tests.servers import free_port

    backend = make_backend("file", tmp_path, None)
    contents = {f"d/f{i}.bin": os.urandom(100 + i) for i in range(150)}
    for name, data in contents.items():
        backend.view.put(name, data)
    port = free_port()
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env,
                 args=("--metrics-addr", f"127.0.0.1:{port}"))
    try:
        gw.mount("--poll-interval", "3600")
        for name, data in contents.items():
            assert (gw.mnt / name).read_bytes() == data
        gw.umount()
        gw.mount("--poll-interval", "3600")
        assert gw.status()["cache_entries_in_memory"] == 0
        before = scrape(port)
        assert value(before, "cloudgw_cache_files") == len(contents)
        # the usage counted before the remount, kept in the index
        assert value(before, "cloudgw_cache_used_bytes") == cache_bytes(gw.cache_dir) > 0
        os.system("echo 3 > /proc/sys/vm/drop_caches")
        for name, data in contents.items():
            assert (gw.mnt / name).read_bytes() == data
        after = scrape(port)
        assert value(after, "cloudgw_remote_requests_total", op="read") == \
            value(before, "cloudgw_remote_requests_total", op="read")  # all from the cache
        assert value(after, "cloudgw_cache_hits_total") >= len(contents)
        assert gw.status()["cache_entries_in_memory"] == len(contents)  # (recently used: all of them)
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_the_cache_usage_is_counted_again_after_a_kill_9(tmp_path: Path):
    """The usage the evictor goes by is kept in the cache's index and counted again only for
    files that changed; a file written just before a crash was never counted, so after an
    unclean shutdown every file is counted again (else the cache would think itself smaller
    than it is and keep more than its limit)."""
    from tests.mount.test_metrics import scrape, value
    from tests.servers import free_port

    backend = make_backend("file", tmp_path, None)
    for i in range(20):
        backend.view.put(f"f{i}.bin", os.urandom(5000))
    port = free_port()
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env,
                 args=("--metrics-addr", f"127.0.0.1:{port}"))
    try:
        gw.mount("--write-back", "3600", "--poll-interval", "3600")
        for i in range(20):
            (gw.mnt / f"f{i}.bin").read_bytes()
        assert value(scrape(port), "cloudgw_cache_used_bytes") == cache_bytes(gw.cache_dir)
        big = os.urandom(3 * MiB)
        (gw.mnt / "big.bin").write_bytes(big)  # closed, never uploaded, never counted
        gw.kill9()
        gw.mount("--write-back", "3600", "--poll-interval", "3600")
        # counted again by the evictor at start (a scrape shows what is counted so far)
        wait_for(lambda: value(scrape(port), "cloudgw_cache_used_bytes") == cache_bytes(gw.cache_dir), timeout=60)
        assert cache_bytes(gw.cache_dir) > 3 * MiB
        assert (gw.mnt / "big.bin").read_bytes() == big
    finally:
        gw.force_cleanup()


def test_remote_change_during_local_edit_keeps_both_versions(gw):
    view = gw.backend.view
    gw.expected_warnings.append(r"conflict: ")
    (gw.mnt / "report.txt").write_text("original")
    gw.sync()
    gw.umount()
    gw.mount("--write-back", "3600")
    (gw.mnt / "report.txt").write_text("edited here")
    view.put("report.txt", b"edited in the cloud")
    gw.sync()
    files = view.files()
    copies = [p for p in files if p.startswith("report.conflict-") and p.endswith(".txt")]
    assert len(copies) == 1, files
    assert view.get("report.txt") == b"edited here"
    assert view.get(copies[0]) == b"edited in the cloud"
    status = gw.status()
    assert status["conflicts"] == 1 and status["recent_conflicts"][0]["copy"] == copies[0]
    deadline = time.monotonic() + 10
    while not (gw.mnt / copies[0]).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (gw.mnt / copies[0]).read_text() == "edited in the cloud"
    assert (gw.mnt / "report.txt").read_text() == "edited here"
