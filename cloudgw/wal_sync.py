"""Making the daemon's SQLite commits survive a power loss when a program asks for it.

Both databases (``metadata.db``, ``cache/cache-index.db``) run in WAL mode with
``synchronous=NORMAL``: a commit survives ``kill -9`` of the daemon at once (it is in
the kernel), but reaches the disk only at the next checkpoint, so a power loss may
take the last ones.  That is the contract of a local filesystem's metadata without
fsync -- and fsync(2) (or fsyncdir, after a rename) is how a program asks for more.
``WalSync`` flushes a database's WAL file (fdatasync), only when something was
committed since its last sync; the fsync and fsyncdir requests call it after their own commit, so the
file's row, size and state are on the disk with its data when the program's fsync
returns.  Without it a power loss could leave a file fsync'ed by a program absent, or
its size and state as before the write (its new data then re-fetched from the remote
over the only copy).

Blocking: the fsync runs on the calling (trio) thread, as the data file's own fsync in
``DataOps.fsync`` does; each costs a disk flush (~1-5 ms here), paid only by programs
that fsync.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


class WalSync:
    """``sync()``: the committed transactions of ``db`` (opened on ``path``) are on the disk."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._wal = path.with_name(path.name + "-wal")
        self._synced_changes = -1  # ``total_changes`` at the last sync: unknown at first

    def sync(self) -> None:
        """Called between transactions, so every change counted is committed."""
        changes = self._db.total_changes
        if changes == self._synced_changes:
            return
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:  # no WAL: everything is in the database file, synced by the checkpoint
            self._synced_changes = changes
            return
        try:
            os.fdatasync(fd)  # as SQLite syncs its WAL: the frames, and the size when it grew
        finally:
            os.close(fd)
        self._synced_changes = changes
