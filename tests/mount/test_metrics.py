"""Prometheus metrics and ``cloudgw status --files``, on a real mount of the real daemon.

``/metrics`` is scraped over HTTP with urllib and parsed with prometheus_client's
own parser, as Prometheus would read it; the values must move as files are
written, uploaded and read.  No timing is asserted.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.mount.conftest import Backend, make_backend
from tests.mount.gateway import Gateway, run_cli
from tests.mount.test_cli import assert_clean_failure, cli
from tests.mount.util import extra_gateway, wait_for
from tests.servers import free_port

pytestmark = pytest.mark.mount

KiB = 1 << 10


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples carrying ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def cold_file(gw: Gateway, backend: Backend, name: str, data: bytes) -> Path:
    """A file put on the remote behind the gateway's back, seen in the mount, never read."""
    backend.view.put(name, data)
    gw.poll()
    path = gw.mnt / name
    wait_for(path.exists)
    return path


def read_uncached_by_kernel(path: Path) -> bytes:
    """Read ``path`` with the kernel's page cache of it dropped first, so the read reaches
    the daemon (which answers from its disk cache or the remote)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def test_metrics_move_as_files_are_written_uploaded_and_read(file_backend: Backend, tmp_path: Path):
    port = free_port()
    # a long write-back delay: the written file stays dirty until 'sync'
    with extra_gateway(file_backend, tmp_path, "--metrics-addr", f"127.0.0.1:{port}", "--write-back", "3600") as gw:
        start = scrape(port)
        assert value(start, "cloudgw_dirty_files") == 0
        assert value(start, "cloudgw_uploaded_bytes_total", remote="") == 0
        assert value(start, "cloudgw_build_info") == 1
        assert ("process_start_time_seconds", frozenset()) in start

        data = os.urandom(300 * KiB)
        (gw.mnt / "new.bin").write_bytes(data)
        dirty = scrape(port)
        assert value(dirty, "cloudgw_dirty_files") == 1
        assert value(dirty, "cloudgw_dirty_bytes") == len(data)
        assert value(dirty, "cloudgw_pending_changes") >= 1
        assert value(dirty, "cloudgw_oldest_dirty_age_seconds") > 0  # present, and 0 only when nothing is dirty
        assert value(dirty, "cloudgw_cache_used_bytes") >= len(data)

        gw.sync()
        synced = scrape(port)
        assert value(synced, "cloudgw_dirty_files") == 0 and value(synced, "cloudgw_dirty_bytes") == 0
        assert value(synced, "cloudgw_oldest_dirty_age_seconds") == 0
        assert value(synced, "cloudgw_uploads_in_progress") == 0
        assert value(synced, "cloudgw_uploaded_bytes_total", remote="") >= len(data)
        assert value(synced, "cloudgw_remote_requests_total", op="write") > value(dirty, "cloudgw_remote_requests_total",
                                                                                   op="write")
        assert value(synced, "cloudgw_remote_request_duration_seconds_count", op="write") >= 1
        assert value(synced, "cloudgw_remote_errors_total") == 0

        cold = os.urandom(200 * KiB)
        path = cold_file(gw, file_backend, "cold.bin", cold)
        polled = scrape(port)
        assert value(polled, "cloudgw_last_poll_timestamp_seconds") > 0
        assert path.read_bytes() == cold
        first = scrape(port)
        assert value(first, "cloudgw_cache_misses_total") > value(polled, "cloudgw_cache_misses_total")
        assert value(first, "cloudgw_downloaded_bytes_total", remote="") >= value(
            polled, "cloudgw_downloaded_bytes_total", remote="") + len(cold)
        assert value(first, "cloudgw_remote_requests_total", op="read") > 0

        assert read_uncached_by_kernel(path) == cold
        again = scrape(port)
        assert value(again, "cloudgw_cache_hits_total") > value(first, "cloudgw_cache_hits_total")
        assert value(again, "cloudgw_cache_misses_total") == value(first, "cloudgw_cache_misses_total")
        assert value(again, "cloudgw_downloaded_bytes_total") == value(first, "cloudgw_downloaded_bytes_total")

        # the Grafana dashboard asks only for metrics that exist
        dashboard = (Path(__file__).parents[2] / "contrib" / "grafana" / "cloudgw.json").read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
            families = {f.name for f in text_string_to_metric_families(reply.read().decode())}
        used = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in re.findall(r"cloudgw_[a-z_]+", dashboard)}
        assert used - {"cloudgw"} <= families, used - families

        # what else answers on the port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as reply:
            assert b"/metrics" in reply.read()
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=30)
        assert exc.value.code == 404


def test_the_startup_heap_is_frozen_and_the_garbage_collectors_pauses_are_counted(file_backend: Backend,
                                                                                  tmp_path: Path):
    """What an administrator reads to tell a stall of the collector from a slow disk or cloud."""
    port = free_port()
    with extra_gateway(file_backend, tmp_path, "--metrics-addr", f"127.0.0.1:{port}", "--write-back", "3600") as gw:
        start = scrape(port)
        # trio, pyfuse3, our own modules: tens of thousands of objects no later full collection walks
        assert value(start, "cloudgw_gc_frozen_objects") > 10_000
        # the one full collection before the freeze, timed like every later one
        assert value(start, "cloudgw_gc_pause_seconds_count", generation="2") >= 1
        assert value(start, "cloudgw_gc_pause_seconds_sum", generation="2") > 0
        assert value(start, "cloudgw_gc_pause_seconds_bucket", generation="2", le="+Inf") == value(
            start, "cloudgw_gc_pause_seconds_count", generation="2")

        folder = gw.mnt / "many"
        folder.mkdir()
        for i in range(2000):  # each pins an inode and a cache entry: thousands of objects, so young collections
            (folder / f"f{i:04d}").write_bytes(b"x")
        busy = scrape(port)
        assert value(busy, "cloudgw_gc_pause_seconds_count", generation="0") > value(
            start, "cloudgw_gc_pause_seconds_count", generation="0")
        assert value(busy, "cloudgw_gc_frozen_objects") > 10_000  # (fewer as frozen objects die: refcounts free them)


def test_a_mount_of_several_remotes_labels_them_and_takes_the_address_from_the_config(tmp_path: Path):
    port = free_port()
    clouds = {name: tmp_path / f"cloud-{name}" for name in ("docs", "media")}
    for root in clouds.values():
        root.mkdir()
    mnt, cache = tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    config = tmp_path / "cloudgw.toml"
    config.write_text(f'[cache]\ndir = "{cache}"\n\n[sync]\nwrite_back = 0.2\npoll_interval = 1\n\n'
                      f'[metrics]\naddr = "{port}"\n\n'  # no host: loopback
                      + "".join(f'[remotes.{name}]\nurl = "file://{root}"\n\n' for name, root in clouds.items()))
    gw = Gateway("(config)", mnt, cache)
    try:
        run_cli("mount", "--config", str(config), str(mnt), "--log-level", "DEBUG")
        (mnt / "docs" / "a.txt").write_bytes(b"a" * 1000)
        (mnt / "media" / "b.bin").write_bytes(b"b" * 5000)
        gw.sync()
        samples = scrape(port)
        assert value(samples, "cloudgw_uploaded_bytes_total", remote="docs") >= 1000
        assert value(samples, "cloudgw_uploaded_bytes_total", remote="media") >= 5000
        assert value(samples, "cloudgw_remote_requests_total", remote="docs", op="write") >= 1
        assert value(samples, "cloudgw_remote_requests_total", remote="media", op="write") >= 1
        assert value(samples, "cloudgw_remote_requests_total", remote="") == 0  # every request names its remote
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_a_metrics_port_in_use_fails_the_mount_with_one_line(file_backend: Backend, tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = cli("mount", file_backend.url, str(mnt), "--cache-dir", str(tmp_path / "cache"),
                   "--metrics-addr", f"127.0.0.1:{port}")
        assert_clean_failure(proc, "metrics", str(port), mnt=mnt)
    for bad in ("nonsense", "127.0.0.1:99999", "::1:9464"):
        proc = cli("mount", file_backend.url, str(mnt), "--cache-dir", str(tmp_path / "cache"), "--metrics-addr", bad)
        assert_clean_failure(proc, "metrics address", mnt=mnt)


def status_files(gw: Gateway) -> dict:
    return json.loads(run_cli("status", str(gw.mnt), "--files", "--json", env=gw.env).stdout)


def test_status_files_lists_the_upload_queue(file_backend: Backend, tmp_path: Path):
    with extra_gateway(file_backend, tmp_path, "--write-back", "3600") as gw:
        assert status_files(gw)["files"] == []
        (gw.mnt / "sub").mkdir()
        (gw.mnt / "sub" / "waiting.txt").write_bytes(b"x" * 1234)
        doc = status_files(gw)
        rows = {r["path"]: r for r in doc["files"]}
        row = rows["sub/waiting.txt"]
        assert (row["queue"], row["state"], row["kind"], row["size"]) == ("waiting", "dirty", "file", 1234)
        assert row["attempts"] == 0 and row["last_error"] is None
        assert row["next_try"] > doc["time"] + 3000  # the write-back delay
        assert row["changed"] <= doc["time"]
        assert doc["files_total"] == len(doc["files"]) and doc["files_more"] == 0

        text = run_cli("status", str(gw.mnt), "--files", env=gw.env).stdout
        line = next(line for line in text.splitlines() if "sub/waiting.txt" in line)
        assert line.split()[:4] == ["waiting", "dirty", "1.2", "KiB"]

        gw.sync()
        assert status_files(gw)["files"] == []
        assert "upload queue: empty" in run_cli("status", str(gw.mnt), "--files", env=gw.env).stdout


def test_status_files_shows_a_failing_upload_with_its_error_and_next_try(tmp_path: Path):
    backend = make_backend("file", tmp_path, None)
    backend.env["CLOUDGW_FAULTS"] = "rate=1;faults=error;ops=write;retry=0"  # every upload fails
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env,
                 expected_warnings=["upload of failing.txt failed", "changes still pending"])
    try:
        gw.mount()
        (gw.mnt / "failing.txt").write_bytes(b"f" * 100)

        def failed_row() -> dict | None:
            rows = [r for r in status_files(gw)["files"] if r["path"] == "failing.txt" and r["attempts"] >= 1]
            return rows[0] if rows else None

        row = wait_for(failed_row, timeout=60)
        assert row["queue"] in ("retrying", "uploading")
        assert "injected" in (row["last_error"] or "")
        if row["queue"] == "retrying":
            assert row["next_try"] is not None and row["next_try"] >= row["changed"]
        text = run_cli("status", str(gw.mnt), "--files", env=gw.env).stdout
        assert "failing.txt" in text and "injected" in text
        # unmount: what cannot be uploaded stays queued on disk (exit 1 says so)
        proc = run_cli("umount", str(gw.mnt), "--timeout", "1", env=gw.env, check=False)
        assert proc.returncode == 1 and "still pending" in proc.stderr
        gw.wait_gone()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()
