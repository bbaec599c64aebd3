"""Smoke run against a real OpenStack Swift with s3api: real-server quirks
(no conditional PUT: check-then-write; whole-second LastModified; DeleteObjects
wanting Content-MD5) must not matter to the user."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.mount.conftest import make_backend
from tests.mount.gateway import Gateway

pytestmark = [pytest.mark.mount, pytest.mark.swift]


def test_swift_smoke(tmp_path: Path, swift_server):
    backend = make_backend("s3", tmp_path, swift_server)
    view = backend.view
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env, args=("--path-style",))
    try:
        gw.mount()
        m = gw.mnt
        (m / "dir").mkdir()
        (m / "dir" / "small.txt").write_text("small")
        big = os.urandom(21 * 1024 * 1024)
        (m / "dir" / "big.bin").write_bytes(big)
        gw.sync()
        assert view.files() == {"dir/small.txt": 5, "dir/big.bin": len(big)}
        os.rename(m / "dir", m / "moved")
        os.unlink(m / "moved" / "small.txt")
        gw.sync()
        assert view.files() == {"moved/big.bin": len(big)}
        view.put("moved/outside.txt", b"from another client")
        deadline = time.monotonic() + 15
        while not (m / "moved" / "outside.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (m / "moved" / "outside.txt").read_bytes() == b"from another client"
        gw.umount()
        gw.mount("--write-back", "3600")
        (m / "moved" / "after-crash.txt").write_text("survives kill -9")
        gw.kill9()
        # a fresh cache: everything is read back from Swift
        gw.cache_dir = tmp_path / "cache2"
        gw.mount()
        assert hashlib.sha256((m / "moved" / "big.bin").read_bytes()).digest() == hashlib.sha256(big).digest()
        gw.umount()
        gw.cache_dir = tmp_path / "cache"
        gw.mount()
        gw.sync()
        assert view.get("moved/after-crash.txt") == b"survives kill -9"
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()
