"""State shared by the sync engine's parts: the journal of our own remote changes,
the adoption of remote entries into the local tree, and kernel invalidations.

The journal exists because a remote listing is not a snapshot: it takes time,
and our own uploads, moves and deletes land while it runs.  Every remote change
we make bumps an epoch and records the paths it touched; a listing started at
epoch E ignores paths touched after E (its view of them may predate our change,
and acting on it would resurrect a delete or drop a fresh upload).
"""

from __future__ import annotations

import logging
import math
import posixpath
import time
from collections import deque
from dataclasses import dataclass, field

import trio

from cloudgw.cache.files import CacheFiles
from cloudgw.errors import CloudgwError
from cloudgw.filesystem.ports import MAX_NAME, Invalidate, InvalidateEntry, Orphaned, name_too_long
from cloudgw.metadata.model import FileState, Inode
from cloudgw.metadata.store import MetadataStore, NewChild
from cloudgw.remotes import specials
from cloudgw.remotes.base import Kind, Remote, RemoteEntry
from cloudgw.sync.unacked import UnackedWrites

log = logging.getLogger(__name__)
_DEFAULT_MODE = {Kind.DIR: 0o755, Kind.SYMLINK: 0o777}  # files: 0o644


def _unshowable(entry: RemoteEntry) -> str | None:
    """Why a remote entry cannot enter the local tree, or None if it can."""
    try:
        entry.path.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8 (rename it on the remote, e.g. with convmv)"
    if name_too_long(entry.name):
        return f"its name is longer than {MAX_NAME} bytes"
    return None


class Deferred(CloudgwError):
    """Not now: another inode still occupies the target path on the remote (or what this
    needs is not there yet); the write-back queue runs it again later."""


class Journal:
    """Paths this process changed on the remote, by epoch; whole trees for a directory
    moved in one call (everything below it changed its path)."""

    def __init__(self) -> None:
        self.epoch = 0
        self._touched: dict[str, int] = {}
        self._trees: dict[str, int] = {}

    def touch(self, *paths: str) -> None:
        self.epoch += 1
        for p in paths:
            self._touched[p] = self.epoch

    def touch_trees(self, *dirs: str) -> None:
        self.epoch += 1
        for d in dirs:
            self._touched[d] = self._trees[d] = self.epoch

    def touched_since(self, path: str, epoch: int) -> bool:
        if self._touched.get(path, -1) > epoch:
            return True
        if self._trees:
            parent = posixpath.dirname(path)
            while parent:
                if self._trees.get(parent, -1) > epoch:
                    return True
                parent = posixpath.dirname(parent)
        return False

    def prune(self, before_epoch: int) -> None:
        self._touched = {p: e for p, e in self._touched.items() if e > before_epoch}
        self._trees = {p: e for p, e in self._trees.items() if e > before_epoch}


@dataclass
class SyncStats:
    last_poll_ok: float | None = None
    last_poll_error: str | None = None
    errors: deque = field(default_factory=lambda: deque(maxlen=20))

    def error(self, message: str) -> None:
        self.errors.append((time.time(), message))


