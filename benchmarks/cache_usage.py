"""The cache's total disk usage at scale: ``python -m benchmarks.cache_usage [--files N] [--dir DIR]``.

What the evictor (every 30 s) and a metrics scrape ask for: ``CacheFiles.used_bytes``,
a ``SUM`` over the index plus a ``stat`` of each data file changed since the last count.
Before 2026-12-07 it was a ``stat`` of every cached file, timed here as the baseline on
the same cache.  Builds (once, in ``--dir``) a cache of N files of 100 bytes, then
prints the time of: the stat of every file, ``used_bytes`` after a clean start, again,
after 1,000 files were opened for writing, and after an unclean shutdown (every file is
counted once).  In-process, no mount; no timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import closing
from pathlib import Path
from typing import Callable

from cloudgw.cache.files import CacheFiles


def _build(root: Path, files: int) -> None:
    with closing(CacheFiles(root)) as cache:
        with cache._transaction():  # one commit: building is not what is measured
            for ino in range(2, files + 2):
                entry = cache.entry_for(ino, rev="r", remote_size=100)
                os.pwrite(cache.open_fd(entry), b"x" * 100, 0)
                cache.release(entry)


def _timed(what: str, call: Callable[[], int]) -> None:
    start = time.perf_counter()
    total = call()
    print(f"{what:48} {time.perf_counter() - start:8.4f} s   ({total:,} bytes)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/cloudgw-cache-usage"))
    args = ap.parse_args(argv)
    root = args.dir / str(args.files)
    if not (root / "cache-index.db").exists():
        _build(root, args.files)
    with closing(CacheFiles(root)) as cache:
        _timed("stat of every cached file (before 2026-12-07)", lambda: sum(map(cache.disk_usage, cache.inos())))
        _timed("used_bytes, clean start", cache.used_bytes)
        _timed("used_bytes again", cache.used_bytes)
        for ino in range(2, min(1002, args.files + 2)):
            entry = cache.get(ino)
            cache.open_fd(entry)
            cache.release(entry)
        _timed("used_bytes after 1,000 files opened to write", cache.used_bytes)
    with closing(CacheFiles(root, trust_maps=False)) as cache:
        _timed("used_bytes after an unclean shutdown", cache.used_bytes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
