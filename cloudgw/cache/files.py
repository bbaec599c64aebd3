"""Cache data files: one sparse file per inode, with a map of which blocks hold data.

Why not a key/value blob store: the read and write handlers must stay a single
``os.pread``/``os.pwrite`` on an open descriptor (DESIGN: inline is 3-5x faster
than going through threads), and a file that turns dirty must not be copied.  One
sparse file per inode gives both; the block map says which parts came from the
remote (``fetch_limit`` bytes of remote content exist at all: beyond that the
file is local-only, so nothing is ever fetched there).

Each block is ABSENT, PRESENT, or SUMMED (present, with a CRC-32 of the remote's
bytes, checked before it is served: see ``cache.checksums``).

Crash behaviour: data is written before its block is marked present, and the
map is persisted lazily (``flush``), on clean shutdown, and whenever a program's
writes are acknowledged (close, fsync: ``persist_map``).  After an unclean
shutdown ``CacheFiles(..., trust_maps=False)`` forgets the maps of clean
entries (they are re-fetched: a power loss may have left holes where the map
says data) but keeps those of files with unsynced data (``keep_maps``): a
block they show present may hold the only copy of acknowledged writes, and
fetching it again from the remote would overwrite them with the old content.
The set of blocks written since the cached revision (``changed``: what a delta
upload sends) is trusted only after a clean shutdown; after a crash it is
unknown and the next upload of such a file sends all of it.

Concurrency: only the trio thread touches the maps; the fetcher's worker threads
only ``pwrite`` into the data file and report back.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection

from cloudgw.cache.spares import SpareFiles
from cloudgw.wal_sync import WalSync

BLOCK_SIZE = 1 << 20
ABSENT, PRESENT, SUMMED = 0, 1, 2  # block states in ``CacheEntry.blocks``


# One empty set shared by every entry that has no such blocks (most of them): the
# collector walks each cached file's objects at every full collection, and each empty
# set was one more object (and 216 bytes) per file.  Replaced by a set of its own, never
# mutated (a frozenset has no add).
_NO_BLOCKS: frozenset[int] = frozenset()


@dataclass(slots=True)
class CacheEntry:
    """The cache state of one inode's data file.

    Memory: one per cached file, all held for the process's life, so each field counts:
    ``path`` is a ``str`` (a ``Path`` is two more objects for the collector), and the sets
    of blocks start as the shared ``_NO_BLOCKS``."""

    ino: int
    path: str  # the data file
    rev: str | None  # remote revision the fetched blocks belong to
    fetch_limit: int  # bytes [0, fetch_limit) exist on the remote at rev
    blocks: bytearray  # one byte per block below fetch_limit: ABSENT, PRESENT or SUMMED
    last_access: float = field(default_factory=time.time)
    fd: int = -1
    users: int = 0  # open file handles + fetches/uploads in progress
    map_dirty: bool = False
    sums: array = field(default_factory=lambda: array("I"))  # CRC-32 per block, valid where SUMMED
    unchecked: set[int] | frozenset[int] = _NO_BLOCKS  # SUMMED blocks not yet verified by this process
    writes: int = 0  # bumped by every local write into the blocks (a checksum being taken is then void)
    # Blocks below fetch_limit written locally since the data file last equalled ``rev``
    # (the base of a delta upload: the others need not be sent again).  Persisted with the
    # map and trusted after a clean shutdown only: None (not known) for an entry loaded
    # after a crash, and an upload then sends every byte; emptied whenever the map is cleared.
    changed: set[int] | frozenset[int] | None = _NO_BLOCKS

    @property
    def complete(self) -> bool:
        return all(self.blocks)

    def missing(self, offset: int, length: int) -> list[int]:
        """Indexes of blocks overlapping [offset, offset+length) that must be fetched."""
        end = min(offset + length, self.fetch_limit)
        if offset >= end:
            return []
        first, last = offset // BLOCK_SIZE, (end - 1) // BLOCK_SIZE
        return [b for b in range(first, last + 1) if not self.blocks[b]]

    def mark_present(self, block: int) -> None:
        """Record that ``block`` holds data (written before this call)."""
        if block < len(self.blocks) and not self.blocks[block]:
            self.blocks[block] = PRESENT
            self.map_dirty = True

    def mark_written(self, block: int) -> None:
        """The user wrote into ``block``: present, changed, and its checksum (if any) is void."""
        if block >= len(self.blocks):
            return
        if self.changed is not None and block not in self.changed:
            if self.changed:
                self.changed.add(block)  # type: ignore[union-attr]  # (a non-empty one is a set)
            else:
                self.changed = {block}
            self.map_dirty = True
        if self.blocks[block] != PRESENT:
            self.blocks[block] = PRESENT
            self.mark_checked(block)
            self.map_dirty = True

    def set_sum(self, block: int, crc: int) -> None:
        """``block`` holds bytes equal to the remote's (fetched, or just uploaded), whose
        CRC-32 is ``crc`` (taken from the bytes in hand: nothing left to verify)."""
        if block < len(self.blocks):
            if len(self.sums) < len(self.blocks):
                self.sums.extend([0] * (len(self.blocks) - len(self.sums)))
            self.blocks[block], self.sums[block] = SUMMED, crc
            self.mark_checked(block)
            self.map_dirty = True

    def forget_block(self, block: int) -> None:
        """The block's data is not to be trusted: fetch it again."""
        if block < len(self.blocks):
            self.blocks[block] = ABSENT
            self.mark_checked(block)
            self.map_dirty = True

    def mark_checked(self, block: int) -> None:
        """``block`` needs no verification (verified, rewritten, summed anew or forgotten)."""
        if block in self.unchecked:
            self.unchecked.discard(block)  # type: ignore[union-attr]  # (a non-empty one is a set)

    def changed_snapshot(self) -> frozenset[int] | None:
        """The blocks written since the data equalled ``rev`` (a copy), or None when not known."""
        return None if self.changed is None else frozenset(self.changed)

    def _clear(self, nblocks: int) -> None:
        self.changed = _NO_BLOCKS
        self.blocks = bytearray(nblocks)
        self.sums = array("I")
        self.unchecked = _NO_BLOCKS

    def limit_fetch(self, size: int) -> None:
        """The file was truncated to ``size``: nothing past it may ever be fetched again."""
        if size < self.fetch_limit:
            self.fetch_limit = size
            n = _nblocks(size)
            del self.blocks[n:]
            del self.sums[n:]
            self.unchecked = {b for b in self.unchecked if b < n} or _NO_BLOCKS
            if size % BLOCK_SIZE and self.blocks[n - 1] == SUMMED:  # its tail is gone: the sum is void
                self.blocks[n - 1] = PRESENT
                self.mark_checked(n - 1)
            self.map_dirty = True