class SyncContext:
    """What the uploader, lister and poller share."""

    def __init__(
        self,
        store: MetadataStore,
        cache: CacheFiles,
        remote: Remote,
        invalidations: trio.MemorySendChannel | None = None,
        *,
        uid: int = 0,
        gid: int = 0,
    ) -> None:
        self.store = store
        self.cache = cache
        self.remote = remote
        self.journal = Journal()
        self.stats = SyncStats()
        self.uid, self.gid = uid, gid
        if invalidations is None:
            invalidations, self._sink = trio.open_memory_channel(math.inf)
        self.invalidations = invalidations
        self.unacked = UnackedWrites(remote, store)  # writes whose reply was lost
        self.in_flight: set[str] = set()  # remote paths an upload/move/mkdir under way may change
        self._skipped: set[str] = set()  # remote paths already reported as not shown


    def in_flight_at(self, path: str) -> bool:
        """Whether a change of ours under way may change ``path``: at ``path`` itself, or at a
        directory above it (a one-call directory move carries everything below along; a
        poll that lists while it is under way sees the tree half before, half after)."""
        while path:
            if path in self.in_flight:
                return True
            path = posixpath.dirname(path)
        return False

    def shown(self, entry: RemoteEntry) -> bool:
        """Whether a remote entry can enter the local tree.  One that cannot (a name that is
        not UTF-8, as old NAS shares hold; a name over 255 bytes) is skipped, never
        truncated or re-encoded into another file's name, with one warning per path."""
        why = _unshowable(entry)
        if why is None:
            return True
        if entry.path not in self._skipped:
            if len(self._skipped) < 10_000:
                self._skipped.add(entry.path)
            log.warning("skipping remote entry %r: %s", entry.path, why)
        return False

    # -- kernel cache invalidation (sent to the FUSE layer's task) -----------------------

    def invalidate(self, inode: Inode) -> None:
        self.invalidations.send_nowait(Invalidate(inode.ino))

    def invalidate_entry(self, parent: int, name: str) -> None:
        self.invalidations.send_nowait(InvalidateEntry(parent, name))

    def orphaned(self, inode: Inode) -> None:
        """The inode left the tree because of a remote change; the filesystem reaps it."""
        self.invalidations.send_nowait(Orphaned(inode.ino))

    # -- remote paths --------------------------------------------------------------------

    def under_tombstone(self, path: str, tombstoned_dirs: set[str]) -> bool:
        """True if ``path`` or one of its ancestors is a directory we are deleting."""
        while path:
            if path in tombstoned_dirs:
                return True
            path = posixpath.dirname(path)
        return False

    def tombstoned_dirs(self) -> set[str]:
        return {p for p, _rev, kind in self.store.tombstones() if kind is Kind.DIR}

    def may_adopt(self, path: str, epoch: int, tombstoned_dirs: set[str]) -> bool:
        """Whether a remote entry seen by a listing started at ``epoch`` may enter the tree."""
        if self.journal.touched_since(path, epoch) or self.in_flight_at(path) or self.unacked.holds(path):
            return False  # (in flight: our own change, done on the remote, not yet heard of)
        if self.store.tombstone(path) is not None or self.under_tombstone(path, tombstoned_dirs):
            return False
        return not self.store.is_placed(path)

    def adopt(self, entry: RemoteEntry, parent: Inode, *, listed: bool = False) -> Inode | None:
        """Create the local inode for a remote entry (caller checked ``may_adopt``)."""
        if self.store.lookup(parent.ino, entry.name) is not None:
            return None  # a local entry holds the name; its upload resolves the clash
        if not self.shown(entry):
            return None
        inode = self.store.create(parent=parent.ino, listed=listed, **self.new_child(entry)._asdict())
        self.invalidate_entry(parent.ino, entry.name)
        return inode

    def new_child(self, entry: RemoteEntry) -> NewChild:
        """The row of the local inode for a remote entry (attributes the remote does not
        keep default to the mount's owner and usual modes)."""
        special = specials.parse(entry.symlink_target) if entry.kind is Kind.SYMLINK else None
        if special is not None:  # a FIFO, socket or device, held as a symlink to its marker
            return NewChild(name=entry.name, kind=special.kind, mode=special.mode, uid=special.uid, gid=special.gid,
                            size=0, mtime_ns=entry.attrs.mtime_ns or entry.mtime_ns, target=None,
                            state=FileState.CLEAN, remote_path=entry.path, remote_rev=entry.rev,
                            remote_id=entry.id, rdev=special.rdev)
        attrs = entry.attrs
        return NewChild(
            name=entry.name,
            kind=entry.kind,
            mode=attrs.mode if attrs.mode is not None else _DEFAULT_MODE.get(entry.kind, 0o644),
            uid=attrs.uid if attrs.uid is not None else self.uid,
            gid=attrs.gid if attrs.gid is not None else self.gid,
            size=entry.size,
            mtime_ns=attrs.mtime_ns or entry.mtime_ns,
            target=entry.symlink_target,
            state=FileState.REMOTE_ONLY if entry.kind is Kind.FILE else FileState.CLEAN,
            remote_path=entry.path,
            remote_rev=entry.rev,
            remote_id=entry.id,
        )
