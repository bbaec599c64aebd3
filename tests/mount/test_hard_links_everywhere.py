"""The hard-link round trip on every core backend: each places a name in its own way -- a
real link (file://), a conditional server-side copy (S3, S3 through crypt, WebDAV's COPY),
an upload of the cached bytes (OneDrive, Google Drive) -- and ``rsync -aH`` in and back out
keeps the link groups, with one object per name and equal content on the remote."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.mount.conftest import CORE_BACKENDS, Backend, backend_for
from tests.mount.gateway import Gateway
from tests.mount.test_hard_links import RSYNC, ino_groups, run

pytestmark = pytest.mark.mount


@pytest.fixture(params=[b for b in CORE_BACKENDS if b not in ("file", "s3")])  # those two: test_hard_links.py
def backend(request, tmp_path: Path) -> Backend:  # noqa: ANN001
    return backend_for(request, tmp_path)


def test_rsync_aH_keeps_link_groups_and_the_remote_holds_each_name(gw: Gateway, tmp_path: Path):
    src, out, dest = tmp_path / "src", tmp_path / "out", gw.mnt / "tree"
    (src / "d").mkdir(parents=True)
    (src / "a").write_bytes(b"linked content " * 1000)
    os.link(src / "a", src / "d" / "b")
    os.link(src / "a", src / "c")
    (src / "alone").write_bytes(b"one name")
    groups = ino_groups(src)
    run(*RSYNC, f"{src}/", f"{dest}/")
    gw.sync()
    os.unlink(src / "c")  # one name fewer: the next backup takes it away on the mount and the remote
    groups = ino_groups(src)
    run(*RSYNC, "--delete", f"{src}/", f"{dest}/")
    gw.sync()
    run(*RSYNC, f"{dest}/", f"{out}/")
    assert run(*RSYNC, "-n", "-i", "--delete", f"{src}/", f"{out}/") == ""
    assert ino_groups(out) == groups
    view = gw.backend.view  # type: ignore[attr-defined]
    assert view.get("tree/a") == view.get("tree/d/b") == b"linked content " * 1000
    assert sorted(view.files()) == ["tree/a", "tree/alone", "tree/d/b"]
    assert gw.status()["conflicts"] == 0
