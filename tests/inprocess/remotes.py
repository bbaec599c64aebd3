"""file:// remotes that behave like the clouds whose change detection differs, for the
in-process tests of the poller's strategies.  Real directories, real files: only the
metadata a cloud would add is computed here.

- ``IdLocal``: entries carry stable ids (the inode number: it survives ``os.rename``),
  as Nextcloud's ``oc:fileid`` or Drive/Graph item ids do.
- ``FeedLocal``: an ``IdLocal`` with a change feed that speaks ids only (no paths), like
  Graph ``delta``: each cursor is a snapshot of the tree; ``changes`` diffs the tree
  against it.  ``expire()`` forgets every cursor (Graph's 410 Gone).
- ``PropagatingLocal``: directories have revs that change when anything below them
  changes, like Nextcloud's folder ETags.

Each counts its calls in ``calls`` (operation name -> count).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import AsyncIterator

from cloudgw.errors import CursorExpired
from cloudgw.remotes.base import Change, Expect, FileAttrs, Kind, RemoteEntry
from cloudgw.remotes.local import LocalRemote
from cloudgw.remotes.local_ops import local_rev


def content_rev(st: os.stat_result) -> str:
    """A rev that a rename leaves alone, as a cloud's content tag (file://'s own has ctime)."""
    return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"


class IdLocal(LocalRemote):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        # ids are inode numbers, which every name of a hard-linked file shares: no links here
        self.capabilities = dataclasses.replace(self.capabilities, stable_ids=True, hard_links=False)
        self.calls: collections.Counter[str] = collections.Counter()

    def _id(self, entry: RemoteEntry) -> RemoteEntry:
        try:
            st = os.lstat(self.root / entry.path)
        except FileNotFoundError:
            return entry
        rev = content_rev(st) if entry.kind is Kind.FILE else entry.rev
        return dataclasses.replace(entry, id=str(st.st_ino), rev=rev)

    def _inner(self, path: str, rev):  # noqa: ANN001, ANN202
        """Our content rev back to file://'s own, for its conditional operations."""
        if not isinstance(rev, str):
            return rev
        try:
            st = os.lstat(self.root / path)
        except FileNotFoundError:
            return rev
        return local_rev(st) if content_rev(st) == rev else rev

    async def stat(self, path: str) -> RemoteEntry:
        self.calls["stat"] += 1
        return self._id(await super().stat(path))

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        self.calls["list"] += 1
        async for entry in super().list(path, recursive=recursive):
            yield self._id(entry)

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        self.calls["read"] += 1
        return await super().read(path, offset, length, rev=self._inner(path, rev))

    async def write(self, path, source, *, expect=Expect.ANY, attrs=FileAttrs()):  # noqa: ANN001, ANN201
        return self._id(await super().write(path, source, expect=self._inner(path, expect), attrs=attrs))

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        await super().delete(path, expect=self._inner(path, expect))

    async def mkdir(self, path, *args):  # noqa: ANN001, ANN002, ANN201
        return self._id(await super().mkdir(path, *args))

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        return self._id(await super().rename(src, dst, expect=self._inner(src, expect)))

    async def copy(self, src: str, dst: str, *, rev: str | None = None, expect=Expect.ANY) -> RemoteEntry:  # noqa: ANN001
        return self._id(await super().copy(src, dst, rev=self._inner(src, rev), expect=self._inner(dst, expect)))


class FeedLocal(IdLocal):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.capabilities = dataclasses.replace(self.capabilities, change_feed=True)
        self._snapshots: dict[str, dict[str, tuple[str | None, RemoteEntry]]] = {}

    def _scan(self) -> dict[str, tuple[str | None, RemoteEntry]]:
        """id -> (parent id, entry) for everything below the root."""
        tree: dict[str, tuple[str | None, RemoteEntry]] = {}
        root_id = str(os.lstat(self.root).st_ino)
        for dirpath, dirnames, filenames in os.walk(self.root):
            parent_id = str(os.lstat(dirpath).st_ino)
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                kind = Kind.DIR if os.path.isdir(os.path.join(dirpath, name)) else Kind.FILE
                rev = None if kind is Kind.DIR else content_rev(st)
                tree[str(st.st_ino)] = (parent_id, RemoteEntry(rel, kind, st.st_size if rev else 0, st.st_mtime_ns, rev,
                                                               id=str(st.st_ino)))
        self.root_id = root_id
        return tree

    async def change_cursor(self) -> str:
        self.calls["change_cursor"] += 1
        cursor = str(len(self._snapshots))
        self._snapshots[cursor] = self._scan()
        return cursor

    async def changes(self, cursor: str) -> tuple[list[Change], str]:
        self.calls["changes"] += 1
        if cursor not in self._snapshots:
            raise CursorExpired(f"cursor {cursor} is too old")
        before, now = self._snapshots[cursor], self._scan()
        items = []
        for item_id, (parent_id, entry) in now.items():
            old = before.get(item_id)
            if old is None or old[0] != parent_id or old[1].path != entry.path or old[1].rev != entry.rev:
                parent = None if parent_id == self.root_id else parent_id  # None: the root
                named = dataclasses.replace(entry, path=entry.name)  # ids only, no paths (as Graph delta)
                items.append(Change(named, id=item_id, parent_id=parent))
        items += [Change(None, id=item_id) for item_id in before if item_id not in now]
        new = str(len(self._snapshots))
        self._snapshots[new] = now
        return items, new

    def expire(self) -> None:
        self._snapshots.clear()


class PropagatingLocal(LocalRemote):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.capabilities = dataclasses.replace(self.capabilities, dir_revs_propagate=True)
        self.calls: collections.Counter[str] = collections.Counter()
        self.listed: list[str] = []

    def _folder_rev(self, path: str) -> str:
        digest = hashlib.sha1()
        for dirpath, dirnames, filenames in sorted(os.walk(self.root / path)):
            for name in sorted(dirnames + filenames):
                st = os.lstat(os.path.join(dirpath, name))
                digest.update(f"{os.path.join(dirpath, name)}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def _with_rev(self, entry: RemoteEntry) -> RemoteEntry:
        return dataclasses.replace(entry, rev=self._folder_rev(entry.path)) if entry.kind is Kind.DIR else entry

    async def stat(self, path: str) -> RemoteEntry:
        self.calls["stat"] += 1
        return self._with_rev(await super().stat(path))

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        self.calls["list"] += 1
        self.listed.append(path)
        async for entry in super().list(path, recursive=recursive):
            yield self._with_rev(entry)


class HashLocal(LocalRemote):
    """file:// whose entries carry a SHA-1 of the content, as Graph (sha1Hash), Drive
    (md5Checksum) or Nextcloud (oc:checksums) report one."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.capabilities = dataclasses.replace(self.capabilities, hash_kind="sha1")
        self.calls: collections.Counter[str] = collections.Counter()

    def _hashed(self, entry: RemoteEntry) -> RemoteEntry:
        if entry.kind is not Kind.FILE:
            return entry
        return dataclasses.replace(entry, hash=hashlib.sha1((self.root / entry.path).read_bytes()).hexdigest())

    async def stat(self, path: str) -> RemoteEntry:
        return self._hashed(await super().stat(path))

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        self.calls["read"] += 1
        return await super().read(path, offset, length, rev=rev)
