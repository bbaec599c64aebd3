"""The memory diagnosis hook (``CLOUDGW_MEMORY_SNAPSHOTS``, ``cloudgw.memory_snapshots``) on a
real mount: the daemon writes tracemalloc snapshots, and ``benchmarks.memory_growth`` names the
allocation sites that grew, down to our own code, as a developer chasing a soak's growth would
read them.  No timing is asserted: the test waits for snapshot files to appear."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from benchmarks import memory_growth
from tests.mount.conftest import Backend
from tests.mount.gateway import Gateway
from tests.mount.test_cli import assert_clean_failure, cli
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount


def _snapshots(directory: Path) -> list[Path]:
    return sorted(directory.glob("snapshot-*.tracemalloc"))


def test_snapshots_name_the_code_whose_memory_grew(file_backend: Backend, tmp_path: Path):
    snaps = tmp_path / "snapshots"
    gw = Gateway(file_backend.url, tmp_path / "mnt", tmp_path / "cache",
                 env={**file_backend.env, "CLOUDGW_MEMORY_SNAPSHOTS": f"{snaps},1"}, args=file_backend.args)
    cloud = Path(file_backend.url.removeprefix("file://"))
    for i in range(2000):
        (cloud / f"f{i:04d}").write_bytes(b"x")
    try:
        gw.mount()
        before = len(wait_for(lambda: _snapshots(snaps)))
        # memory that stays: the kernel holds these 2,000 inodes once looked up, the daemon an object for each
        held = [os.stat(gw.mnt / f"f{i:04d}") for i in range(2000)]
        wait_for(lambda: len(_snapshots(snaps)) >= before + 2)
        gw.umount()
    finally:
        gw.force_cleanup()
    assert len(held) == 2000
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert memory_growth.main([str(snaps), "--base", "0", "--top", "5"]) == 0
    text = out.getvalue()
    assert "traced Python memory per snapshot" in text
    growth = text.split("growth from", 1)[1]
    grown_kib = int(growth.split(":", 1)[1].split("KiB", 1)[0].replace(",", ""))
    assert grown_kib >= 2000 * 200 // 1024, text  # at least ~200 bytes for each file the kernel holds
    assert "cloudgw/" in growth, text  # the sites are named down to our own modules
    # the C heap beside it, per snapshot: RSS, traced Python, glibc in use / free held / mmapped, SQLite
    rows = [line.strip("|").split("|") for line in text.split("heap per snapshot", 1)[1].splitlines()
            if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(_snapshots(snaps)), text
    rss, traced, in_use, _free_held, _mmapped, sqlite = (float(v.replace(",", "")) for v in rows[-1][1:])
    assert rss > traced > 0.4 and in_use > 0 and sqlite > 0, text  # (MiB) SQLite: the page caches of the mount


def test_a_bad_snapshot_interval_fails_the_mount_with_one_line(file_backend: Backend, tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = cli("mount", file_backend.url, str(mnt), "--cache-dir", str(tmp_path / "cache"),
               env={**file_backend.env, "CLOUDGW_MEMORY_SNAPSHOTS": f"{tmp_path / 's'},soon"})
    assert_clean_failure(proc, "CLOUDGW_MEMORY_SNAPSHOTS", "soon", mnt=mnt)
