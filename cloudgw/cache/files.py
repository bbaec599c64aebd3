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

Disk usage: each index row keeps the bytes its data file takes (``used``), brought up
to date by ``used_bytes`` for the files opened for writing, fetched into or emptied
since it last ran (``_touched``), so the evictor's and the metrics' total is one
``SUM`` over the index and a ``stat`` per changed file, not a ``stat`` per cached
file.  NULL is "not known": rows from before the column, and every row after an
unclean shutdown (a file written just before it may have grown since it was last
counted); those are counted again, by a ``stat`` each, by the evictor a page at a
time when the daemon starts (``count_unknown_usage``), or all at once by ``used_bytes``.

Concurrency: only the trio thread touches the maps; the fetcher's worker threads
only ``pwrite`` into the data file and report back.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import sqlite3
import time
import weakref
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Iterator

from cloudgw.cache.spares import SpareFiles
from cloudgw.wal_sync import WalSync

BLOCK_SIZE = 1 << 20
ABSENT, PRESENT, SUMMED = 0, 1, 2  # block states in ``CacheEntry.blocks``


# One empty set shared by every entry that has no such blocks (most of them): the
# collector walks each cached file's objects at every full collection, and each empty
# set was one more object (and 216 bytes) per file.  Replaced by a set of its own, never
# mutated (a frozenset has no add).
_NO_BLOCKS: frozenset[int] = frozenset()


@dataclass(slots=True, weakref_slot=True)
class CacheEntry:
    """The cache state of one inode's data file.

    Memory: in memory only while in use or recently used (``CacheFiles``), but a burst
    of activity holds many at once, so each field counts: ``path`` is a ``str`` (a
    ``Path`` is two more objects for the collector), and the sets of blocks start as the
    shared ``_NO_BLOCKS``."""

    ino: int
    path: str  # the data file
    rev: str | None  # remote revision the fetched blocks belong to
    fetch_limit: int  # bytes [0, fetch_limit) exist on the remote at rev
    blocks: bytearray  # one byte per block below fetch_limit: ABSENT, PRESENT or SUMMED
    last_access: float = field(default_factory=time.time)
    fd: int = -1
    users: int = 0  # open file handles + fetches/uploads in progress
    map_dirty: bool = False  # set through ``_dirtied``, which keeps the entry in memory until persisted
    sums: array = field(default_factory=lambda: array("I"))  # CRC-32 per block, valid where SUMMED
    unchecked: set[int] | frozenset[int] = _NO_BLOCKS  # SUMMED blocks not yet verified by this process
    writes: int = 0  # bumped by every local write into the blocks (a checksum being taken is then void)
    # Blocks below fetch_limit written locally since the data file last equalled ``rev``
    # (the base of a delta upload: the others need not be sent again).  Persisted with the
    # map and trusted after a clean shutdown only: None (not known) for an entry loaded
    # after a crash, and an upload then sends every byte; emptied whenever the map is cleared.
    changed: set[int] | frozenset[int] | None = _NO_BLOCKS
    # The owner's table of entries whose map is not persisted yet (``CacheFiles._dirty``),
    # shared by all its entries; None once the entry was removed from the cache.
    dirty_to: dict[int, CacheEntry] | None = field(default=None, repr=False, compare=False)

    def _dirtied(self) -> None:
        """The map changed: persist it later, and keep the entry in memory until then (an
        entry dropped with its change unpersisted would come back from the index without it:
        a block written here and marked ABSENT again would be fetched over the only copy)."""
        self.map_dirty = True
        if self.dirty_to is not None:
            self.dirty_to[self.ino] = self

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
            self._dirtied()

    def mark_written(self, block: int) -> None:
        """The user wrote into ``block``: present, changed, and its checksum (if any) is void."""
        if block >= len(self.blocks):
            return
        if self.changed is not None and block not in self.changed:
            if self.changed:
                self.changed.add(block)  # type: ignore[union-attr]  # (a non-empty one is a set)
            else:
                self.changed = {block}
            self._dirtied()
        if self.blocks[block] != PRESENT:
            self.blocks[block] = PRESENT
            self.mark_checked(block)
            self._dirtied()

    def set_sum(self, block: int, crc: int) -> None:
        """``block`` holds bytes equal to the remote's (fetched, or just uploaded), whose
        CRC-32 is ``crc`` (taken from the bytes in hand: nothing left to verify)."""
        if block < len(self.blocks):
            if len(self.sums) < len(self.blocks):
                self.sums.extend([0] * (len(self.blocks) - len(self.sums)))
            self.blocks[block], self.sums[block] = SUMMED, crc
            self.mark_checked(block)
            self._dirtied()

    def forget_block(self, block: int) -> None:
        """The block's data is not to be trusted: fetch it again."""
        if block < len(self.blocks):
            self.blocks[block] = ABSENT
            self.mark_checked(block)
            self._dirtied()

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
            self._dirtied()


