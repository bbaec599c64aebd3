"""Evicting clean cached data: by total size, by age, and to keep free disk space.

Only entries that nobody has open and that the owner says are evictable (clean:
the remote holds the same content) are ever removed; dirty data is never
evicted.  Least recently used goes first.

Concurrency: runs in the trio thread between requests; an entry that gets
opened is pinned (``users > 0``) and skipped.  Crash behaviour: removing a data
file and its index row are one step from the cache's point of view; the owner's
``on_evicted`` then marks the file REMOTE_ONLY (a crash in between leaves a
CLEAN file with no cached blocks, which simply fetches again).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

import trio

from cloudgw.cache.files import CacheFiles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvictionPolicy:
    max_size: int = 10 << 30  # bytes of cached data
    max_age: float | None = None  # seconds since last access
    min_free: int = 1 << 30  # keep this much free on the cache disk
    interval: float = 30.0  # full pass at least this often
    check_every: float = 1.0  # how often to see whether enough was added for a pass


class Evictor:
    def __init__(
        self,
        files: CacheFiles,
        policy: EvictionPolicy,
        *,
        can_evict: Callable[[int], bool],
        on_evicted: Callable[[int], None],
    ) -> None:
        self.files = files
        self.policy = policy
        self.can_evict = can_evict
        self.on_evicted = on_evicted
        self._kick = trio.Event()

    def kick(self) -> None:
        self._kick.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while not self.files.count_unknown_usage(1024):  # (after an unclean shutdown: ~8 ms a page)
            await trio.sleep(0)
        last_pass = trio.current_time()
        threshold = min(self.policy.max_size // 20, 256 << 20)
        while True:
            with trio.move_on_after(self.policy.check_every):
                await self._kick.wait()
            due = trio.current_time() - last_pass >= self.policy.interval
            if not (self._kick.is_set() or due or self.files.bytes_added >= threshold):
                continue
            self._kick = trio.Event()
            self.files.bytes_added = 0
            last_pass = trio.current_time()
            self.files.flush()
            self.evict_once()

    def _free_bytes(self) -> int:
        st = os.statvfs(self.files.root)
        return st.f_bavail * st.f_frsize

    def make_room(self, needed: int) -> int:
        """Evict clean data, least recently used first, until ``needed`` bytes are free
        on the cache disk (a writer hit ENOSPC).  Returns how many entries went."""
        evicted = 0
        for ino, _ in self.files.least_recently_used():
            if self._free_bytes() >= needed:
                break
            if not self.files.in_use(ino) and self.can_evict(ino):
                self.files.remove(ino)
                self.on_evicted(ino)
                evicted += 1
        if evicted:
            log.info("cache disk full: evicted %d cached files to make room for writes", evicted)
        return evicted

    def evict_once(self) -> int:
        """One pass; returns how many entries were evicted.

        Cost: the total size (``CacheFiles.used_bytes``: a ``SUM`` over the index and a
        ``stat`` per file changed since the last pass), then the index read least recently
        used first only as far as something is too old or the cache too big.
        Memory: a page of the index at a time, whatever the number of cached files."""
        now = time.time()
        total = self.files.used_bytes()
        free = self._free_bytes()
        evicted = 0
        for ino, last_access in self.files.least_recently_used():
            too_old = self.policy.max_age is not None and now - last_access > self.policy.max_age
            over = total > self.policy.max_size or free < self.policy.min_free
            if not (too_old or over):
                break  # the rest were used later, and evicting only ever lowers the usage
            if self.files.in_use(ino) or not self.can_evict(ino):
                continue
            size = self.files.disk_usage(ino)
            self.files.remove(ino)
            self.on_evicted(ino)
            total -= size
            free += size
            evicted += 1
        if evicted:
            log.info("evicted %d cached files; cache now %d bytes", evicted, total)
        return evicted
