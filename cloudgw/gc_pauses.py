"""CPython's cyclic garbage collector on the request path: its full pauses made short, and timed.

Every FUSE request waits while the collector runs on the trio thread, and a full
(generation 2) collection walks every object the collector tracks.  Right after
start most of those are the interpreter's and the libraries' own -- modules, classes,
functions, and on S3 botocore's service models -- which live as long as the daemon
and are never garbage: ~29,000 objects on ``file://`` (a full collection ~7 ms on the
2-core test machine), ~80,000 with a botocore client (~20-50 ms).  Each full
collection paid for them again, stalling every request behind it.

``freeze_startup_heap``, once the mount answers: one collection, then ``gc.freeze()``
moves every surviving object to the permanent generation, which later collections
skip.  Memory is unchanged: reference counting still frees frozen objects; only a
reference cycle made of objects alive at that moment and broken later would stay (a
one-off, bounded by the startup heap).  What the kernel's inode cache pins later
(one ``Inode`` per cached inode) is collected as before.

``PauseTimer`` times each collection (a ``gc.callbacks`` entry) into a histogram by
generation (``cloudgw_gc_pause_seconds`` in the metrics).  Concurrency: a callback
runs in whichever thread triggered the collection, worker threads included, with the
GIL held; collections never nest, so one start time per timer is enough.
"""

from __future__ import annotations

import bisect
import gc
import logging
import time
from typing import Any, Sequence

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections; returns
    how many were frozen.  Costs one full collection, on the calling thread."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d startup objects for the garbage collector in %.1f ms",
              frozen, (time.perf_counter() - started) * 1e3)
    return frozen


class PauseTimer:
    """A histogram of collection pauses by generation, kept between ``install`` and ``remove``.

    Plain lists, no locks: the callback may run while the same thread holds a lock of
    prometheus_client's (a collection triggered inside one of its ``with self._lock``
    blocks), so observing into a prometheus ``Histogram`` there could deadlock; the
    metrics read ``histogram()`` at scrape time instead.  Collections never nest (the
    interpreter runs no collection while its callbacks run), so the counts cannot race.
    """

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)  # upper bounds, ascending; the last one should be inf
        self._counts = [[0] * len(self.buckets) for _ in range(3)]  # by generation, not cumulative
        self._sums = [0.0, 0.0, 0.0]
        self._started = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def histogram(self, generation: int) -> tuple[list[tuple[float, int]], float]:
        """``([(upper bound, cumulative count), ...], sum of seconds)`` of one generation."""
        cumulative, total = [], 0
        for bound, count in zip(self.buckets, self._counts[generation]):
            total += count
            cumulative.append((bound, total))
        return cumulative, self._sums[generation]

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        generation = info["generation"]
        self._sums[generation] += seconds
        self._counts[generation][bisect.bisect_left(self.buckets, seconds)] += 1
