"""Per-block checksums of clean cache data: a damaged cache disk must never serve
(or upload) wrong bytes.

A block's CRC-32 is taken when its bytes are known to equal the remote's: when
the fetcher writes it (from the data in hand) or, for data that was uploaded,
by ``Checksummer`` in a worker thread soon after the upload.  Blocks the user
writes lose their checksum (``CacheEntry.mark_written``) until the file is
clean again.  A summed block is verified the first time it is read in a
daemon's lifetime (``verify_range``), before an upload reads it, and by
``cloudgw fsck``; a mismatch forgets the block, so it is fetched again from the
remote revision the file is pinned to (or the read fails with EIO if the remote
no longer has it).  Never wrong bytes.

Why CRC-32: zlib's runs at several GB/s here (no new dependency) and releases
the GIL; it guards against disk damage, not against an adversary.

Cost: one pread + CRC of each 1 MiB block on its first read after a mount.

Concurrency: maps are only changed on the trio thread; the worker thread only
reads the data file.  A write while a block is being summed bumps
``entry.writes`` and the result is dropped.
"""

from __future__ import annotations

import logging
import os
import zlib
from typing import Callable

import trio

from cloudgw.cache.files import BLOCK_SIZE, PRESENT, SUMMED, CacheEntry, CacheFiles

log = logging.getLogger(__name__)


def block_span(entry: CacheEntry, block: int) -> tuple[int, int]:
    """(offset, length) of ``block``'s remote bytes; length <= 0 once a truncation cut it off.
    Taken in the trio thread: a worker must not read ``fetch_limit`` while a truncate moves it."""
    offset = block * BLOCK_SIZE
    return offset, min(BLOCK_SIZE, entry.fetch_limit - offset)


def span_crc(fd: int, offset: int, length: int) -> int | None:
    """CRC-32 of [offset, offset+length) as the data file holds it; None if the file is
    short there (or the span is empty: the block was truncated away meanwhile)."""
    if length <= 0:
        return None
    data = os.pread(fd, length, offset)
    return zlib.crc32(data) if len(data) == length else None


def block_crc(fd: int, entry: CacheEntry, block: int) -> int | None:
    """CRC-32 of ``block`` as the data file holds it; None if the file is short there."""
    return span_crc(fd, *block_span(entry, block))


def verify_range(entry: CacheEntry, fd: int, offset: int, length: int) -> None:
    """Check the summed, not yet verified blocks overlapping [offset, offset+length);
    forget those that do not match (the caller then finds them missing and fetches)."""
    if not entry.unchecked:
        return
    end = min(offset + length, entry.fetch_limit)
    if end <= offset:
        return
    for block in range(offset // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1):
        if block in entry.unchecked:
            _judge(entry, block, block_crc(fd, entry, block))


def _judge(entry: CacheEntry, block: int, crc: int | None) -> None:
    """Verified (``crc`` matches the block's sum), or forgotten so that it is fetched again."""
    if entry.blocks[block] != SUMMED or crc == entry.sums[block]:
        entry.mark_checked(block)
        return
    log.warning("cache data of inode %d block %d is damaged (checksum mismatch); fetching it again",
                entry.ino, block)
    entry.forget_block(block)


class Checksummer:
    """Sums the PRESENT blocks of the entries listed in ``cache.unsummed`` (data just
    uploaded, or left unsummed by an earlier run) while they are clean, one block at
    a time in a worker thread."""

    def __init__(self, cache: CacheFiles, is_clean: Callable[[int], bool]) -> None:
        self.cache, self.is_clean = cache, is_clean
        self._wake = trio.Event()
        cache.on_unsummed = self._wake.set

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.drain()
            await self._wake.wait()
            self._wake = trio.Event()
            self.cache.on_unsummed = self._wake.set

    async def drain(self) -> None:
        """Sum everything queued (at unmount: the bytes are still in the page cache, and a
        block summed at the next start could be one damaged meanwhile)."""
        while self.cache.unsummed:
            ino = self.cache.unsummed.pop()
            entry = self.cache.get(ino)
            if entry is not None and self.is_clean(ino):
                await self.sum_entry(entry)

    async def sum_entry(self, entry: CacheEntry) -> None:
        fd = self.cache.open_fd(entry, writes=False)
        try:
            for block in range(len(entry.blocks)):
                if block >= len(entry.blocks) or entry.blocks[block] != PRESENT or not self.is_clean(entry.ino):
                    continue
                writes, rev = entry.writes, entry.rev
                crc = await trio.to_thread.run_sync(span_crc, fd, *block_span(entry, block))
                unchanged = entry.writes == writes and entry.rev == rev and self.cache.get(entry.ino) is entry
                if crc is not None and unchanged and block < len(entry.blocks) and entry.blocks[block] == PRESENT:
                    entry.set_sum(block, crc)
        finally:
            self.cache.release(entry)


async def verify_all(entry: CacheEntry, fd: int) -> None:
    """``verify_range`` over the whole entry, the reading and summing in a worker thread
    (an upload of a large file must not stall the file system while it checks)."""
    for block in sorted(entry.unchecked):
        rev = entry.rev
        crc = await trio.to_thread.run_sync(span_crc, fd, *block_span(entry, block))
        if entry.rev == rev and block in entry.unchecked:  # (not reset or rewritten meanwhile)
            _judge(entry, block, crc)
