"""A full listing of the remote, spilled to a scratch table instead of held in memory.

A poll of a remote without a change feed lists every entry and compares the listing
with the inode table (``cloudgw.sync.poller``).  Held as Python objects that costs
~790 bytes per entry -- 755 MiB for a million files, on boxes that may have 1 GiB.
Here the entries go, in batches, into a table of a scratch database beside
``metadata.db`` (ATTACHed as ``listing``), and the comparison is done by SQLite with
the inode table's indexes:

- ``worth_applying(depth)``: the entries of one depth whose application could change
  something -- it skips those already placed at their path unchanged (same kind, same
  revision for files, same id) and the new ones under a folder not listed here (they
  would be listed when first opened).  Evaluated one depth at a time, *after* the
  depth above was applied, so a folder adopted by this poll has its children
  considered, exactly as ``RemoteChanges.present`` would decide.  What it skips is
  only what ``present`` would leave unchanged: the filter is an optimisation, never
  a rule of its own.
- ``placed_but_unlisted()`` / ``links_placed_but_unlisted()``: what we placed that
  the listing lacks (the "gone" candidates).

Memory: one batch of rows (``BATCH``) plus SQLite's page cache of the scratch file
(2 MiB by default); the entries to apply are materialised one depth at a time, so a
poll's memory follows its changes, not the tree.

Crash behaviour: the scratch database holds nothing durable (no journal, no sync).
Its table is dropped at the end of each poll (``auto_vacuum`` gives the space back),
and its files at ``MetadataStore.close``; a crash leaves them (and an empty
``-journal``) behind, and the next attach deletes them.

Concurrency: the store's one connection, from the trio thread only.  Batches are
written outside the store's transactions (``flush`` runs between a listing's
awaits; the store never awaits inside a transaction).
"""

from __future__ import annotations

import posixpath
import sqlite3
from pathlib import Path
from typing import Iterator

from cloudgw.metadata.model import ROOT_INO
from cloudgw.remotes.base import FileAttrs, Kind, RemoteEntry

BATCH = 1000

_COLUMNS = "path, kind, size, mtime_ns, rev, mode, uid, gid, attr_mtime_ns, symlink_target, id, hash"
_TABLE = """
CREATE TABLE listing.entries (
    path TEXT PRIMARY KEY, parent TEXT NOT NULL, depth INTEGER NOT NULL,
    kind TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, rev TEXT,
    mode INTEGER, uid INTEGER, gid INTEGER, attr_mtime_ns INTEGER,
    symlink_target TEXT, id TEXT, hash TEXT);
CREATE INDEX listing.entries_depth ON entries (depth);
CREATE INDEX listing.entries_id ON entries (id) WHERE id IS NOT NULL;
"""
_INSERT = f"INSERT OR REPLACE INTO listing.entries (parent, depth, {_COLUMNS}) VALUES ({', '.join('?' * 14)})"
_SELECT = f"SELECT {', '.join('l.' + c.strip() for c in _COLUMNS.split(','))} FROM listing.entries l"

# At one depth, the entries ``RemoteChanges.present`` could act on.  Left out: (1) placed
# here unchanged; (2) new (nothing placed at the path, no hard link there, no item we hold
# with its id: not a move) below a folder not placed-and-listed here (the root included:
# a poll before the first ``ls`` of a flat bucket of a million objects builds none of them).
_WORTH_APPLYING = _SELECT + f"""
 WHERE l.depth = ?
   AND NOT EXISTS (SELECT 1 FROM main.inodes i WHERE i.remote_path = l.path AND i.kind = l.kind
                   AND (l.kind != 'file' OR i.remote_rev IS l.rev) AND (l.id IS NULL OR i.remote_id IS l.id))
   AND NOT (NOT EXISTS (SELECT 1 FROM main.inodes i WHERE i.remote_path = l.path)
            AND NOT EXISTS (SELECT 1 FROM main.links k WHERE k.remote_path = l.path)
            AND (l.id IS NULL OR NOT EXISTS (SELECT 1 FROM main.inodes i WHERE i.remote_id = l.id))
            AND NOT EXISTS (SELECT 1 FROM main.inodes p WHERE p.remote_path = l.parent AND p.listed
                            AND (p.parent IS NOT NULL OR p.ino = {ROOT_INO})))
 ORDER BY l.rowid"""


def _row(entry: RemoteEntry) -> tuple:
    a = entry.attrs
    return (posixpath.dirname(entry.path), entry.path.count("/"), entry.path, entry.kind.value, entry.size,
            entry.mtime_ns, entry.rev, a.mode, a.uid, a.gid, a.mtime_ns, entry.symlink_target, entry.id, entry.hash)


