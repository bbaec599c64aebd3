"""Crashes (kill -9 of the daemon) and remote outages: nothing acknowledged is lost."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.mount.conftest import Backend, make_backend
from tests.mount.gateway import Gateway
from tests.servers.proxy import outage_proxy

pytestmark = pytest.mark.mount


def test_kill9_with_dirty_files_then_remount_uploads_everything(gw):
    """Write-back 1 h so nothing is uploaded before the crash."""
    view = gw.backend.view
    gw.umount()
    gw.mount("--write-back", "3600")
    m = gw.mnt
    (m / "proj").mkdir()
    (m / "proj" / "a.txt").write_text("alpha")
    (m / "proj" / "b.txt").write_text("beta")
    (m / "proj" / "doomed.txt").write_text("to be deleted")
    os.unlink(m / "proj" / "doomed.txt")
    os.rename(m / "proj" / "b.txt", m / "proj" / "b-renamed.txt")
    big = os.urandom(9 * 1024 * 1024 + 123)
    (m / "big.bin").write_bytes(big)
    (m / "emptydir").mkdir()
    # a file still open (never closed) when the daemon dies: what was written is kept
    f = open(m / "open.log", "wb")
    f.write(b"written before the crash\n" * 1000)
    f.flush()
    assert view.files() == {}
    gw.kill9()
    try:
        f.close()
    except OSError:
        pass
    gw.mount()
    assert (m / "open.log").read_bytes() == b"written before the crash\n" * 1000
    gw.sync()
    files = view.files()
    assert files == {"proj/a.txt": 5, "proj/b-renamed.txt": 4, "big.bin": len(big), "open.log": 25000}
    assert hashlib.sha256(view.get("big.bin")).digest() == hashlib.sha256(big).digest()
    assert sorted(os.listdir(m)) == ["big.bin", "emptydir", "open.log", "proj"]


def test_kill9_after_in_place_edits_of_uploaded_files_keeps_the_edits(gw):
    """Edits into files already on the remote (blocks that came from it), closed, then
    kill -9 before the upload: after the restart the cache must not fetch those blocks
    again from the remote over the edits (it did: the block maps were dropped)."""
    view = gw.backend.view
    m = gw.mnt
    base = bytearray(os.urandom(3 * 1024 * 1024 + 77))
    (m / "db.bin").write_bytes(base)
    (m / "notes.txt").write_text("v1 " * 1000)
    gw.sync()
    gw.umount()
    gw.mount("--write-back", "3600")
    with open(m / "db.bin", "r+b") as f:
        f.seek(1024 * 1024 + 10)
        f.write(b"edited in place")
        os.fsync(f.fileno())
    base[1024 * 1024 + 10:1024 * 1024 + 25] = b"edited in place"
    with open(m / "notes.txt", "r+") as f:
        f.write("v2")
    gw.kill9()
    gw.mount()
    assert (m / "db.bin").read_bytes() == base
    gw.sync()
    assert view.get("db.bin") == base
    assert view.get("notes.txt") == ("v2 " + "v1 " * 999).encode()


def test_kill9_after_upload_then_delete_no_resurrection(gw):
    view = gw.backend.view
    (gw.mnt / "x.txt").write_text("x")
    gw.sync()
    assert "x.txt" in view.files()
    gw.umount()
    gw.mount("--write-back", "3600")
    os.unlink(gw.mnt / "x.txt")
    gw.kill9()
    gw.mount()
    gw.sync()
    assert "x.txt" not in view.files()
    assert not (gw.mnt / "x.txt").exists()


def test_remote_outage_reads_fail_fast_writes_land_uploads_resume(tmp_path: Path, moto_server):
    with outage_proxy(int(moto_server.endpoint_url.rsplit(":", 1)[1])) as proxy:
        backend = make_backend("s3", tmp_path, moto_server)
        backend.env["AWS_ENDPOINT_URL"] = proxy.endpoint_url
        gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env,
                     args=("--path-style", "--remote-timeout", "3"),
                     expected_warnings=[r"failed", r"remote error", r"Could not connect", r"unreachable"])
        try:
            gw.mount()
            backend.view.put("tree/uncached.bin", os.urandom(3 * 1024 * 1024))
            (gw.mnt / "cached.txt").write_text("cached content")
            gw.sync()
            gw.poll()
            assert sorted(os.listdir(gw.mnt / "tree")) == ["uncached.bin"]

            proxy.down()
            # metadata and cached data keep working without the network
            listing = subprocess.run(["ls", "-lR", str(gw.mnt)], capture_output=True, text=True, timeout=10)
            assert listing.returncode == 0 and "uncached.bin" in listing.stdout
            assert (gw.mnt / "cached.txt").read_text() == "cached content"
            # uncached data: a clear EIO after the bounded remote timeout, no hang
            start = time.monotonic()
            with pytest.raises(OSError) as e:
                (gw.mnt / "tree" / "uncached.bin").read_bytes()
            assert e.value.errno == errno.EIO
            assert time.monotonic() - start < 30
            # writes still land in the cache
            (gw.mnt / "written-offline.txt").write_text("while the cloud was away")
            assert (gw.mnt / "written-offline.txt").read_text() == "while the cloud was away"
            deadline = time.monotonic() + 20
            while gw.status()["failed_files"] == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            status = gw.status()
            assert status["pending"] >= 1 and status["failed_files"] >= 1

            proxy.up()
            gw.sync()
            assert backend.view.get("written-offline.txt") == b"while the cloud was away"
            assert gw.status()["pending"] == 0
            gw.umount()
        finally:
            gw.force_cleanup()
        assert not gw.bad_log_lines()
