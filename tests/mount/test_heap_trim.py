"""The daemon gives freed heap memory back (``cloudgw.heap_trim``; its effect on a fragmented
heap is shown in tests/test_heap_trim.py): on a real mount the trimmer runs beside the FUSE
requests, and a bad ``CLOUDGW_HEAP_TRIM`` is a one-line mount error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.mount.conftest import Backend
from tests.mount.gateway import Gateway
from tests.mount.test_cli import assert_clean_failure, cli
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount


def test_the_daemon_trims_its_heap_while_serving(file_backend: Backend, tmp_path: Path):
    gw = Gateway(file_backend.url, tmp_path / "mnt", tmp_path / "cache",
                 env={**file_backend.env, "CLOUDGW_HEAP_TRIM": "0.2,0"}, args=file_backend.args)
    try:
        gw.mount()
        data = os.urandom(1 << 20)
        for i in range(8):  # 1 MiB writes: buffers the daemon frees once each request is answered
            (gw.mnt / f"f{i}").write_bytes(data)
        wait_for(lambda: "heap trimmed" in gw.log())
        assert all((gw.mnt / f"f{i}").read_bytes() == data for i in range(8))  # served throughout
        gw.umount()
    finally:
        gw.force_cleanup()


def test_a_bad_heap_trim_setting_fails_the_mount_with_one_line(file_backend: Backend, tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = cli("mount", file_backend.url, str(mnt), "--cache-dir", str(tmp_path / "cache"),
               env={**file_backend.env, "CLOUDGW_HEAP_TRIM": "often"})
    assert_clean_failure(proc, "CLOUDGW_HEAP_TRIM", "often", mnt=mnt)
