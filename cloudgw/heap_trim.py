"""Giving the memory the daemon freed back to the system (glibc's ``malloc_trim``).

Why: glibc keeps what a program frees in its arenas for reuse and hands back to the
kernel only what lies at the top of an arena, so one burst (a big listing, a copy of
many files) leaves the resident set high long after the objects are gone.  Measured on
the soak (``CLOUDGW_MEMORY_SNAPSHOTS``, ``cloudgw.heap_stats``, 2026-12-07): glibc held
29 -> 40 MiB free in its arenas while the memory in use stayed at ~38 MiB, and RSS
crept with the free part.  ``malloc_trim(0)`` returns the free pages of every arena
(``madvise``), wherever they lie.

``HeapTrimmer.run`` looks every ``interval`` seconds and trims only when glibc holds at
least ``threshold`` bytes free, so an idle daemon trims once and then no more.

Blocking: the trim runs in a worker thread (``trio.to_thread``; ctypes releases the
GIL), so FUSE requests keep being served; it locks one arena at a time, so another
thread's ``malloc`` may wait for that arena meanwhile (a few ms for ~100 MiB of heap).
Nothing here changes what the daemon stores.  Without glibc (another libc) it does
nothing.  Test hook: ``CLOUDGW_HEAP_TRIM=SECONDS[,MIB]`` sets the interval and the
threshold (``from_environment``), as the other ``CLOUDGW_`` hooks, never needed in production.
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Awaitable, Callable

import trio

from cloudgw.errors import UserError
from cloudgw.heap_stats import malloc_free_held

log = logging.getLogger(__name__)

ENV = "CLOUDGW_HEAP_TRIM"
INTERVAL = 60.0  # s between looks
THRESHOLD = 16 << 20  # bytes glibc holds free before a trim is worth it


def _glibc_trim() -> Callable[[], object] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class HeapTrimmer:
    def __init__(self, *, interval: float = INTERVAL, threshold: int = THRESHOLD,
                 free_held: Callable[[], int | None] = malloc_free_held,
                 trim: Callable[[], object] | None = None,
                 in_thread: Callable[[Callable[[], object]], Awaitable[object]] = trio.to_thread.run_sync) -> None:
        """``free_held``, ``trim``, ``in_thread``: glibc's figures and call, and how the trim
        is run off the trio thread (tests give their own)."""
        self.interval, self.threshold = interval, threshold
        self._free_held = free_held
        self._trim = trim if trim is not None else _glibc_trim()
        self._in_thread = in_thread
        self.trims = 0

    @classmethod
    def from_environment(cls) -> HeapTrimmer:
        spec = os.environ.get(ENV)
        if not spec:
            return cls()
        seconds, _, mib = spec.partition(",")
        try:
            interval, threshold = float(seconds), float(mib) if mib else THRESHOLD / 2**20
            if interval <= 0 or threshold < 0:
                raise ValueError
        except ValueError:
            raise UserError(f"{ENV}: SECONDS[,MIB] with SECONDS > 0 and MIB >= 0, not {spec!r}") from None
        return cls(interval=interval, threshold=int(threshold * 2**20))

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self._trim is None:
            return
        while True:
            await trio.sleep(self.interval)
            await self.trim_if_worth_it()

    async def trim_if_worth_it(self) -> bool:
        held = self._free_held()
        if self._trim is None or held is None or held < self.threshold:
            return False
        await self._in_thread(self._trim)
        self.trims += 1
        log.debug("heap trimmed: glibc held %.1f MiB free", held / 2**20)
        return True