# ``bytes.translate`` table: a SUMMED block whose sum was lost is PRESENT (to be summed again)
_SUMMED_AS_PRESENT = bytes(min(state, PRESENT) for state in range(256))


def _decode_blocks(data: bytes) -> set[int] | frozenset[int]:
    blocks = array("I")
    blocks.frombytes(data[: len(data) - len(data) % blocks.itemsize])
    return set(blocks) or _NO_BLOCKS


def _nblocks(size: int) -> int:
    return (size + BLOCK_SIZE - 1) // BLOCK_SIZE


class CacheFiles:
    """Creates, opens, tracks and deletes cache data files under ``root``.

    Memory: an entry is loaded from the index when first asked for (``get``) and stays in
    memory only while it is needed: while someone holds it (an open handle, a fetch, an
    upload, a checksum: the identity map is weak, so every holder sees the same object),
    while its data file is open, while its map is not persisted (``_dirty``), and among
    the ``recent`` most recently used.  A cache of a million files costs memory for the
    ones in use, not for all of them, and a mount no longer reads every entry before it
    answers.  What an entry knows and the index does not is rebuilt on load: its last
    access (kept in ``_access`` until the next ``flush``), and which summed blocks this
    process verified (none: they are checked again before their first read).
    """

    def __init__(self, root: Path, *, trust_maps: bool = True, keep_maps: Collection[int] = (),
                 recent: int = 4096) -> None:
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
            " blocks BLOB NOT NULL, last_access REAL NOT NULL, sums BLOB, changed BLOB, used INTEGER)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        if "sums" not in columns:
            self._db.execute("ALTER TABLE entries ADD COLUMN sums BLOB")  # caches made before checksums
        if "changed" not in columns:
            self._db.execute("ALTER TABLE entries ADD COLUMN changed BLOB")  # before delta uploads
        if "used" not in columns:
            self._db.execute("ALTER TABLE entries ADD COLUMN used INTEGER")  # before disk usage was kept (NULL)
        self._live: weakref.WeakValueDictionary[int, CacheEntry] = weakref.WeakValueDictionary()
        self._recent: OrderedDict[int, CacheEntry] = OrderedDict()
        self._recent_max = recent
        self._dirty: dict[int, CacheEntry] = {}  # map changed, not persisted yet
        self._open: dict[int, CacheEntry] = {}  # data file open (``fd >= 0``)
        self._access: dict[int, float] = {}  # last access newer than the index's
        self._touched: set[int] = set()  # data file may have changed size since ``used`` was counted
        self._usage_known = False  # no row's ``used`` is NULL any more (``count_unknown_usage``)
        self._unknown_after = -1  # the rows up to this ino are counted
        self.bytes_added = 0  # fetched since the evictor last looked: tells it when to look
        self.unsummed: set[int] = set()  # entries with PRESENT blocks to sum once clean (cache.checksums)
        self.on_unsummed: Callable[[], None] = lambda: None
        if not trust_maps:
            self._forget_maps(frozenset(keep_maps))
        self.unsummed.update(ino for (ino,) in self._db.execute(
            "SELECT ino FROM entries WHERE instr(blocks, ?) OR (instr(blocks, ?) AND"
            " (sums IS NULL OR length(sums) != ? * length(blocks)))",
            (bytes([PRESENT]), bytes([SUMMED]), array("I").itemsize)))

    def _forget_maps(self, keep: frozenset[int]) -> None:
        """After an unclean shutdown: the maps of clean entries are forgotten (their blocks are
        fetched again: a power loss may have left holes where the map says data), those in
        ``keep`` (files with unsynced data) stay, and no entry's ``changed`` or disk usage is
        trusted (``used_bytes`` counts them again)."""
        with self._transaction():
            self._db.execute("UPDATE entries SET changed = NULL, used = NULL")
            self._db.execute("CREATE TEMP TABLE keep_maps (ino INTEGER PRIMARY KEY)")
            self._db.executemany("INSERT INTO keep_maps VALUES (?)", ((ino,) for ino in keep))
            self._db.execute("UPDATE entries SET blocks = zeroblob(length(blocks)), sums = NULL"
                             " WHERE ino NOT IN (SELECT ino FROM keep_maps)")
            self._db.execute("DROP TABLE keep_maps")

    def _load(self, ino: int) -> CacheEntry | None:
        """The entry of ``ino`` as the index has it, or None (none, or its data file is gone).
        Runs on the first use of a cached file since it was last in memory: one ``SELECT``
        and one ``stat``."""
        row = self._db.execute(
            "SELECT rev, fetch_limit, blocks, last_access, sums, changed FROM entries WHERE ino = ?", (ino,)
        ).fetchone()
        if row is None:
            return None
        rev, limit, blocks, last, sums, changed = row
        path = self._data_path(ino)
        try:
            have = os.stat(path).st_size
        except FileNotFoundError:
            self._db.execute("DELETE FROM entries WHERE ino = ?", (ino,))
            self.unsummed.discard(ino)
            return None
        entry = CacheEntry(ino, path, rev, limit, bytearray(blocks), self._access.get(ino, last), dirty_to=self._dirty)
        if sums:
            entry.sums.frombytes(sums)
        if len(entry.sums) != len(entry.blocks):  # no (or damaged) sums: present, to be summed
            entry.sums = array("I")
            entry.blocks = entry.blocks.translate(_SUMMED_AS_PRESENT)
        if SUMMED in entry.blocks:  # verified before their first read by this process
            entry.unchecked = {b for b, state in enumerate(entry.blocks) if state == SUMMED}
        # A data file that lost its tail (disk damage): those blocks are fetched again.
        for b in range(have // BLOCK_SIZE, len(entry.blocks)):  # (the blocks before its end are within it)
            if entry.blocks[b] and have < min((b + 1) * BLOCK_SIZE, limit):
                entry.forget_block(b)
        # What was written since ``rev`` (None: not known, after a crash; ``_forget_maps``).
        entry.changed = None if changed is None else _decode_blocks(changed)
        return entry

    def _data_path(self, ino: int) -> str:
        return f"{self._data_dir}/{ino:x}"

    def _hold(self, entry: CacheEntry) -> CacheEntry:
        """``entry`` is the one of its inode (new in memory), and the most recently used."""
        self._live[entry.ino] = entry
        return self._used(entry)

    def _used(self, entry: CacheEntry) -> CacheEntry:
        recent = self._recent
        recent[entry.ino] = entry
        recent.move_to_end(entry.ino)
        if len(recent) > self._recent_max:
            recent.popitem(last=False)
        return entry

    # -- lookup / creation --------------------------------------------------------

    def get(self, ino: int) -> CacheEntry | None:
        """The entry of ``ino`` (loaded from the index if not in memory), or None."""
        entry = self._live.get(ino)
        if entry is not None:
            return self._used(entry)
        entry = self._load(ino)
        return None if entry is None else self._hold(entry)

    def entry_for(self, ino: int, *, rev: str | None, remote_size: int) -> CacheEntry:
        """The entry for ``ino`` at remote revision ``rev``; a stale one is reset first."""
        entry = self.get(ino)
        if entry is not None and entry.rev == rev:
            return entry
        if entry is not None:
            self.reset(entry, rev=rev, remote_size=remote_size)
            return entry
        path = self._data_path(ino)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        entry = self._hold(CacheEntry(ino, path, rev, remote_size, bytearray(_nblocks(remote_size)),
                                      dirty_to=self._dirty))
        self._touched.add(ino)  # (a data file left without its row keeps its bytes: counted)
        self._persist(entry)
        return entry

    def new_local(self, ino: int) -> CacheEntry:
        """An empty entry for a file that exists only locally (created or O_TRUNC).

        On the path of every create: an entry not in memory is not loaded, as everything
        the index holds for ``ino`` is replaced (its map, and its data file emptied)."""
        entry = self._live.get(ino)
        if entry is None:
            entry = self._hold(CacheEntry(ino, self._data_path(ino), None, 0, bytearray(), dirty_to=self._dirty))
        else:
            self._used(entry)
            entry.rev, entry.fetch_limit = None, 0
            entry._clear(0)
        if entry.fd >= 0:
            os.ftruncate(entry.fd, 0)
        elif not self.spares.take(os.path.basename(entry.path)):  # created empty, or emptied
            os.close(os.open(entry.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        self._touched.add(ino)
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
        self._touched.add(entry.ino)
        self._persist(entry)

    def relabel(self, entry: CacheEntry, *, old_rev: str | None, rev: str | None) -> None:
        """The remote object whose bytes the entry holds got revision ``rev`` without a change of
        content (its attributes changed: ``Uploader._sync_attrs``): the cached blocks stay, under
        the new revision.  Only if the entry is still at ``old_rev`` (else it holds other bytes)."""
        if entry.rev == old_rev and rev != old_rev:
            entry.rev = rev
            entry._dirtied()
            self.persist_map(entry)

    def adopt_as_clean(self, entry: CacheEntry, *, rev: str, size: int) -> None:
        """After an upload: the local data *is* revision ``rev`` of the remote."""
        entry.rev, entry.fetch_limit = rev, size
        entry._clear(_nblocks(size))
        entry.blocks = bytearray(bytes([PRESENT]) * _nblocks(size))
        self._persist(entry)
        if entry.blocks:
            self.unsummed.add(entry.ino)  # the checksummer sums it, soon, while it stays clean
            self.on_unsummed()

    # -- descriptors -----------------------------------------------------------------

    def open_fd(self, entry: CacheEntry, *, writes: bool = True) -> int:
        """Open (once) and pin the data file; pair with ``release``.  ``writes``: the caller
        may change the data file through it (its disk usage is counted again after)."""
        if writes and entry.dirty_to is not None:
            self._touched.add(entry.ino)
        if entry.fd < 0:
            entry.fd = os.open(entry.path, os.O_RDWR | os.O_CREAT, 0o600)
            if entry.dirty_to is not None:  # (still the inode's entry)
                self._open[entry.ino] = entry
        entry.users += 1
        entry.last_access = time.time()
        if entry.dirty_to is not None:
            self._access[entry.ino] = entry.last_access
        return entry.fd

    def release(self, entry: CacheEntry) -> None:
        entry.users -= 1
        if entry.users <= 0:
            entry.users = 0
            if entry.fd >= 0:
                os.close(entry.fd)
                entry.fd = -1
                if self._open.get(entry.ino) is entry:
                    del self._open[entry.ino]
            self.persist_map(entry)

    def remove(self, ino: int) -> None:
        """Delete the data file (file unlinked, or evicted)."""
        entry = self._live.pop(ino, None)
        for table in (self._recent, self._dirty, self._open):
            table.pop(ino, None)
        self._access.pop(ino, None)
        self._touched.discard(ino)
        self.unsummed.discard(ino)
        if entry is not None:
            entry.dirty_to = None  # its later changes are nobody's to persist
            # An upload or fetch may still use the descriptor (in a worker thread): it stays
            # open on the unlinked file until the last ``release`` closes it.  Closing it here
            # closed it twice, and the second close hit whatever file or socket had been given
            # the number.
            if entry.fd >= 0 and entry.users <= 0:
                os.close(entry.fd)
                entry.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._data_path(ino))
        self._db.execute("DELETE FROM entries WHERE ino = ?", (ino,))

    def in_memory(self) -> int:
        """Entries in memory now (in use, unpersisted, or recently used)."""
        return len(self._live)

    def in_use(self, ino: int) -> bool:
        """Someone has the entry of ``ino`` open (a handle, a fetch, an upload)."""
        entry = self._live.get(ino)
        return entry is not None and entry.users > 0

    # -- the whole cache (evictor, metrics, fsck): streamed from the index ----------------

    _PAGE = 4096

    def count(self) -> int:
        """Files with an entry in the cache."""
        return self._db.execute("SELECT count(*) FROM entries").fetchone()[0]

    def inos(self) -> Iterator[int]:
        """Every cached inode, in pages (the caller may ``remove`` as it goes)."""
        last = -1
        while page := [ino for (ino,) in self._db.execute(
                "SELECT ino FROM entries WHERE ino > ? ORDER BY ino LIMIT ?", (last, self._PAGE))]:
            yield from page
            last = page[-1]

    def entries(self) -> Iterator[CacheEntry]:
        """Every cached file's entry, each loaded as it comes (fsck)."""
        for ino in self.inos():
            entry = self.get(ino)
            if entry is not None:
                yield entry

    def least_recently_used(self) -> Iterator[tuple[int, float]]:
        """``(ino, last access)`` of every cached file, least recently used first, in pages of
        a scan each (an evictor pass reads only as far as it evicts).  Writes nothing: it runs
        when the cache disk is full (``Evictor.make_room``), so access times not in the index
        yet are merged in from memory."""
        newer = dict(self._access)
        return heapq.merge(
            (row for row in self._by_stored_access() if row[0] not in newer),
            sorted(newer.items(), key=lambda item: (item[1], item[0])),
            key=lambda item: (item[1], item[0]),
        )

    def _by_stored_access(self) -> Iterator[tuple[int, float]]:
        after: tuple[float, int] = (float("-inf"), -1)
        while page := self._db.execute(
                "SELECT ino, last_access FROM entries WHERE last_access > ? OR (last_access = ? AND ino > ?)"
                " ORDER BY last_access, ino LIMIT ?", (after[0], after[0], after[1], self._PAGE)).fetchall():
            yield from page
            after = (page[-1][1], page[-1][0])

    def disk_usage(self, ino: int) -> int:
        """Bytes the data file of ``ino`` takes on the disk (a ``stat``)."""
        try:
            return os.stat(self._data_path(ino)).st_blocks * 512
        except FileNotFoundError:
            return 0

    def used_bytes(self, *, count_unknown: bool = True) -> int:
        """Bytes all cached data takes on the disk: the index's sum, once the data files
        changed since the last call are counted again (a ``stat`` each; the first call after
        an unclean shutdown or an upgrade counts every file whose usage is not known, unless
        ``count_unknown`` is False: the metrics leave that to the evictor's pages, and show
        the files counted so far)."""
        while count_unknown and not self.count_unknown_usage():
            pass
        self._count_touched()
        return int(self._db.execute("SELECT total(used) FROM entries").fetchone()[0])

    def count_unknown_usage(self, limit: int = _PAGE) -> bool:
        """Count up to ``limit`` of the files whose usage is not known, in ino order; True
        once none is left.  The daemon's evictor calls it a page at a time at start, between
        requests (a million files after an unclean shutdown: ~4 s in all); a crash midway
        leaves the rest NULL, counted on the next start."""
        if self._usage_known:
            return True
        page = [ino for (ino,) in self._db.execute(
            "SELECT ino FROM entries WHERE ino > ? AND used IS NULL ORDER BY ino LIMIT ?",
            (self._unknown_after, limit))]
        if page:
            with self._transaction():
                self._db.executemany("UPDATE entries SET used = ? WHERE ino = ?",
                                     [(self.disk_usage(ino), ino) for ino in page])
            self._unknown_after = page[-1]
        self._usage_known = len(page) < limit
        return self._usage_known

    def _count_touched(self) -> None:
        """Bring ``used`` up to date for the files touched since the last count.  Files still
        open may change again (a writer, a fetch in a worker thread): they stay touched."""
        touched = self._touched
        if not touched:
            return
        usage = [(self.disk_usage(ino), ino) for ino in touched]
        with self._transaction():
            self._db.executemany("UPDATE entries SET used = ? WHERE ino = ?", usage)
        self._touched = {ino for ino in touched if ino in self._open}

    # -- accounting / persistence -------------------------------------------------------

    def _persist(self, entry: CacheEntry) -> None:
        # (``used`` is not the map's: a new row starts at 0, an existing one keeps its count)
        self._db.execute(
            "INSERT INTO entries (ino, rev, fetch_limit, blocks, last_access, sums, changed, used)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (ino) DO UPDATE SET rev = excluded.rev,"
            " fetch_limit = excluded.fetch_limit, blocks = excluded.blocks, last_access = excluded.last_access,"
            " sums = excluded.sums, changed = excluded.changed",
            (entry.ino, entry.rev, entry.fetch_limit, bytes(entry.blocks), entry.last_access,
             entry.sums.tobytes() if SUMMED in entry.blocks else None,
             None if entry.changed is None else array("I", sorted(entry.changed)).tobytes()),
        )
        entry.map_dirty = False
        if self._dirty.get(entry.ino) is entry:
            del self._dirty[entry.ino]
        self._access.pop(entry.ino, None)

    def sync_to_disk(self) -> None:
        """The persisted block maps survive a power loss too (``cloudgw.wal_sync``): for fsync(2)."""
        self._wal_sync.sync()

    def persist_map(self, entry: CacheEntry) -> None:
        """Persist the entry's block map now if it changed (writes being acknowledged, last
        user gone); not if the entry was removed meanwhile."""
        if entry.map_dirty and self._live.get(entry.ino) is entry:
            self._persist(entry)

    def _write_access_times(self) -> None:
        if not self._access:
            return
        with self._transaction():
            self._db.executemany("UPDATE entries SET last_access = ? WHERE ino = ?",
                                 [(last, ino) for ino, last in self._access.items()])
        self._access.clear()

    def flush(self) -> None:
        """Persist every changed block map and access time, in one transaction (periodically,
        and at shutdown)."""
        if not (self._dirty or self._access):
            return
        with self._transaction():
            for entry in list(self._dirty.values()):
                self.persist_map(entry)
            self._dirty.clear()  # (what is left was removed meanwhile: nothing to persist)
            self._write_access_times()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One commit for the statements inside (joins the one in progress, if any)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self.spares.close()
        self.flush()
        for entry in self._open.values():
            if entry.fd >= 0:
                os.close(entry.fd)
                entry.fd = -1
        self._open.clear()
        # (after the closes: a filesystem may free space preallocated past a file's end then)
        self._count_touched()  # else the next start would trust stale counts
        self._db.close()
