"""Deleting remote objects that left the local tree (unlink, rmdir, moves).

A tombstone is ``(remote_path, rev we last saw, kind)``, committed in the same
transaction as the local change that caused it.  Processing it deletes the
remote object only if it is still at that revision: a version someone else
wrote meanwhile is never deleted (it stays, and the poller shows it again).

Rules, in the order they are checked:

* a local inode of the same kind (directory or not) now lives at the same path and
  awaits upload: skip; its upload replaces the object (expecting the tombstone's
  revision) and drops the tombstone.  Of the other kind, it cannot replace the
  object: delete first (the uploader defers it meanwhile);
* a directory is removed only after nothing of ours is still placed, tombstoned
  or on its way under it (children being moved away, deleted, or moved in by a
  reconcile under way, or a write/mkdir of ours whose reply was lost); deepest
  paths go first;
* a directory holding objects we do not know is left alone (outside data wins).

Crash behaviour: tombstones are durable; a delete that happened but whose
tombstone was not yet dropped is simply repeated (deletes are idempotent).
"""

from __future__ import annotations

import logging
import posixpath

from cloudgw.errors import PreconditionFailed, RemoteError, RemoteNotEmpty
from cloudgw.remotes.base import Kind
from cloudgw.sync.context import SyncContext

log = logging.getLogger(__name__)


class TombstoneProcessor:
    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx

    def pending(self) -> int:
        return self.ctx.store.tombstone_count()

    async def process(self) -> bool:
        """One pass over all tombstones; True if some remain (to retry later)."""
        store = self.ctx.store
        remaining = False
        for path, rev, kind in store.tombstones():
            if store.tombstone(path) != (rev, kind):
                continue  # replaced or dropped since the pass began
            local = store.resolve(path)
            if local is not None and local.needs_sync and local.is_dir == (kind is Kind.DIR):
                remaining = True
                continue
            if path in self.ctx.in_flight:  # an upload/move to it is under way: see what it leaves
                remaining = True
                continue
            if self._directory_in_flight(path):  # a one-call move of a directory above may carry
                remaining = True  # it elsewhere (the tombstone then follows: ``move_placements``)
                continue
            try:
                done = await self._delete(path, rev, kind)
            except RemoteError as exc:
                log.warning("deleting %s on the remote failed (will retry): %s", path, exc)
                self.ctx.stats.error(f"delete {path}: {exc}")
                remaining = True
                continue
            if not done:
                remaining = True
                continue
            self.ctx.journal.touch(path)
            if store.tombstone(path) == (rev, kind):
                store.remove_tombstone(path)
        return remaining

    def _directory_in_flight(self, path: str) -> bool:
        return self.ctx.in_flight_at(posixpath.dirname(path))

    async def _delete(self, path: str, rev: str | None, kind: Kind) -> bool:
        remote, store = self.ctx.remote, self.ctx.store
        if kind is Kind.DIR:
            if any(p != path for p in store.remote_paths_under(path)) or store.link_paths_under(path):
                return False  # children are still being moved out
            if any(p.startswith(path + "/") for p, _rev, _kind in store.tombstones()):
                return False  # or deleted (a failed delete is no outside data)
            if any(p.startswith(path + "/") for p in self.ctx.in_flight):
                return False  # or an upload/move into it is under way
            if self.ctx.unacked.holds_under(path):
                return False  # or one of ours may have landed there unanswered (sync.unacked)
            try:
                await remote.rmdir(path)
            except RemoteNotEmpty:
                log.info("not removing remote directory %s: it holds data this mount does not know", path)
            return True
        try:
            await remote.delete(path, expect=rev)
        except PreconditionFailed:
            if store.tombstone(path) != (rev, kind):
                return True  # an upload of ours took the path meanwhile (and dropped this tombstone)
            log.warning("not deleting %s on the remote: it was changed elsewhere; that version stays", path)
        log.info("deleted %s", path)
        return True
