"""Diagnostic hook: where the daemon's Python memory grows.

``CLOUDGW_MEMORY_SNAPSHOTS=DIR[,SECONDS]`` makes the daemon trace its Python
allocations (``tracemalloc``, 10 frames deep) from the mount on, and write a
snapshot to ``DIR/snapshot-<seconds since the mount>.tracemalloc`` every
SECONDS (default 300) and once more at its stop, each with a
``.heap.json`` beside it (``cloudgw.heap_stats``: RSS, glibc's bytes in use and
free, SQLite's).  ``python -m benchmarks.memory_growth DIR`` then shows
both over time and lists the allocation sites whose live memory grew between two
snapshots: a leak of Python objects shows up there by file and line; growth of
RSS that shows up nowhere there is the C heap, which the heap figures split into
SQLite, memory glibc hands out, and memory freed but kept resident.

Off unless set, as the other test hooks (``CLOUDGW_FAULTS``, ``CLOUDGW_CRASH_AT``):
tracing slows every allocation and keeps a record per live block.  A snapshot is
taken and written on the trio thread (hundreds of ms for a large heap; FUSE
requests wait meanwhile), which is acceptable for a diagnosis and never happens
otherwise.  The files hold allocation sites (file names and line numbers), no
file contents or secrets.
"""

from __future__ import annotations

import json
import logging
import os
import time
import tracemalloc
from pathlib import Path

import trio

from cloudgw.errors import UserError
from cloudgw.heap_stats import heap_stats

log = logging.getLogger(__name__)

ENV = "CLOUDGW_MEMORY_SNAPSHOTS"
FRAMES = 10  # deep enough to see which caller of a shared helper allocates


class MemorySnapshots:
    def __init__(self, directory: Path, interval: float) -> None:
        self.directory, self.interval = directory, interval
        self._started = time.monotonic()

    @classmethod
    def from_environment(cls) -> MemorySnapshots | None:
        spec = os.environ.get(ENV)
        if not spec:
            return None
        where, _, seconds = spec.partition(",")
        try:
            interval = float(seconds) if seconds else 300.0
            if interval <= 0:
                raise ValueError
        except ValueError:
            raise UserError(f"{ENV}: the interval must be a positive number of seconds, not {seconds!r}") from None
        directory = Path(where)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory, interval)

    def start(self) -> None:
        tracemalloc.start(FRAMES)
        self._started = time.monotonic()
        log.info("tracing Python allocations: a snapshot every %gs in %s (%s)", self.interval, self.directory, ENV)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every ``interval``: one snapshot.  The last one is taken by ``stop``."""
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            self._write_or_log()

    def write(self) -> Path:
        elapsed = int(time.monotonic() - self._started)
        path = self.directory / f"snapshot-{elapsed:07d}.tracemalloc"
        heap = heap_stats()  # first: the snapshot itself takes memory for a moment
        tracemalloc.take_snapshot().dump(str(path))
        path.with_suffix(".heap.json").write_text(json.dumps(heap))
        current, peak = tracemalloc.get_traced_memory()
        log.info("memory snapshot %s: %.1f MiB traced (peak %.1f)", path.name, current / 2**20, peak / 2**20)
        return path

    def stop(self) -> None:
        """The last snapshot, at the stop."""
        self._write_or_log()
        tracemalloc.stop()

    def _write_or_log(self) -> None:
        """A diagnosis that cannot write (a full disk) must not stop the gateway."""
        try:
            self.write()
        except OSError as exc:
            log.warning("could not write a memory snapshot to %s: %s", self.directory, exc)
