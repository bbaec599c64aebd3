"""Uploads whose outcome is unknown: the bytes went out, the reply never came back
(timeout, connection reset, a lost response).  The object may or may not be there.

Without a record of them, such a write later looks like someone else's: the next
attempt (the file changed meanwhile) meets it as a conflict and copies our own
old version aside; and if the file was moved or deleted before the retry, the
object stays at the old path with no tombstone and the next poll brings back a
file the user deleted.

So each failed write leaves a ``SentWrite``: the path and the CRC-32 of every
chunk the remote read.  An object found later at that path is *ours* if its size
and the same chunks match; then it is taken as our revision (no conflict copy),
or, when the inode went elsewhere, tombstoned at that revision (a conditional
delete: a write by someone else in between is never removed) -- also when the
path already has a tombstone from before that write landed (the file was
deleted meanwhile), which would otherwise expect the older revision, be refused
by our own bytes and let the poll bring the file back.  A refused retry inside
the remote client may hide an attempt that landed: the uploader records the
attempt before it looks at what is there.  A directory whose
mkdir had no answer and that is then removed or moved here gets a directory
tombstone (removed on the remote only if empty).

Crash behaviour: kept in memory only.  After a restart an unknown write is again
taken for someone else's (a conflict copy or a left-over file: nothing is lost).
Concurrency: trio thread only.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import Iterator

from cloudgw.errors import RemoteError, RemoteNotFound
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.base import Kind, Remote, RemoteEntry
from cloudgw.sync.compare import read_exact

log = logging.getLogger(__name__)
KEEP_PER_INODE = 4  # unknown-outcome writes remembered per inode (any of them may be the one that landed)


@dataclass
class SentWrite:
    path: str
    size: int
    chunks: dict[int, tuple[int, int]] = field(default_factory=dict)  # offset -> (length, crc32)

    def complete(self) -> bool:
        """Every byte was read by the remote client at least once."""
        end = 0
        for offset in sorted(self.chunks):
            if offset > end:
                return False
            end = max(end, offset + self.chunks[offset][0])
        return end >= self.size


class ChunkLog:
    """What an upload source handed to the remote: ``note`` from its ``read``."""

    def __init__(self) -> None:
        self.chunks: dict[int, tuple[int, int]] = {}

    def note(self, offset: int, data: bytes) -> None:
        self.chunks[offset] = (len(data), zlib.crc32(data))


class UnackedWrites:
    def __init__(self, remote: Remote, store: MetadataStore) -> None:
        self.remote, self.store = remote, store
        self._sent: dict[int, list[SentWrite]] = {}  # ino -> its recent writes with unknown outcome
        self._orphans: list[SentWrite] = []  # of inodes deleted since: to remove if they landed
        self._dirs: dict[int, str] = {}  # ino -> path of a mkdir with unknown outcome

    def failed(self, ino: int, path: str, size: int, log_: ChunkLog) -> None:
        """A write of ``ino`` to ``path`` raised (not a refused precondition): it may have landed."""
        sent = SentWrite(path, size, dict(log_.chunks))
        if sent.complete():  # (if not every byte went out, it cannot have landed whole)
            recent = self._sent.setdefault(ino, [])
            recent.append(sent)
            del recent[:-KEEP_PER_INODE]

    def succeeded(self, ino: int) -> None:
        self._sent.pop(ino, None)

    def candidates(self, ino: int, path: str) -> list[SentWrite]:
        return [s for s in self._sent.get(ino, ()) if s.path == path]

    def mkdir_failed(self, ino: int, path: str) -> None:
        self._dirs[ino] = path

    def mkdir_succeeded(self, ino: int) -> None:
        self._dirs.pop(ino, None)

    def removed(self, ino: int) -> None:
        """The inode was deleted: a landed write of it must not outlive it."""
        self._orphans.extend(self._sent.pop(ino, ()))
        self._orphan_dir(ino)

    def moved_away(self, ino: int, path: str) -> None:
        """The inode is now to be written at ``path``: an unknown write elsewhere is an orphan."""
        recent = self._sent.get(ino)
        if recent and any(s.path != path for s in recent):
            self._orphans.extend(s for s in recent if s.path != path)
            recent[:] = [s for s in recent if s.path == path]
        if self._dirs.get(ino, path) != path:
            self._orphan_dir(ino)

    def _orphan_dir(self, ino: int) -> None:
        """A directory that may have been made: tombstoned (removed only if empty, so
        nothing of anyone else's goes with it)."""
        path = self._dirs.pop(ino, None)
        if path is not None and not self.store.is_placed(path) and self.store.tombstone(path) is None:
            self.store.add_tombstone(path, None, Kind.DIR)

    async def is_ours(self, sent: SentWrite, theirs: RemoteEntry) -> bool:
        """Whether ``theirs`` (at ``sent.path``) holds exactly the bytes of ``sent``."""
        if theirs.kind is not Kind.FILE or theirs.size != sent.size:
            return False
        for offset, (length, crc) in sent.chunks.items():
            data = await read_exact(self.remote, sent.path, theirs, offset, length)
            if data is None or len(data) != length or zlib.crc32(data) != crc:
                return False
        return True

    async def is_any_ours(self, ino: int, path: str, theirs: RemoteEntry) -> bool:
        for sent in self.candidates(ino, path):
            if await self.is_ours(sent, theirs):
                return True
        return False

    async def clean_orphans(self) -> None:
        """Tombstone the orphans that landed (at their revision); forget those that did not.
        Remote errors keep an orphan for the next round."""
        left: list[SentWrite] = []
        for sent in self._orphans:
            try:
                theirs = await self.remote.stat(sent.path)
            except RemoteNotFound:
                continue
            except RemoteError:
                left.append(sent)
                continue
            try:
                ours = await self.is_ours(sent, theirs)
            except RemoteError:
                left.append(sent)
                continue
            if ours and not self.store.is_placed(sent.path) and self._stale_tombstone(sent.path, theirs.rev):
                log.info("%s: an upload whose reply was lost had landed; removing it (its file moved or was deleted)",
                         sent.path)
                self.store.add_tombstone(sent.path, theirs.rev, Kind.FILE)
        self._orphans = left

    def _stale_tombstone(self, path: str, landed: str | None) -> bool:
        """Whether ``path`` needs a tombstone at the revision our orphan landed as: it has
        none, or a file's at the revision from before it (the file was deleted while that
        upload was unanswered).  A delete expecting that older revision would be refused by
        our own bytes, the tombstone dropped as "changed elsewhere", and the next poll would
        bring the file back."""
        tomb = self.store.tombstone(path)
        return tomb is None or (tomb[1] is Kind.FILE and tomb[0] != landed)

    def _unsettled(self) -> Iterator[str]:
        """Paths where a write or mkdir of ours may have landed without our knowing."""
        yield from (s.path for s in self._orphans)
        yield from self._dirs.values()
        yield from (s.path for recent in self._sent.values() for s in recent)

    def holds(self, path: str) -> bool:
        """An object at ``path`` may be a write of ours not yet accounted for (polls skip it)."""
        return any(p == path for p in self._unsettled())

    def holds_under(self, directory: str) -> bool:
        """A write or mkdir of ours with no answer may have landed below ``directory``: its
        rmdir must wait until that is settled, or it would take our own object for somebody
        else's data, keep the directory, and the poll would bring it back."""
        prefix = directory + "/"
        return any(p.startswith(prefix) for p in self._unsettled())

    def pending(self) -> int:
        return len(self._orphans)
