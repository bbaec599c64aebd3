"""Fixtures shared by the in-process tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """``(cloud, cache)``: an existing empty directory for a LocalRemote and a cache dir path."""
    cloud, cache = tmp_path / "cloud", tmp_path / "cache"
    cloud.mkdir()
    return cloud, cache
