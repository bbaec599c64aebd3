"""A file:// share with names that are not UTF-8 (an old NAS share in Latin-1), through
the mount: those entries are skipped with a warning, everything else is shown and
synced, and remote changes keep arriving (the poll used to fail on such a name)."""

from __future__ import annotations

import os

import pytest

from tests.mount.util import wait_for

pytestmark = pytest.mark.mount


def test_a_share_with_latin1_names_still_mounts_lists_and_polls(file_gw):
    gw, view = file_gw, file_gw.backend.view
    gw.expected_warnings += [r"skipping remote entry .*: its name is not valid UTF-8"]
    raw = os.fsencode(view.root)
    os.makedirs(raw + b"/old/caf\xe9")
    with open(raw + b"/old/r\xe9sum\xe9.txt", "wb") as f:
        f.write(b"latin-1 name")
    view.put("old/fine.txt", b"fine")
    wait_for(lambda: (gw.mnt / "old" / "fine.txt").exists(), timeout=10)
    assert os.listdir(gw.mnt / "old") == ["fine.txt"]
    view.put("later.txt", b"seen after the skipped names")
    wait_for(lambda: (gw.mnt / "later.txt").exists(), timeout=10)
    (gw.mnt / "old" / "mine.txt").write_text("mine")
    gw.sync()
    assert view.get("old/mine.txt") == b"mine"
    assert os.listdir(raw + b"/old").count(b"r\xe9sum\xe9.txt") == 1  # left alone on the remote
