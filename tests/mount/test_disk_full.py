"""A full cache disk (a small tmpfs as cache dir): clean data is evicted before
anyone gets ENOSPC; when dirty data alone fills it, writers get ENOSPC, nothing
already written is damaged, and writing works again once uploads free space."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from tests.mount.conftest import make_backend
from tests.mount.gateway import Gateway, run_cli

pytestmark = pytest.mark.mount
MiB = 1024 * 1024


@pytest.fixture
def small_cache_disk(tmp_path: Path):
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(cache)], check=True)
    try:
        yield cache
    finally:
        if (cache / "cloudgw.log").exists():  # keep the daemon's log for a failing run
            (tmp_path / "cloudgw.log").write_bytes((cache / "cloudgw.log").read_bytes())
        subprocess.run(["umount", "-l", str(cache)], check=False)


def test_full_cache_disk(tmp_path: Path, small_cache_disk: Path):
    backend = make_backend("file", tmp_path, None)
    clean = {f"clean{i}.bin": os.urandom(10 * MiB) for i in range(3)}
    for name, data in clean.items():
        backend.view.put(name, data)
    gw = Gateway(backend.url, tmp_path / "mnt", small_cache_disk, env=backend.env,
                 args=("--cache-min-free", "0", "--cache-max-size", "1G"),
                 expected_warnings=[r"cache disk full", r"No space left"])
    try:
        gw.mount("--write-back", "3600")
        for name, data in clean.items():
            assert (gw.mnt / name).read_bytes() == data  # 30 MiB of clean data cached
        first = os.urandom(20 * MiB)
        (gw.mnt / "first.bin").write_bytes(first)  # fits only if clean data is evicted
        states = {n: os.getxattr(gw.mnt / n, "user.cloudgw.state") for n in clean}
        assert b"remote_only" in states.values(), states
        with pytest.raises(OSError) as e:
            with open(gw.mnt / "second.bin", "wb") as f:
                for _ in range(40):
                    f.write(os.urandom(MiB))
                    f.flush()
        assert e.value.errno == errno.ENOSPC
        os.system("echo 3 > /proc/sys/vm/drop_caches")
        assert (gw.mnt / "first.bin").read_bytes() == first  # acknowledged data untouched
        os.unlink(gw.mnt / "second.bin")
        gw.sync()  # first.bin is uploaded, so its cached copy becomes clean and evictable
        third = os.urandom(20 * MiB)
        (gw.mnt / "third.bin").write_bytes(third)
        gw.sync()
        assert backend.view.get("first.bin") == first and backend.view.get("third.bin") == third
        assert "second.bin" not in backend.view.files()
        for name, data in clean.items():
            assert (gw.mnt / name).read_bytes() == data
        gw.umount()
        proc = run_cli("fsck", str(small_cache_disk), check=False)
        assert proc.returncode == 0, proc.stdout
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()