def _entry(row: tuple) -> RemoteEntry:
    path, kind, size, mtime_ns, rev, mode, uid, gid, attr_mtime_ns, target, item_id, content_hash = row
    return RemoteEntry(path, Kind(kind), size, mtime_ns, rev, FileAttrs(mode, uid, gid, attr_mtime_ns), target,
                       item_id, content_hash)


def remove(path: Path) -> None:
    """Delete the scratch database at ``path`` and any journal file left beside it (versions
    before 2026-12-07 made one: never to be rolled into a new file of that name)."""
    for file in (path, path.with_name(path.name + "-journal")):
        file.unlink(missing_ok=True)


def attach(db: sqlite3.Connection, path: Path) -> None:
    """Attach a new scratch database at ``path`` (one left by a crash is removed first)."""
    remove(path)
    db.execute("ATTACH DATABASE ? AS listing", (str(path),))
    # No journal and no disk flush first: set before them, auto_vacuum wrote the new file's
    # header through a rollback journal with three disk flushes (journal, folder, file).
    db.execute("PRAGMA listing.synchronous = OFF")
    db.execute("PRAGMA listing.journal_mode = OFF")
    db.execute("PRAGMA listing.auto_vacuum = FULL")  # before the first table: dropped tables give the space back


class ListingSpill:
    """One poll's listing (see the module docstring); made by ``MetadataStore.listing_spill``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.complete: set[str] | None = None  # the listing saw every folder
        self.dir_revs: dict[str, str | None] = {}  # (folder revs are the pruned walk's: none here)
        self._db = db
        self._pending: list[tuple] = []
        db.execute("DROP TABLE IF EXISTS listing.entries")
        db.executescript(_TABLE)

    def add(self, entry: RemoteEntry) -> None:
        """Record one listed entry (a later entry at the same path replaces it)."""
        self._pending.append(_row(entry))
        if len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._db.execute("BEGIN")  # one transaction per batch, on the scratch database only
            try:
                self._db.executemany(_INSERT, self._pending)
            finally:
                self._db.execute("COMMIT")
            self._pending.clear()

    def drop(self) -> None:
        self._pending.clear()
        self._db.execute("DROP TABLE IF EXISTS listing.entries")

    # -- questions --------------------------------------------------------------------

    def __contains__(self, path: object) -> bool:
        return self._db.execute("SELECT 1 FROM listing.entries WHERE path = ?", (path,)).fetchone() is not None

    def has_id(self, item_id: str) -> bool:
        return self.entry_with_id(item_id) is not None

    def entry_with_id(self, item_id: str) -> RemoteEntry | None:
        row = self._db.execute(_SELECT + " WHERE l.id = ? LIMIT 1", (item_id,)).fetchone()
        return None if row is None else _entry(row)

    def depths(self) -> Iterator[int]:
        """The depths present, shallowest first (a depth's entries may be added while
        iterating only by ``replace``, which keeps depths)."""
        depth = -1
        while (row := self._db.execute("SELECT min(depth) FROM listing.entries WHERE depth > ?",
                                       (depth,)).fetchone()) is not None and row[0] is not None:
            depth = row[0]
            yield depth

    def worth_applying(self, depth: int) -> list[RemoteEntry]:
        """The entries at ``depth`` that applying could change something for (see the module docstring)."""
        return [_entry(row) for row in self._db.execute(_WORTH_APPLYING, (depth,))]

    def new_symlinks_without_target(self) -> list[RemoteEntry]:
        """Symlinks listed without their target and not placed here (the ones that may need a read)."""
        rows = self._db.execute(
            _SELECT + " WHERE l.kind = 'symlink' AND l.symlink_target IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM main.inodes i WHERE i.remote_path = l.path)"
            " AND NOT EXISTS (SELECT 1 FROM main.links k WHERE k.remote_path = l.path)")
        return [_entry(row) for row in rows]

    def replace(self, entry: RemoteEntry) -> None:
        self._db.execute(_INSERT, _row(entry))

    def discard(self, path: str) -> None:
        self._db.execute("DELETE FROM listing.entries WHERE path = ?", (path,))

    def placed_but_unlisted(self) -> dict[str, int]:
        """remote path -> ino of every inode placed where the listing has nothing."""
        return dict(self._db.execute(
            "SELECT i.remote_path, i.ino FROM main.inodes i WHERE i.remote_path IS NOT NULL AND i.ino != ?"
            " AND NOT EXISTS (SELECT 1 FROM listing.entries l WHERE l.path = i.remote_path)", (ROOT_INO,)))

    def links_placed_but_unlisted(self) -> dict[str, int]:
        """remote path -> link id of every hard link placed where the listing has nothing."""
        return dict(self._db.execute(
            "SELECT k.remote_path, k.id FROM main.links k WHERE k.remote_path IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM listing.entries l WHERE l.path = k.remote_path)"))