# ``bytes.translate`` table: a SUMMED block whose sum was lost is PRESENT (to be summed again)
_SUMMED_AS_PRESENT = bytes(min(state, PRESENT) for state in range(256))


def _decode_blocks(data: bytes) -> set[int] | frozenset[int]:
    blocks = array("I")
    blocks.frombytes(data[: len(data) - len(data) % blocks.itemsize])
    return set(blocks) or _NO_BLOCKS


def _nblocks(size: int) -> int:
    return (size + BLOCK_SIZE - 1) // BLOCK_SIZE


class CacheFiles:
    """Creates, opens, tracks and deletes cache data files under ``root``."""

    def __init__(self, root: Path, *, trust_maps: bool = True, keep_maps: Collection[int] = ()) -> None:
        self.root = root
        (root / "data").mkdir(parents=True, exist_ok=True)
        self._data_dir = str(root / "data")
        self.spares = SpareFiles(root / "data")
        self._db = sqlite3.connect(root / "cache-index.db", isolation_level=None, check_same_thread=False)
        # Only this process opens the index while the cache dir is locked (the daemon, or
        # fsck): exclusive locking spares the fcntl locks and shared-memory index of every
        # transaction (set before WAL is first used, so no -shm file is needed at all).
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._wal_sync = WalSync(self._db, root / "cache-index.db")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries (ino INTEGER PRIMARY KEY, rev TEXT, fetch_limit INTEGER NOT NULL,"
            " blocks BLOB NOT NULL, last_access REAL NOT NULL, sums BLOB, changed BLOB)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        if "sums" not in columns:
            self._db.execute("ALTER TABLE entries ADD COLUMN sums BLOB")  # caches made before checksums
        if "changed" not in columns:
            self._db.execute("ALTER TABLE entries ADD COLUMN changed BLOB")  # before delta uploads
        self._entries: dict[int, CacheEntry] = {}
        self.bytes_added = 0  # fetched since the evictor last looked: tells it when to look
        self.unsummed: set[int] = set()  # entries with PRESENT blocks to sum once clean (cache.checksums)
        self.on_unsummed: Callable[[], None] = lambda: None
        self._load(trust_maps, frozenset(keep_maps))

    def _load(self, trust_maps: bool, keep_maps: frozenset[int]) -> None:
        if not trust_maps:  # durably unknown now: a later clean close must not revive them
            self._db.execute("UPDATE entries SET changed = NULL WHERE changed IS NOT NULL")
        rows = self._db.execute("SELECT ino, rev, fetch_limit, blocks, last_access, sums, changed FROM entries")
        # Every mount runs this once per cached file before it answers (1,000,000 files:
        # seconds), so one ``stat`` per entry and no ``Path`` objects.
        for ino, rev, limit, blocks, last, sums, changed in rows:
            path = self._data_path(ino)
            try:
                have = os.stat(path).st_size
            except FileNotFoundError:
                self._db.execute("DELETE FROM entries WHERE ino = ?", (ino,))
                continue
            entry = CacheEntry(ino, path, rev, limit, bytearray(blocks), last)
            if sums:
                entry.sums.frombytes(sums)
            if len(entry.sums) != len(entry.blocks):  # no (or damaged) sums: present, to be summed
                entry.sums = array("I")
                entry.blocks = entry.blocks.translate(_SUMMED_AS_PRESENT)
            if SUMMED in entry.blocks:
                entry.unchecked = {b for b, state in enumerate(entry.blocks) if state == SUMMED}
            if not trust_maps and ino not in keep_maps:
                entry._clear(len(entry.blocks))
                entry.map_dirty = True
            else:  # a data file that lost its tail (disk damage): those blocks are fetched again
                for b in range(have // BLOCK_SIZE, len(entry.blocks)):  # (the blocks before end within it)
                    if entry.blocks[b] and have < min((b + 1) * BLOCK_SIZE, limit):
                        entry.forget_block(b)
            # What was written since ``rev``: exact only if the last process closed the cache
            # (it persisted every map then).  After a crash the persisted set may lag writes
            # whose blocks were already present, and a delta upload trusting it would copy the
            # old remote bytes over them: unknown (None), so the next upload sends everything.
            entry.changed = _decode_blocks(changed) if trust_maps and changed is not None else None
            if PRESENT in entry.blocks:
                self.unsummed.add(ino)
            self._entries[ino] = entry

    def _data_path(self, ino: int) -> str:
        return f"{self._data_dir}/{ino:x}"

    # -- lookup / creation --------------------------------------------------------

    def get(self, ino: int) -> CacheEntry | None:
        return self._entries.get(ino)

    def entry_for(self, ino: int, *, rev: str | None, remote_size: int) -> CacheEntry:
        """The entry for ``ino`` at remote revision ``rev``; a stale one is reset first."""
        entry = self._entries.get(ino)
        if entry is not None and entry.rev == rev:
            return entry
        if entry is not None:
            self.reset(entry, rev=rev, remote_size=remote_size)
            return entry
        path = self._data_path(ino)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        entry = CacheEntry(ino, path, rev, remote_size, bytearray(_nblocks(remote_size)), map_dirty=True)
        self._entries[ino] = entry
        self._persist(entry)
        return entry

    def new_local(self, ino: int) -> CacheEntry:
        """An empty entry for a file that exists only locally (created or O_TRUNC)."""
        entry = self._entries.get(ino)
        if entry is None:
            path = self._data_path(ino)
            entry = CacheEntry(ino, path, None, 0, bytearray())
            self._entries[ino] = entry
        else:
            entry.rev, entry.fetch_limit = None, 0
            entry._clear(0)
        if entry.fd >= 0:
            os.ftruncate(entry.fd, 0)
        elif not self.spares.take(os.path.basename(entry.path)):  # created empty, or emptied: on the path of every create
            os.close(os.open(entry.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        entry.map_dirty = True
        self._persist(entry)
        return entry

    def reset(self, entry: CacheEntry, *, rev: str | None, remote_size: int) -> None:
        """Forget everything cached (the remote changed); the data file is emptied."""
        entry.rev, entry.fetch_limit = rev, remote_size
        entry._clear(_nblocks(remote_size))
        if entry.fd >= 0:
            os.ftruncate(entry.fd, 0)
        else:
            os.truncate(entry.path, 0)
        entry.map_dirty = True
        self._persist(entry)

    def relabel(self, entry: CacheEntry, *, old_rev: str | None, rev: str | None) -> None:
        """The remote object whose bytes the entry holds got revision ``rev`` without a change of
        content (its attributes changed: ``Uploader._sync_attrs``): the cached blocks stay, under
        the new revision.  Only if the entry is still at ``old_rev`` (else it holds other bytes)."""
        if entry.rev == old_rev and rev != old_rev:
            entry.rev = rev
            entry.map_dirty = True
            self.persist_map(entry)

    def adopt_as_clean(self, entry: CacheEntry, *, rev: str, size: int) -> None:
        """After an upload: the local data *is* revision ``rev`` of the remote."""
        entry.rev, entry.fetch_limit = rev, size
        entry._clear(_nblocks(size))
        entry.blocks = bytearray(bytes([PRESENT]) * _nblocks(size))
        entry.map_dirty = True
        self._persist(entry)
        if entry.blocks:
            self.unsummed.add(entry.ino)  # the checksummer sums it, soon, while it stays clean
            self.on_unsummed()

    # -- descriptors -----------------------------------------------------------------

    def open_fd(self, entry: CacheEntry) -> int:
        """Open (once) and pin the data file; pair with ``release``."""
        if entry.fd < 0:
            entry.fd = os.open(entry.path, os.O_RDWR | os.O_CREAT, 0o600)
        entry.users += 1
        entry.last_access = time.time()
        return entry.fd

    def release(self, entry: CacheEntry) -> None:
        entry.users -= 1
        if entry.users <= 0:
            entry.users = 0
            if entry.fd >= 0:
                os.close(entry.fd)
                entry.fd = -1
            self.persist_map(entry)

    def remove(self, ino: int) -> None:
        """Delete the data file (file unlinked, or evicted)."""
        entry = self._entries.pop(ino, None)
        self.unsummed.discard(ino)
        # An upload or fetch may still use the descriptor (in a worker thread): it stays open
        # on the unlinked file until the last ``release`` closes it.  Closing it here closed it
        # twice, and the second close hit whatever file or socket had been given the number.
        if entry is not None and entry.fd >= 0 and entry.users <= 0:
            os.close(entry.fd)
            entry.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._data_path(ino))
        self._db.execute("DELETE FROM entries WHERE ino = ?", (ino,))

    # -- accounting / persistence -------------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        return list(self._entries.values())

    def disk_usage(self, entry: CacheEntry) -> int:
        try:
            return os.stat(entry.path).st_blocks * 512
        except FileNotFoundError:
            return 0

    def _persist(self, entry: CacheEntry) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO entries (ino, rev, fetch_limit, blocks, last_access, sums, changed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.ino, entry.rev, entry.fetch_limit, bytes(entry.blocks), entry.last_access,
             entry.sums.tobytes() if SUMMED in entry.blocks else None,
             None if entry.changed is None else array("I", sorted(entry.changed)).tobytes()),
        )
        entry.map_dirty = False

    def sync_to_disk(self) -> None:
        """The persisted block maps survive a power loss too (``cloudgw.wal_sync``): for fsync(2)."""
        self._wal_sync.sync()

    def persist_map(self, entry: CacheEntry) -> None:
        """Persist the entry's block map now if it changed (writes being acknowledged, last
        user gone); not if the entry was removed meanwhile."""
        if entry.map_dirty and self._entries.get(entry.ino) is entry:
            self._persist(entry)

    def flush(self) -> None:
        """Persist every changed block map (periodically and at shutdown)."""
        for entry in self._entries.values():
            if entry.map_dirty:
                self._persist(entry)

    def close(self) -> None:
        self.spares.close()
        self.flush()
        for entry in self._entries.values():
            if entry.fd >= 0:
                os.close(entry.fd)
                entry.fd = -1
        self._db.close()
