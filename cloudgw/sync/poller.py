"""Seeing changes made on the remote by anyone else: one strategy per kind of remote.

``Poller.poll()`` picks, from the remote's capabilities:

- **ChangeFeed** (``change_feed``: Graph ``delta``, Drive ``changes``): ask for the
  changes since the cursor; the new cursor is committed in the same transaction as
  the changes it covers.  No cursor yet, or ``CursorExpired``: take a cursor
  *first*, then list everything (a change between the two shows up twice, never
  zero times).  An idle poll is one request.
- **PrunedListing** (``dir_revs_propagate``: Nextcloud/ownCloud folder ETags): stat
  the root; unchanged rev -> done (one request); else list only the folders whose
  rev changed, level by level.  A folder's rev is stored only after its listing was
  applied, and it is the rev seen *before* listing it, so a change during the walk
  is seen by the next poll.
- **FullListing** (everything else: S3, file://, plain WebDAV): list the whole
  remote recursively and diff it with the metadata store.

All three end in ``RemoteChanges`` (the rules are written there).  "Gone" is
decided only for directories a poll has seen completely (all of them for a full
listing; the walked folders for a pruned one; never from a feed, which says
deletions itself).

Crash behaviour: each poll's changes (and its cursor or folder revs) are applied
in one transaction; a crash loses nothing but the poll, which the next start
repeats.

Memory: a full listing is never held: it goes into a scratch table as it comes
(``cloudgw.metadata.listing``), SQLite compares it with the inode table, and only
the entries that may change something are built as objects, one depth at a time --
a poll's memory follows its changes, not the tree (a million unchanged entries:
one batch of rows).  A pruned walk holds the folders it walked; a feed, one record
per change.

Concurrency: one poll at a time (``_one_at_a_time``); the apply never awaits.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, TypeVar

import trio

from cloudgw.crashpoints import crash_point
from cloudgw.errors import CursorExpired, RemoteNotFound
from cloudgw.metadata.listing import ListingSpill
from cloudgw.metadata.model import ROOT_INO
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.base import Change, ChangeFeedRemote, Kind, RemoteEntry
from cloudgw.sync.context import SyncContext
from cloudgw.sync.lister import DirectoryLister
from cloudgw.sync.remote_changes import RemoteChanges

log = logging.getLogger(__name__)

CURSOR_KEY = "change_cursor"
T = TypeVar("T")
L = TypeVar("L", bound="Listing")


@dataclass
class PollResult:
    """What one poll did: how many local entries changed, and which inodes lost their
    placement and must be uploaded anew (the engine queues them)."""

    changed: int = 0
    wants_sync: list[int] = field(default_factory=list)
    strategy: str = ""


class Listing(Protocol):
    """What a poll saw, as the apply asks it (``Snapshot`` in memory, ``ListingSpill`` in SQLite)."""

    complete: set[str] | None  # the folders seen completely (None: all of them)
    dir_revs: dict[str, str | None]  # folder revs to store once applied (pruned walk)

    def depths(self) -> Iterator[int]: ...
    def new_symlinks_without_target(self) -> list[RemoteEntry]: ...
    def replace(self, entry: RemoteEntry) -> None: ...
    def discard(self, path: str) -> None: ...
    def worth_applying(self, depth: int) -> list[RemoteEntry]: ...
    def has_id(self, item_id: str) -> bool: ...
    def entry_with_id(self, item_id: str) -> RemoteEntry | None: ...
    def placed_but_unlisted(self) -> dict[str, int]: ...
    def links_placed_but_unlisted(self) -> dict[str, int]: ...


@dataclass
class Snapshot:
    """What a pruned walk saw, in memory: entries by path, and the directories it saw
    completely (the walked folders: "gone" is judged only in them)."""

    store: MetadataStore
    entries: dict[str, RemoteEntry] = field(default_factory=dict)
    complete: set[str] | None = field(default_factory=set)
    dir_revs: dict[str, str | None] = field(default_factory=dict)  # folder revs to store (pruned walk)

    def depths(self) -> Iterator[int]:
        return iter(sorted({path.count("/") for path in self.entries}))

    def worth_applying(self, depth: int) -> list[RemoteEntry]:
        return [e for e in self.entries.values() if e.path.count("/") == depth]

    def has_id(self, item_id: str) -> bool:
        return self.entry_with_id(item_id) is not None

    def entry_with_id(self, item_id: str) -> RemoteEntry | None:
        return next((e for e in self.entries.values() if e.id == item_id), None)

    def new_symlinks_without_target(self) -> list[RemoteEntry]:
        return [e for e in self.entries.values() if e.kind is Kind.SYMLINK and e.symlink_target is None]

    def replace(self, entry: RemoteEntry) -> None:
        self.entries[entry.path] = entry

    def discard(self, path: str) -> None:
        del self.entries[path]

    def placed_but_unlisted(self) -> dict[str, int]:
        return self._unlisted(self.store.remote_paths_under(""))

    def links_placed_but_unlisted(self) -> dict[str, int]:
        return self._unlisted(self.store.link_paths_under(""))

    def _unlisted(self, placed: dict[str, int]) -> dict[str, int]:
        """Of ``placed`` (remote path -> ino or link id), what lies in a folder seen completely
        but was not seen."""
        complete = self.complete or set()
        if not complete:
            return {}
        return {p: n for p, n in placed.items() if posixpath.dirname(p) in complete and p not in self.entries}


class _ListedIds:
    """``RemoteChanges.relocated`` for a listing: the ids it holds, asked one at a time."""

    def __init__(self, listing: Listing) -> None:
        self._listing = listing

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and self._listing.has_id(item_id)


class Poller:
    def __init__(self, ctx: SyncContext, lister: DirectoryLister) -> None:
        self.ctx = ctx
        self.lister = lister
        self._one_at_a_time = trio.Lock()  # (a triggered poll waits for the periodic one)
        caps = ctx.remote.capabilities
        if caps.change_feed and isinstance(ctx.remote, ChangeFeedRemote):
            self.strategy = "change-feed"
        elif caps.dir_revs_propagate:
            self.strategy = "pruned-listing"
        else:
            self.strategy = "full-listing"

    async def poll(self) -> PollResult:
        """One poll with the remote's strategy."""
        async with self._one_at_a_time:
            if self.strategy == "change-feed":
                result = await self._feed()
            elif self.strategy == "pruned-listing":
                epoch = self.ctx.journal.epoch
                snapshot = await self._walk_changed()
                result = self._apply(await self._with_targets(snapshot), epoch)
            else:
                epoch = self.ctx.journal.epoch
                with self.ctx.store.listing_spill() as spill:
                    await self._list_all(spill)
                    result = self._apply(await self._with_targets(spill), epoch)
        result.strategy = self.strategy
        self.ctx.stats.last_poll_ok = time.time()
        self.ctx.stats.last_poll_error = None
        if result.changed:
            log.info("poll: %d remote changes applied", result.changed)
        return result

    # -- listings --------------------------------------------------------------------------

    async def _list_all(self, spill: ListingSpill) -> None:
        async for entry in self.ctx.remote.list("", recursive=True):
            if self.ctx.shown(entry):
                spill.add(entry)
        spill.flush()

    async def _walk_changed(self) -> Snapshot:
        store, remote = self.ctx.store, self.ctx.remote
        root = await remote.stat("")
        snapshot = Snapshot(store)
        if root.rev is not None and root.rev == store.get(ROOT_INO).remote_rev:  # type: ignore[union-attr]
            return snapshot
        snapshot.dir_revs[""] = root.rev
        todo = [""]
        while todo:
            directory = todo.pop()
            try:
                async for entry in remote.list(directory):
                    if not self.ctx.shown(entry):
                        continue
                    snapshot.entries[entry.path] = entry
                    if entry.kind is Kind.DIR:
                        known = store.by_remote_path(entry.path)
                        if known is not None and known.listed and (entry.rev is None or entry.rev != known.remote_rev):
                            todo.append(entry.path)
                            snapshot.dir_revs[entry.path] = entry.rev
            except RemoteNotFound:
                if not directory:
                    raise
                snapshot.dir_revs.pop(directory, None)  # not complete: nothing below is judged,
                continue  # and its revision is not taken as seen (it was removed after its parent's listing)
            snapshot.complete.add(directory)  # type: ignore[union-attr]
        return snapshot

    async def _with_targets(self, listing: L) -> L:
        """New symlinks enter the tree with their target (emulated ones need a read).  Not one
        of ours being deleted (a tombstone: it is not adopted anyway, and the delete may race the
        read -- Apache then answers 403); one gone since the listing is left out, as if unlisted."""
        store = self.ctx.store
        for entry in listing.new_symlinks_without_target():
            if store.is_placed(entry.path) or store.tombstone(entry.path) is not None:
                continue
            try:
                listing.replace(await self.lister.with_target(entry))
            except RemoteNotFound:
                listing.discard(entry.path)
        return listing

    def _apply(self, listing: Listing, epoch: int, *, cursor: str | None = None) -> PollResult:
        """Apply what the poll saw, shallowest first (a folder before what is in it), then
        judge what it lacks; one transaction (see the module docstring)."""
        ctx, store = self.ctx, self.ctx.store
        changes = RemoteChanges(ctx, epoch)
        changes.relocated = _ListedIds(listing)
        crash_point("poll-before-apply")
        changed = 0
        with store.transaction():
            for depth in listing.depths():
                level = listing.worth_applying(depth)  # after the level above was applied: it may adopt folders
                for entry in self._vacating_first(self._with_holders(level, listing), lambda e: e.path,
                                                  lambda e: e.id):
                    changed += changes.present(entry, listed=listing.complete is None)
                    if changed:
                        crash_point("poll-mid-apply")  # the transaction is rolled back by SQLite
            # hard links first: a first name gone hands its inode to a name still there
            for path, link_id in listing.links_placed_but_unlisted().items():
                if not ctx.unacked.holds(path):
                    link = store.link_by_id(link_id)
                    if link is not None and link.remote_path == path:
                        changed += changes.link_gone(link)
            placed = listing.placed_but_unlisted()
            for path, ino in sorted(placed.items(), key=lambda kv: -kv[0].count("/")):
                if ctx.unacked.holds(path):
                    changes.skipped.add(path)
                    continue
                inode = store.get(ino)
                if inode is not None:
                    changed += changes.gone(inode)
            for path in changes.skipped:  # left alone this time: walk their folders again next time
                parent = path
                while parent:
                    parent = posixpath.dirname(parent)
                    if parent in listing.dir_revs:
                        listing.dir_revs[parent] = None
            for path, rev in listing.dir_revs.items():
                directory = store.get(ROOT_INO) if path == "" else store.by_remote_path(path)
                if directory is not None and directory.is_dir:
                    store.update(directory, remote_rev=rev)
            if cursor is not None:
                store.set_kv(CURSOR_KEY, cursor)
        ctx.journal.prune(epoch)
        return PollResult(changed, changes.wants_sync)

    def _with_holders(self, level: list[RemoteEntry], listing: Listing) -> list[RemoteEntry]:
        """``level`` plus, for an entry taking a path an item we hold is at, that item's own
        entry when the listing has it elsewhere (at another depth): ``_vacating_first`` then
        moves it away before the path is taken.  Remotes without ids: ``level`` as it is."""
        store = self.ctx.store
        ids = {e.id for e in level if e.id is not None}
        holders = []
        for entry in level:
            if entry.id is None:
                continue
            holder = store.by_remote_path(entry.path)
            if holder is not None and holder.remote_id not in (None, entry.id) and holder.remote_id not in ids:
                moved = listing.entry_with_id(holder.remote_id)  # type: ignore[arg-type]
                if moved is not None:
                    holders.append(moved)
                    ids.add(holder.remote_id)  # type: ignore[arg-type]
        return level + holders

    # -- change feeds ----------------------------------------------------------------------

    async def _feed(self) -> PollResult:
        ctx, store = self.ctx, self.ctx.store
        remote = ctx.remote
        assert isinstance(remote, ChangeFeedRemote)
        cursor = store.get_kv(CURSOR_KEY)
        if cursor is not None:
            epoch = ctx.journal.epoch
            try:
                items, new_cursor = await remote.changes(cursor)
            except CursorExpired as exc:
                log.info("change feed: %s; listing everything again", exc)
            else:
                return self._apply_feed(items, new_cursor, epoch)
        epoch = ctx.journal.epoch
        new_cursor = await remote.change_cursor()  # before the listing: nothing falls between
        with store.listing_spill() as spill:
            await self._list_all(spill)
            return self._apply(await self._with_targets(spill), epoch, cursor=new_cursor)

    def _apply_feed(self, items: list[Change], cursor: str, epoch: int) -> PollResult:
        """Apply a feed's changes: the last word on each item wins; an item whose parent is
        another item of the same batch waits for it (feeds do not promise parents first)."""
        ctx, store = self.ctx, self.ctx.store
        changes = RemoteChanges(ctx, epoch)
        latest: dict[str, Change] = {}
        for item in items:
            latest[item.id or item.path or ""] = item
        changes.relocated = {item.id for item in latest.values() if item.id is not None}
        pending = self._vacating_first(sorted(latest.values(), key=lambda c: (c.path or "").count("/")),
                                       self._feed_target, lambda c: c.id if c.entry is not None else None)
        changed = 0
        crash_point("poll-before-apply")
        with store.transaction():
            while pending:
                waiting = []
                for item in pending:
                    done = self._apply_item(changes, item)
                    if done is None:
                        waiting.append(item)
                    else:
                        changed += done
                if len(waiting) == len(pending):
                    break  # parents never placed here: outside what we show
                pending = waiting
            for item in pending:  # moved out of view: gone from what we show
                known = store.by_remote_id(item.id) if item.id else None
                if known is not None:
                    changed += changes.gone(known)
            store.set_kv(CURSOR_KEY, cursor)
        ctx.journal.prune(epoch)
        return PollResult(changed, changes.wants_sync)

    def _feed_target(self, item: Change) -> str | None:
        """Where a feed item will be placed, if its parent is placed already (else None)."""
        if item.entry is None or item.path is not None:
            return item.path
        store = self.ctx.store
        parent = store.by_remote_id(item.parent_id) if item.parent_id else store.get(ROOT_INO)
        if parent is None or parent.remote_path is None:
            return None
        return posixpath.join(parent.remote_path, item.entry.name) if parent.remote_path else item.entry.name

    def _vacating_first(self, items: list[T], target: Callable[[T], str | None],
                        item_id: Callable[[T], str | None]) -> list[T]:
        """``items`` ordered so that one taking a path we hold comes after the item of this
        poll that moves the holder away: Drive's numbered duplicates shift together when one
        comes or goes (``report (1).pdf`` becomes ``report.pdf`` as ``report.pdf`` leaves, or
        the other way round), and a name must be free before it is taken, or the holder would
        be taken for gone (a new inode, its cache lost).  Otherwise the order stays; a cycle
        (two names swapped) keeps the given order."""
        store = self.ctx.store
        index = {item_id(item): n for n, item in enumerate(items) if item_id(item) is not None}
        follows: dict[int, int] = {}
        for n, item in enumerate(items):
            if item_id(item) is None:  # (remotes without ids: no lookup per listed entry)
                continue
            path = target(item)
            holder = store.by_remote_path(path) if path is not None else None
            if holder is None or holder.remote_id is None or holder.remote_id == item_id(item):
                continue
            first = index.get(holder.remote_id)
            if first is not None and first != n:
                follows[n] = first
        if not follows:
            return items
        ordered: list[T] = []
        done: set[int] = set()
        for n in range(len(items)):
            chain: list[int] = []
            m: int | None = n
            while m is not None and m not in done and m not in chain:
                chain.append(m)
                m = follows.get(m)
            for k in reversed(chain):
                done.add(k)
                ordered.append(items[k])
        return ordered

    def _apply_item(self, changes: RemoteChanges, item: Change) -> int | None:
        """Apply one feed item: how many local entries changed; None if its parent is not
        placed here (yet)."""
        store = self.ctx.store
        if item.entry is None:
            known = store.by_remote_id(item.id) if item.id else (store.by_remote_path(item.path) if item.path else None)
            if known is None and (link := store.link_by_remote_id(item.id) if item.id else
                                  store.link_at(item.path) if item.path else None) is not None:
                return changes.link_gone(link)
            return changes.gone(known) if known is not None else 0
        path = item.path
        if path is None:
            parent = store.by_remote_id(item.parent_id) if item.parent_id else store.get(ROOT_INO)
            if parent is None or parent.remote_path is None:
                return None
            path = posixpath.join(parent.remote_path, item.entry.name) if parent.remote_path else item.entry.name
        entry = dataclasses.replace(item.entry, path=path, id=item.id or item.entry.id)
        changed = changes.present(entry, listed=False) if self.ctx.shown(entry) else 0
        known = store.by_remote_id(entry.id) if entry.id else None
        if known is not None and known.remote_path not in (None, path):
            # not followed as a move (into a folder not listed here, onto a name taken here, a
            # name not shown): the old place is gone, as a listing would find; the feed will
            # not say so again
            changed += changes.gone(known)
        return changed
