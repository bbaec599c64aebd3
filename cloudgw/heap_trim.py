"""Giving the memory the daemon freed back to the system (glibc's ``malloc_trim``).

Why: glibc keeps what a program frees in its arenas for reuse and hands back to the
kernel only what lies at the top of an arena, so bursts (a big listing, a copy of many
files) leave the resident set high long after the objects are gone.  Measured on the
soak (``CLOUDGW_MEMORY_SNAPSHOTS``, ``cloudgw.heap_stats``, 2026-12-07): glibc held
29 -> 40 MiB free in its arenas while the memory in use stayed at ~38 MiB, and RSS
crept as more of those free pages were touched again.  ``malloc_trim(0)`` hands the
free pages of every arena back (``madvise``), wherever they lie.

When: ``HeapTrimmer.run`` looks every ``interval`` seconds and trims when the resident
memory glibc is not handing out (``heap_stats.resident_not_in_use``: RSS less glibc's
bytes in use) has grown by ``threshold`` since the last trim (or the start).  Not glibc's
free figure: it still counts trimmed pages as free, so it would trim at every look.  Not
RSS alone: a trim in the middle of a burst would take the burst's peak as the new normal,
and the memory the burst frees afterwards would never be given back.  So an idle daemon
never trims, a burst is trimmed once it is freed, and memory in use never triggers one.

Blocking: the trim runs in a worker thread (``trio.to_thread``; ctypes releases the
GIL), so FUSE requests keep being served; it locks one arena at a time, so another
thread's ``malloc`` may wait for that arena meanwhile (measured: 2-28 ms for a heap of
~200 MB fragmented into 200,000 blocks).  Nothing here changes what the daemon stores.
Without glibc (another libc) or ``/proc`` it does nothing.  Test hook:
``CLOUDGW_HEAP_TRIM=SECONDS[,MIB]`` sets the interval and the threshold
(``from_environment``), as the other ``CLOUDGW_`` hooks; never needed in production.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Awaitable, Callable

import trio

from cloudgw.errors import UserError
from cloudgw.heap_stats import malloc_trim, resident_not_in_use

log = logging.getLogger(__name__)

ENV = "CLOUDGW_HEAP_TRIM"
INTERVAL = 60.0  # s between looks
THRESHOLD = 16 << 20  # growth of the resident memory not in use since the last trim that makes a trim worth it


class HeapTrimmer:
    def __init__(self, *, interval: float = INTERVAL, threshold: int = THRESHOLD,
                 unused: Callable[[], int | None] = resident_not_in_use,
                 trim: Callable[[], object] | None = None,
                 in_thread: Callable[[Callable[[], object]], Awaitable[object]] = trio.to_thread.run_sync) -> None:
        """``unused``, ``trim``, ``in_thread``: the resident bytes not in use, glibc's call, and
        how the trim is run off the trio thread (tests give their own)."""
        self.interval, self.threshold = interval, threshold
        self._unused = unused
        self._trim = trim if trim is not None else malloc_trim()
        self._in_thread = in_thread
        self._baseline: int | None = None  # ``unused`` after the last trim (or at the start)
        self.trims = 0

    @classmethod
    def from_environment(cls) -> HeapTrimmer:
        spec = os.environ.get(ENV)
        if not spec:
            return cls()
        seconds, _, mib = spec.partition(",")
        try:
            interval, threshold = float(seconds), float(mib) if mib else THRESHOLD / 2**20
            if not (0 < interval < math.inf and 0 <= threshold < math.inf):  # (refuses nan too)
                raise ValueError
        except ValueError:
            raise UserError(f"{ENV}: SECONDS[,MIB] with SECONDS > 0 and MIB >= 0, not {spec!r}") from None
        return cls(interval=interval, threshold=int(threshold * 2**20))

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self._trim is None or self.reset_baseline() is None:
            return
        while True:
            await trio.sleep(self.interval)
            await self.trim_if_worth_it()

    def reset_baseline(self) -> int | None:
        """Take what is resident and not in use now as the level growth is measured from."""
        self._baseline = self._unused()
        return self._baseline

    async def trim_if_worth_it(self) -> bool:
        unused = self._unused()
        if self._trim is None or unused is None:
            return False
        if self._baseline is not None and unused - self._baseline < self.threshold:
            return False
        await self._in_thread(self._trim)
        self.trims += 1
        self._baseline = self._unused()
        log.debug("heap trimmed: resident and not in use %.1f -> %.1f MiB", unused / 2**20,
                  (self._baseline or 0) / 2**20)
        return True
