"""``cloudgw fsck``: check (and repair) cache vs metadata vs remote, offline.

Runs on a cache dir that no daemon is using (it takes the same lock).  What it
checks, and what ``--repair`` does about it — never deleting data that exists
only here:

    metadata database corrupted          error     (no repair: restore or re-create the cache dir)
    inode whose parent is missing/not a  error     reattached at the top as lost+found-INO-NAME,
      directory                                    queued for upload
    pending file whose cached data is    error     (no repair: the local change is gone; the
      missing or incomplete                        remote keeps its last version)
    pending file size != its cache file  warning   size taken from the cache file
    cache block whose checksum does not  error     forgotten: fetched again from the remote
      match (damaged cache disk)                   when read
    cache file or index row with no inode warning  removed
    clean file the remote lost or        info      (the next poll applies it)
      changed since the last poll
    remote entry not yet in metadata     info      (the next poll or listing adopts it)
    changes waiting for upload / deletes info
    incomplete multipart uploads         warning   aborted (only with --repair)
    remote file that does not            error     (no repair: restore it from another copy;
      authenticate (encrypted remote,              reading it through the mount gives EIO)
      --verify-remote: every file read)
    remote file unreadable (--verify-    warning
      remote)
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from cloudgw.cache.checksums import block_crc
from cloudgw.cache.files import CacheFiles
from cloudgw.errors import IntegrityError, RemoteError, UserError
from cloudgw.metadata.model import ROOT_INO, FileState
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.base import Kind, Remote, read_into

VERIFY_PIECE = 8 << 20  # bytes per read while verifying remote files


@dataclass
class Finding:
    severity: str  # "error", "warning", "info"
    code: str
    path: str
    message: str
    repaired: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


class Fsck:
    def __init__(self, cache_dir: Path, *, repair: bool) -> None:
        if not (cache_dir / "metadata.db").exists():
            raise UserError(f"{cache_dir} is not a cloudgw cache dir (no metadata.db)")
        self.cache_dir = cache_dir
        self.repair = repair
        self.findings: list[Finding] = []

    def _add(self, severity: str, code: str, path: str, message: str, repaired: bool = False) -> None:
        self.findings.append(Finding(severity, code, path, message, repaired))

    # -- local -------------------------------------------------------------------------------

    def check_database(self) -> bool:
        try:
            db = sqlite3.connect(self.cache_dir / "metadata.db")
            result = db.execute("PRAGMA integrity_check").fetchone()[0]
            db.close()
        except sqlite3.DatabaseError as exc:
            result = str(exc)
        if result != "ok":
            self._add("error", "db-corrupt", "", f"metadata database corrupted: {result}")
            return False
        return True

    def check_local(self, store: MetadataStore, cache: CacheFiles) -> None:
        rows = store._exec("SELECT ino, parent FROM inodes").fetchall()  # noqa: SLF001 - fsck reads raw rows
        known = {ino for ino, _ in rows}
        for ino, parent in rows:
            inode = store.get(ino)
            if inode is None or ino == ROOT_INO or parent is None:
                continue
            parent_inode = store.get(parent)
            if parent_inode is None or not parent_inode.is_dir:
                name = f"lost+found-{ino}-{inode.name}"
                if self.repair:
                    store.update(inode, parent=ROOT_INO, name=name, needs_sync=True)
                self._add("error", "dangling-inode", inode.name,
                          f"inode {ino} has no valid parent directory", repaired=self.repair)
        self._check_links(store, known)
        for ino in store.inos_needing_sync():
            inode = store.get(ino)
            if inode is None or inode.kind is not Kind.FILE or not inode.state.has_unsynced_data:
                continue
            path = store.path_of(inode) or f"inode {ino}"
            entry = cache.get(ino)
            data_missing = entry is None or not os.path.exists(entry.path)
            incomplete = not data_missing and bool(entry.missing(0, entry.fetch_limit)) and inode.remote_path is None
            if data_missing and inode.size > 0:
                self._add("error", "dirty-data-missing", path, "a pending change's data is missing from the cache")
                continue
            if incomplete:
                self._add("error", "dirty-data-incomplete", path, "a pending change is only partly cached and has no remote copy")
                continue
            if entry is not None and not entry.missing(0, entry.fetch_limit):
                size = os.stat(entry.path).st_size
                if size != inode.size:
                    if self.repair:
                        store.update(inode, size=size)
                    self._add("warning", "size-mismatch", path,
                              f"size {inode.size} in metadata, {size} in the cache file", repaired=self.repair)
        for entry in cache.entries():
            if entry.ino not in known:
                if self.repair:
                    cache.remove(entry.ino)
                self._add("warning", "stray-cache-entry", f"inode {entry.ino}", "cached data of no file",
                          repaired=self.repair)
        self._check_block_sums(store, cache)
        data_dir = cache.root / "data"
        for f in data_dir.iterdir():
            try:
                ino = int(f.name, 16)
            except ValueError:
                ino = -1
            if cache.get(ino) is None and ino not in known:
                if self.repair:
                    f.unlink(missing_ok=True)
                self._add("warning", "stray-cache-file", f.name, "a cache file no file refers to", repaired=self.repair)
        pending = store.count_needing_sync()
        if pending:
            self._add("info", "pending-uploads", "", f"{pending} changes wait for upload")
        tombstones = len(store.tombstones())
        if tombstones:
            self._add("info", "pending-deletes", "", f"{tombstones} remote deletes pending")

    def _check_links(self, store: MetadataStore, known: set[int]) -> None:
        """Hard links: every link names an inode in the tree, under a directory; an inode in the
        tree counts 1 + its links."""
        for link_id, ino, parent, name in store._exec("SELECT id, ino, parent, name FROM links"):  # noqa: SLF001
            inode, directory = store.get(ino), store.get(parent)
            if ino not in known or inode is None or inode.parent is None or directory is None or not directory.is_dir:
                if self.repair and (link := store.link_by_id(link_id)) is not None:
                    store.remove_link(link)
                self._add("error", "dangling-link", name, f"hard link {link_id} names no file in the tree",
                          repaired=self.repair)
        rows = store._exec(  # noqa: SLF001
            "SELECT i.ino, i.nlink, (SELECT count(*) FROM links l WHERE l.ino = i.ino) FROM inodes i"
            " WHERE i.kind != 'dir' AND i.parent IS NOT NULL AND (i.nlink != 1 OR i.ino IN (SELECT ino FROM links))"
        ).fetchall()
        for ino, nlink, links in rows:  # (out of the tree: reaped at the next start, whatever its count)
            expected = 1 + links
            if nlink != expected and (inode := store.get(ino)) is not None:
                if self.repair:
                    store.update(inode, nlink=expected)
                self._add("error", "link-count", inode.name, f"inode {ino}: link count {nlink}, {expected} names",
                          repaired=self.repair)

    def _check_block_sums(self, store: MetadataStore, cache: CacheFiles) -> None:
        for entry in cache.entries():
            if not entry.unchecked or not os.path.exists(entry.path):
                continue
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                bad = [b for b in sorted(entry.unchecked) if block_crc(fd, entry, b) != entry.sums[b]]
            finally:
                os.close(fd)
            if not bad:
                continue
            if self.repair:
                for b in bad:
                    entry.forget_block(b)
            inode = store.get(entry.ino)
            path = (store.path_of(inode) if inode is not None else None) or f"inode {entry.ino}"
            self._add("error", "corrupt-cache-data", path,
                      f"{len(bad)} cached block(s) corrupt (checksum mismatch); they are fetched again when read",
                      repaired=self.repair)

    # -- remote ------------------------------------------------------------------------------

    async def check_remote(self, store: MetadataStore, remote: Remote, *, verify: bool = False) -> None:
        listing = {}
        try:
            await remote.check()  # an encrypted remote unlocks its vault here
        except UserError as exc:
            self._add("error", "remote-unusable", "", str(exc))
            return
        except RemoteError:
            pass  # the listing below says it
        try:
            async for entry in remote.list("", recursive=True):
                listing[entry.path] = entry
        except RemoteError as exc:
            self._add("error", "remote-unreachable", "", f"cannot list the remote: {exc}")
            return
        placed = store.remote_paths_under("")
        tomb = {p for p, _r, _k in store.tombstones()}
        for path, ino in placed.items():
            inode = store.get(ino)
            if inode is None or inode.parent is None:
                continue
            entry = listing.get(path)
            if entry is None:
                self._add("info", "remote-missing", path, "gone from the remote since the last poll")
            elif (inode.kind is Kind.FILE and inode.state in (FileState.CLEAN, FileState.REMOTE_ONLY)
                  and entry.rev != inode.remote_rev):
                self._add("info", "remote-changed", path, "changed on the remote since the last poll")
        links = store.link_paths_under("")  # hard links: objects of their own
        for path in links.keys() - listing.keys():
            self._add("info", "remote-missing", path, "gone from the remote since the last poll")
        for path, entry in listing.items():
            if path not in placed and path not in tomb and path not in links:
                parent = store.by_remote_path(path.rpartition("/")[0]) if "/" in path else store.get(ROOT_INO)
                if parent is not None and parent.listed:
                    self._add("info", "remote-unseen", path, "on the remote, not yet in the mount")
        if verify:
            for path, entry in sorted(listing.items()):
                if entry.kind is Kind.FILE:
                    await self._verify(remote, entry)
        if self.repair:
            try:
                aborted = await remote.abort_incomplete_uploads()
            except RemoteError as exc:
                self._add("warning", "abort-uploads-failed", "", str(exc))
            else:
                if aborted:
                    self._add("warning", "incomplete-uploads", "", f"{aborted} incomplete uploads", repaired=True)

    async def _verify(self, remote: Remote, entry) -> None:  # noqa: ANN001  (RemoteEntry)
        """Read all of a remote file (an encrypted remote authenticates every chunk, and the
        header even of an empty or impossible-sized object); the bytes are dropped."""
        offset, end = 0, max(entry.size, 1)
        try:
            while offset < end:
                length = min(VERIFY_PIECE, end - offset)
                await read_into(remote, entry.path, offset, length, lambda _data: None, rev=entry.rev)
                offset += length
        except IntegrityError as exc:
            self._add("error", "remote-damaged", entry.path, str(exc))
        except RemoteError as exc:
            self._add("warning", "remote-unreadable", entry.path, str(exc))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error" and not f.repaired]


async def run_fsck(cache_dir: Path, *, repair: bool, remote_check: bool = True, verify_remote: bool = False) -> Fsck:
    """Lock the cache dir, run every check; the remote is rebuilt from what the mount recorded."""
    import json

    from cloudgw.app import lock_cache_dir
    from cloudgw.config import RemoteSpec
    from cloudgw.remotes.open import open_remotes
    from cloudgw.remotes.registry import Common

    fsck = Fsck(cache_dir, repair=repair)
    lock_fd = lock_cache_dir(cache_dir)
    try:
        if not fsck.check_database():
            return fsck
        store = MetadataStore(cache_dir / "metadata.db")
        cache = CacheFiles(cache_dir / "cache")
        try:
            fsck.check_local(store, cache)
            specs = json.loads(store.get_kv("remote_specs") or "{}")
            remote_timeout = float(store.get_kv("remote_timeout") or 30.0)
            if remote_check and specs:
                remote = open_remotes({name: RemoteSpec.from_json(s, f"the mount recorded in {cache_dir}")
                                       for name, s in specs.items()}, Common(timeout=remote_timeout))
                try:
                    await fsck.check_remote(store, remote, verify=verify_remote)
                finally:
                    await remote.aclose()
        finally:
            cache.close()
            store.close()
    finally:
        os.close(lock_fd)
    return fsck
