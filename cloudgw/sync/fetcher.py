"""Fetching uncached blocks from the remote into cache files, with read-ahead.

Missing blocks are fetched by ranged reads pinned to the revision the cache
entry belongs to (so blocks of two versions are never mixed).  Requests for a
block already in flight wait for that fetch (single flight).  Sequential access
grows a read-ahead window; read-ahead blocks are fetched in parallel in the
fetcher's own nursery, consecutive ones up to ``run_blocks`` per request (fewer,
larger GETs: per-request cost dominates on S3, and some servers read the whole
object per range), so the request that triggered them returns as soon as its
own blocks are there.  A remote that streams (``Capabilities.streaming_reads``)
gets long runs (32 MiB, window 64 MiB): the body lands block by block as it
arrives, so memory stays at a piece per run and a reader waits only for its own
block.  Once the window is full it is topped up a whole run at a time
(``_hold_back``), not one block per read.

Concurrency: block data is written with ``os.pwrite`` inline (1 MiB, well under
a millisecond) and marked present afterwards, all in the trio thread; the
network wait is in the remote's worker threads.  If the entry was reset while a
block was in flight (remote changed), the block is discarded.

Crash behaviour: a block is marked present only after its data was written;
an interrupted fetch leaves the block missing and it is fetched again.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import zlib
from dataclasses import dataclass, field
from typing import Callable

import trio

from cloudgw.cache.files import BLOCK_SIZE, CacheEntry, CacheFiles
from cloudgw.errors import PreconditionFailed, RemoteError
from cloudgw.remotes.base import Remote, read_into

log = logging.getLogger(__name__)
# (blocks per ranged read, largest read-ahead window): a read is held in memory whole,
# unless the remote streams it (``Capabilities.streaming_reads``)
WHOLE_READS = (4, 16)
STREAMED_READS = (32, 64)
# read-ahead state kept for files nobody has open (an upload reading a partly cached file):
# the oldest goes first, so memory stays bounded however many files are ever read
STREAMS_KEPT = 256


@dataclass
class _Flight:
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None


@dataclass
class _Stream:
    next_offset: int = 0
    window: int = 0  # read-ahead blocks
    horizon: int = 0  # end of what read-ahead has requested so far (bytes)


class Fetcher:
    def __init__(self, remote: Remote, cache: CacheFiles, *, parallel: int = 8,
                 make_room: Callable[[int], int] | None = None) -> None:
        self.remote = remote
        self.cache = cache
        self.make_room = make_room  # evicts clean data when the cache disk is full
        self.run_blocks, self.max_readahead = STREAMED_READS if remote.capabilities.streaming_reads else WHOLE_READS
        self._limiter = trio.CapacityLimiter(parallel)
        # (ino, rev, block): a flight serves one revision; after a reset (remote changed)
        # the new revision's readers never wait on the old one's flights
        self._flights: dict[tuple[int, str | None, int], _Flight] = {}
        # per-file read-ahead state, oldest first: dropped at the last close (``forget``), or
        # beyond STREAMS_KEPT
        self._streams: collections.OrderedDict[int, _Stream] = collections.OrderedDict()
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def fetch(self, remote_path: str, entry: CacheEntry, offset: int, length: int) -> None:
        """Make [offset, offset+length) present; raises PreconditionFailed if the remote
        moved on from ``entry.rev``, RemoteError on other failures."""
        for _ in range(3):
            needed = entry.missing(offset, length)
            if not needed:
                return
            await self._fetch_missing(remote_path, entry, offset, length, needed)
        # A flight of a revision the entry was reset away from meanwhile (remote changed)
        # lands without data: the blocks are fetched again above; never return a hole.
        if entry.missing(offset, length):
            raise PreconditionFailed(f"{remote_path}: changed again while being read")

    async def _fetch_missing(self, remote_path: str, entry: CacheEntry, offset: int, length: int,
                             needed: list[int]) -> None:
        ahead = self._readahead(entry, offset, length, needed[-1])
        flights = [self._start(remote_path, entry, [b])[0] for b in needed]
        runs: list[list[int]] = []
        for b in ahead:
            if (entry.ino, entry.rev, b) in self._flights:
                continue
            if not runs or b != runs[-1][-1] + 1 or len(runs[-1]) == self.run_blocks:
                runs.append([])
            runs[-1].append(b)
        if runs and self._hold_back(entry, runs[-1]):
            runs.pop()
        for run in runs:
            self._start(remote_path, entry, run)
            stream = self._streams[entry.ino]
            stream.horizon = max(stream.horizon, (run[-1] + 1) * BLOCK_SIZE)
        for flight in flights:
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error

    def prefetch_all(self, remote_path: str, entry: CacheEntry) -> None:
        """Fetch every missing block in the background (a partly cached file turned dirty:
        its unread parts must be saved before the remote can change under them)."""
        for block in entry.missing(0, entry.fetch_limit):
            self._start(remote_path, entry, [block])

    def _hold_back(self, entry: CacheEntry, run: list[int]) -> bool:
        """A short run at the end of a full window waits to grow to a whole run: otherwise a
        steady reader moves the window one block at a time and every GET is one block long.
        (A full window keeps more than a run requested ahead of the reader meanwhile.)"""
        stream = self._streams[entry.ino]
        return (len(run) < self.run_blocks and stream.window >= self.max_readahead
                and run[-1] < len(entry.blocks) - 1)

    def _readahead(self, entry: CacheEntry, offset: int, length: int, last_needed: int) -> list[int]:
        stream = self._streams.get(entry.ino)
        if stream is None:
            stream = self._streams[entry.ino] = _Stream()
            if len(self._streams) > STREAMS_KEPT:
                self._streams.popitem(last=False)
        # Reads of blocks already fetched ahead do not come here: a miss anywhere up to the
        # read-ahead horizon is the same sequential reader, not a jump.
        sequential = (abs(offset - stream.next_offset) <= BLOCK_SIZE
                      or stream.next_offset <= offset <= stream.horizon + BLOCK_SIZE)
        stream.window = min(self.max_readahead, max(2, stream.window * 2)) if sequential else 0
        stream.next_offset = offset + length
        if not stream.window:
            return []
        last = min(last_needed + stream.window, len(entry.blocks) - 1)
        return [b for b in range(last_needed + 1, last + 1) if not entry.blocks[b]]

    def _start(self, remote_path: str, entry: CacheEntry, blocks: list[int]) -> list[_Flight]:
        """Flights for ``blocks`` (consecutive); those not yet in flight are fetched by one read."""
        flights, new = [], []
        for block in blocks:
            key = (entry.ino, entry.rev, block)
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
                new.append((block, flight))
            flights.append(flight)
        if new:
            assert self._nursery is not None, "Fetcher.run() must be running"
            assert [b for b, _ in new] == list(range(new[0][0], new[0][0] + len(new))), "a run is consecutive"
            self._nursery.start_soon(self._fetch_run, remote_path, entry, entry.rev, new)
        return flights

    async def _fetch_run(self, remote_path: str, entry: CacheEntry, rev: str | None,
                         run: list[tuple[int, _Flight]]) -> None:
        """One ranged read for ``run``; each block lands (and its waiters go on) as soon as
        its bytes are in, also while the rest of the run still streams in."""
        first, last = run[0][0], run[-1][0]
        pending = collections.deque(run)  # blocks not landed yet, in order
        offset = first * BLOCK_SIZE
        end = min((last + 1) * BLOCK_SIZE, entry.fetch_limit)
        buf = bytearray()  # received bytes of pending[0] (and on)
        fd = -1

        def sink(data: bytes) -> None:
            buf.extend(data)
            while pending and (len(buf) >= BLOCK_SIZE or pending[0][0] * BLOCK_SIZE + len(buf) >= end):
                block, flight = pending[0]  # leaves ``pending`` only once stored: a failed write
                chunk = bytes(buf[:BLOCK_SIZE])  # (disk full) fails it with the rest of the run
                # the block may have been written (fully) by the user meanwhile: never overwrite it
                if entry.rev == rev and block < len(entry.blocks) and not entry.blocks[block]:
                    self._pwrite(fd, chunk, block * BLOCK_SIZE)
                    entry.set_sum(block, zlib.crc32(chunk))
                    self.cache.bytes_added += len(chunk)
                del buf[:BLOCK_SIZE]
                pending.popleft()
                self._land(entry.ino, rev, block, flight)

        try:
            fd = self.cache.open_fd(entry)
            if end > offset:
                async with self._limiter:
                    await read_into(self.remote, remote_path, offset, end - offset, sink, rev=rev)
            if pending and end > offset and entry.rev == rev:
                raise PreconditionFailed(f"{remote_path}: short read at {pending[0][0] * BLOCK_SIZE} (object changed?)")
        except (RemoteError, OSError) as exc:
            for _, flight in pending:
                flight.error = exc
            if not isinstance(exc, PreconditionFailed):
                log.warning("fetching %s blocks %d-%d failed: %s", remote_path, first, last, exc)
        except Exception as exc:  # a bug: report it to the waiting reader, keep the nursery alive
            log.exception("fetching %s blocks %d-%d", remote_path, first, last)
            for _, flight in pending:
                flight.error = exc
        finally:
            if fd >= 0:
                self.cache.release(entry)
            for block, flight in pending:
                self._land(entry.ino, rev, block, flight)

    def _land(self, ino: int, rev: str | None, block: int, flight: _Flight) -> None:
        del self._flights[(ino, rev, block)]
        flight.done.set()

    def _pwrite(self, fd: int, data: bytes, offset: int) -> None:
        """Write the whole block or raise: a short write (disk full) must never leave a
        block marked present with a hole in it."""
        try:
            _pwrite_all(fd, data, offset)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or self.make_room is None or not self.make_room(len(data) + (16 << 20)):
                raise
            _pwrite_all(fd, data, offset)

    def streams_kept(self) -> int:
        """How many files' read-ahead state is kept (bounded: see STREAMS_KEPT)."""
        return len(self._streams)

    def forget(self, ino: int) -> None:
        """Nobody has the file open any more: its next reader starts a new stream.  (Its
        flights go on: each lands in the cache whether or not anyone still waits.)"""
        self._streams.pop(ino, None)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, "short write to the cache")
        view, offset = view[n:], offset + n
