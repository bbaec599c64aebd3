"""Several remotes as the top-level folders of one tree (``cloudgw mount --config``).

The root lists one directory per mount name; ``"name/rest"`` is ``rest`` on
that remote.  The top level itself is fixed by the configuration: creating,
deleting or renaming a top-level entry raises ``RemoteUnsupported`` with errno
EOPNOTSUPP.  Renaming or copying between two remotes raises
``RemoteUnsupported`` with errno EXDEV, the errno that makes ``mv`` fall back
to copy + delete, as between two filesystems.

Change feeds: when every remote has one (Graph ``delta``, Drive ``changes``), the router
has one too, so a mount made from a config file polls with one request per remote when
idle instead of listing everything.  Its cursor is a JSON object of the remotes' cursors;
a cursor that does not name exactly the configured remotes (the configuration changed) is
expired: everything is listed again.  An item directly below a remote's folder is placed
by its path (``NAME/name``), deeper ones by their parent's id.  Ids pass through as the
remotes give them: two remotes on one account (two folders of one drive) share an id
space, so the removals of every remote come first -- a file moved from one mounted folder
to the other in the cloud is gone from the first before it appears in the second.

Concurrency and crash behaviour are those of the remote a path lands on; the
router keeps no state besides the mapping.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import time
from typing import AsyncIterator, Callable, Collection

import trio

from cloudgw.errors import CursorExpired, RemoteNotFound, RemoteUnsupported, UserError
from cloudgw.remotes.base import (Capabilities, Change, Expect, FileAttrs, Kind, Remote, RemoteEntry, UploadSource,
                                  capabilities_at, check_path, forward_set_attrs, read_into)
from cloudgw.remotes.base import link as link_in, same_version as same_version_in


def _conservative(caps: list[Capabilities]) -> Capabilities:
    """What holds for every remote: a feature only if all have it, the lowest limit."""
    kinds = {c.hash_kind for c in caps}
    return Capabilities(
        hash_kind=kinds.pop() if len(kinds) == 1 else None,
        conditional_write=all(c.conditional_write for c in caps),
        server_side_copy=all(c.server_side_copy for c in caps),
        delta_writes=all(c.delta_writes for c in caps),
        streaming_reads=all(c.streaming_reads for c in caps),
        native_symlinks=all(c.native_symlinks for c in caps),
        case_sensitive=all(c.case_sensitive for c in caps),
        max_name_length=min(c.max_name_length for c in caps),
        keeps_mode=all(c.keeps_mode for c in caps),
        keeps_mtime=all(c.keeps_mtime for c in caps),
        change_feed=all(c.change_feed for c in caps),
        dir_rename=all(c.dir_rename for c in caps),
        dir_revs_propagate=all(c.dir_revs_propagate for c in caps),
        stable_ids=all(c.stable_ids for c in caps),
        hard_links=all(c.hard_links for c in caps),
    )


class RouterRemote:
    def __init__(self, mounts: dict[str, Remote]) -> None:
        if not mounts:
            raise UserError("no remotes configured: add at least one mount")
        for name in mounts:
            if not name or "/" in name or name in (".", ".."):
                raise UserError(f"invalid mount name {name!r}: use a plain folder name without '/'")
        self.mounts = dict(mounts)
        self._since = time.time_ns()  # the top-level folders' mtime: when this mount began (not 1970)

    @property
    def capabilities(self) -> Capabilities:
        """What all the mounted remotes can do, asked each time: a remote may learn more
        about its server in ``check()`` (a WebDAV server that turns out to be a Nextcloud).
        The top level is fixed: the filesystem refuses to change it (EPERM) instead of
        queueing doomed uploads."""
        return dataclasses.replace(_conservative([m.capabilities for m in self.mounts.values()]), fixed_root=True)

    def __repr__(self) -> str:
        return f"RouterRemote({self.mounts!r})"

    def capabilities_for(self, path: str) -> Capabilities:
        """What the remote that ``path`` lies on can do (the top level: what all can do)."""
        name, _, _ = path.partition("/")
        remote = self.mounts.get(name)
        return self.capabilities if remote is None or "/" not in path else capabilities_at(remote, path)

    def _route(self, path: str, what: str) -> tuple[str, Remote, str]:
        """(mount name, remote, path on it) for a path below a mount."""
        name, _, rest = path.partition("/")
        remote = self.mounts.get(name)
        if remote is None:
            raise RemoteNotFound(f"{what} {path!r}: no remote is mounted as {name!r}")
        return name, remote, rest

    def _inner(self, path: str, what: str) -> tuple[str, Remote, str]:
        """Like _route, for operations that create/delete/rename ``path`` itself."""
        if "/" not in path:
            raise RemoteUnsupported(f"{what} {path!r}: the top level holds only the configured remotes")
        return self._route(path, what)

    @staticmethod
    def _out(name: str, entry: RemoteEntry) -> RemoteEntry:
        return dataclasses.replace(entry, path=f"{name}/{entry.path}" if entry.path else name)

    def _top(self, name: str) -> RemoteEntry:
        return RemoteEntry(name, Kind.DIR, mtime_ns=self._since)

    def check_path(self, path: str) -> None:
        """The name rules of the remote ``path`` lies on (the top level is fixed: nothing to check)."""
        name, _, rest = path.partition("/")
        remote = self.mounts.get(name)
        if remote is not None and rest:
            check_path(remote, rest)

    async def check(self) -> None:
        for name, remote in self.mounts.items():
            try:
                await remote.check()
            except UserError as exc:
                raise UserError(f"remote '{name}': {exc}") from None

    async def stat(self, path: str) -> RemoteEntry:
        if not path:
            return RemoteEntry("", Kind.DIR, mtime_ns=self._since)
        name, remote, rest = self._route(path, "stat")
        if not rest:
            return self._top(name)
        return self._out(name, await remote.stat(rest))

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        if path:
            name, remote, rest = self._route(path, "list")
            async for entry in remote.list(rest, recursive=recursive):
                yield self._out(name, entry)
            return
        for name, remote in self.mounts.items():
            yield self._top(name)
            if recursive:
                async for entry in remote.list("", recursive=True):
                    yield self._out(name, entry)

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        _, remote, rest = self._inner(path, "read")
        return await remote.read(rest, offset, length, rev=rev)

    async def read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                        rev: str | None = None) -> None:
        _, remote, rest = self._inner(path, "read")
        await read_into(remote, rest, offset, length, sink, rev=rev)

    async def write(
        self,
        path: str,
        source: UploadSource,
        *,
        expect: Expect | str = Expect.ANY,
        attrs: FileAttrs = FileAttrs(),
    ) -> RemoteEntry:
        name, remote, rest = self._inner(path, "write")
        return self._out(name, await remote.write(rest, source, expect=expect, attrs=attrs))

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        if path in self.mounts or not path:
            return await self.stat(path)  # exists: mkdir is idempotent
        name, remote, rest = self._inner(path, "mkdir")
        return self._out(name, await remote.mkdir(rest, attrs))

    async def set_attrs(self, path: str, attrs: FileAttrs, *, expect: str | None = None) -> RemoteEntry:
        """The ``set_attrs`` of the remote ``path`` lies on (``RemoteUnsupported`` where it has
        none, and for the fixed top level)."""
        name, remote, rest = self._inner(path, "set_attrs")
        return self._out(name, await forward_set_attrs(remote, rest, attrs, expect=expect))

    async def rmdir(self, path: str) -> None:
        _, remote, rest = self._inner(path, "rmdir")
        await remote.rmdir(rest)

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        _, remote, rest = self._inner(path, "delete")
        await remote.delete(rest, expect=expect)

    def _pair(self, src: str, dst: str, what: str) -> tuple[str, Remote, str, str]:
        sname, remote, srest = self._inner(src, what)
        dname, _, drest = self._inner(dst, what)
        if sname != dname:
            exc = RemoteUnsupported(f"{what} {src!r} -> {dst!r}: across two remotes")
            exc.errno = errno.EXDEV
            raise exc
        return sname, remote, srest, drest

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        name, remote, s, d = self._pair(src, dst, "rename")
        return self._out(name, await remote.rename(s, d, expect=expect))

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        name, remote, s, d = self._pair(src, dst, "copy")
        return self._out(name, await remote.copy(s, d, rev=rev, expect=expect))

    async def link(self, src: str, dst: str, *, rev: str | None, expect: Expect | str) -> RemoteEntry:
        """The link of the remote both paths lie on.  ``RemoteUnsupported`` (the caller places the
        name otherwise) where that remote has no hard links, for two remotes (errno EXDEV, as
        ``rename``), and for the fixed top level (EOPNOTSUPP)."""
        name, remote, s, d = self._pair(src, dst, "link")
        return self._out(name, await link_in(remote, s, d, rev=rev, expect=expect))

    def same_version(self, a: str, b: str, *, path: str | None = None) -> bool:
        """Asked of the remote ``path`` lies on; without a path (or at the top level), true if any
        remote says so (file://'s rule needs its own revision form: no other remote's matches)."""
        if a == b:
            return True
        name, _, rest = (path or "").partition("/")
        remote = self.mounts.get(name)
        if remote is not None and rest:
            return same_version_in(remote, a, b, path=rest)
        return any(same_version_in(r, a, b) for r in self.mounts.values())

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        name, remote, rest = self._inner(path, "symlink")
        return self._out(name, await remote.symlink(rest, target))

    async def readlink(self, path: str) -> str:
        _, remote, rest = self._inner(path, "readlink")
        return await remote.readlink(rest)

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        total = 0
        for name, remote in self.mounts.items():
            mine = [p.partition("/")[2] for p in paths if p.partition("/")[0] == name and "/" in p]
            total += await remote.abort_incomplete_uploads(mine)
        return total

    # -- the change feed (``base.ChangeFeedRemote``; used when ``capabilities.change_feed``) --

    async def change_cursor(self) -> str:
        cursors = {}
        for name, remote in self.mounts.items():
            cursors[name] = await remote.change_cursor()  # type: ignore[attr-defined]
        return json.dumps(cursors, sort_keys=True)

    async def changes(self, cursor: str) -> tuple[list[Change], str]:
        try:
            cursors = json.loads(cursor)
        except ValueError:
            cursors = None
        if not isinstance(cursors, dict) or set(cursors) != set(self.mounts):
            raise CursorExpired("the remotes of this mount changed since the last poll")
        removals: list[Change] = []
        present: list[Change] = []
        for name, remote in self.mounts.items():
            items, cursors[name] = await remote.changes(cursors[name])  # type: ignore[attr-defined]
            for item in items:
                (removals if item.entry is None else present).append(self._change_out(name, item))
        return removals + present, json.dumps(cursors, sort_keys=True)

    def _change_out(self, name: str, item: Change) -> Change:
        entry = item.entry
        if item.path is not None:
            return Change(self._out(name, entry) if entry is not None else None, path=f"{name}/{item.path}")
        if item.parent_id is None and entry is not None:  # directly below the remote's folder
            return Change(entry, path=f"{name}/{entry.name}", id=item.id)
        return Change(entry, id=item.id, parent_id=item.parent_id)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            for remote in self.mounts.values():
                await remote.aclose()
