"""Renaming a big directory through the mount: one remote call where the remote renames
directories (file:// here; WebDAV's MOVE in test_webdav_mount.py), every file in place
afterwards, inode numbers kept, and a poll that finds nothing to change."""

from __future__ import annotations

import os
import re

import pytest

pytestmark = pytest.mark.mount

N_FILES = 1000


def test_a_directory_of_1000_files_is_renamed_with_one_remote_call(file_gw):
    gw, view = file_gw, file_gw.backend.view
    d = gw.mnt / "projects"
    (d / "sub").mkdir(parents=True)
    for i in range(N_FILES):
        (d / f"f{i:04d}.txt").write_bytes(b"%d" % i)
    (d / "sub" / "deep.txt").write_text("deep")
    gw.sync()
    ino = os.stat(d / "f0042.txt").st_ino
    log_before = len(gw.log())
    os.rename(d, gw.mnt / "archive-2026")
    gw.sync()
    log = gw.log()[log_before:]
    assert len(re.findall(r"moved directory projects -> archive-2026", log)) == 1
    assert not re.findall(r"moved projects/", log) and "uploaded" not in log  # no per-file moves or uploads
    files = view.files()
    assert len(files) == N_FILES + 1 and all(p.startswith("archive-2026/") for p in files)
    assert view.get("archive-2026/f0042.txt") == b"42" and view.get("archive-2026/sub/deep.txt") == b"deep"
    assert os.stat(gw.mnt / "archive-2026" / "f0042.txt").st_ino == ino
    gw.poll()
    assert len(os.listdir(gw.mnt / "archive-2026")) == N_FILES + 1
    assert gw.status()["dirty_files"] == 0
