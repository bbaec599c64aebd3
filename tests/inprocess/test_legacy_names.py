"""A share whose names are not all UTF-8 (old NAS shares in Latin-1): the entries that
cannot be shown are skipped with one warning each, and everything else, including the
polls that follow, works.  (Before: the listing and every poll failed.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import running


@pytest.mark.allow_warnings("is not valid UTF-8")
async def test_names_that_are_not_utf8_are_skipped_and_the_rest_is_shown(tmp_path: Path, caplog):  # noqa: ANN001
    cloud = tmp_path / "cloud"
    raw = os.fsencode(cloud)
    os.makedirs(raw + b"/d/caf\xe9")  # Latin-1 'café'
    for name in (b"/ok.txt", b"/d/r\xe9sum\xe9.txt", b"/d/caf\xe9/inside.txt", b"/d/fine.txt"):
        with open(raw + name, "wb") as f:
            f.write(b"x")
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        assert await h.listdir("") == ["d", "ok.txt"]
        assert await h.listdir("d") == ["fine.txt"]
        with open(raw + b"/new\xff.txt", "wb") as f:
            f.write(b"y")
        (cloud / "new-ok.txt").write_text("z")
        assert (await h.engine.poller.poll()).changed == 1  # the poll works: new-ok.txt
        assert (await h.engine.poller.poll()).changed == 0
        assert await h.listdir("") == ["d", "new-ok.txt", "ok.txt"]
    warnings = [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert len(warnings) == 4  # résumé.txt, café, café/inside.txt, new\xff.txt: once each, not once per poll
