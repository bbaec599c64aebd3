"""The POSIX suite runs through the real mount (``gw``: file:// and S3).

``CLOUDGW_POSIX_LOCAL=1`` (or a directory) runs the same tests on a plain local
directory instead (pytest's tmp dir, or a fresh one under the given directory, e.g.
/dev/shm for tmpfs), so each assertion can be checked against what Linux itself does:

    CLOUDGW_POSIX_LOCAL=1 .venv/bin/pytest tests/mount/posix --runxfail

(``--runxfail`` runs the checks marked xfail for cloudgw as plain tests.)  A remount is
a no-op there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator

import pytest


class LocalDir:
    """What the tests use of a ``Gateway``, on a local directory."""

    def __init__(self, mnt: Path) -> None:
        self.mnt = mnt

    def mount(self) -> None:
        pass

    def umount(self) -> None:
        pass


if os.environ.get("CLOUDGW_POSIX_LOCAL"):
    @pytest.fixture
    def gw(tmp_path: Path) -> Iterator[LocalDir]:
        base = os.environ["CLOUDGW_POSIX_LOCAL"]
        if base == "1":
            root = tmp_path / "local"
            root.mkdir()
            yield LocalDir(root)
            return
        with tempfile.TemporaryDirectory(dir=base) as d:
            yield LocalDir(Path(d))
