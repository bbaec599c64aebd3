"""Test trees of random files, the same bytes on every run (seeded)."""

from __future__ import annotations

import random
from pathlib import Path


def write_tree(root: Path, files: dict[str, int], seed: int) -> Path:
    """``files`` (relative path -> size) under ``root``, random bytes from ``seed``."""
    rng = random.Random(seed)
    for name, size in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(rng.randbytes(size))
    return root
