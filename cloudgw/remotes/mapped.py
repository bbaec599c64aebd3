"""A remote whose names are mapped by a ``NameCodec``: local names outside, stored names inside.

``MappedNamesRemote(inner, codec)`` implements the whole Remote contract by
delegating to ``inner``: every path argument is encoded component by component
(``a*b/c.`` -> ``a＊b/c．`` under OneDrive rules) and every path in a returned
``RemoteEntry`` or ``Change`` is decoded, so the layers above see only local
names and the cloud only names it can hold.  ``check_path`` refuses, before
anything is queued, what cannot be stored even mapped (``RemoteNameInvalid``,
``RemoteNameTooLong``).  Symlink targets are content, not names: passed as they are.

Concurrency, crash behaviour and errors are those of ``inner`` (error messages
name the stored paths).  ``registry.open_remote`` puts this wrapper around a
remote whose type declares rules that map names.
"""

from __future__ import annotations

import dataclasses
from typing import AsyncIterator, Callable, Collection

from cloudgw.remotes.base import (Capabilities, Expect, FileAttrs, Remote, RemoteEntry, UploadSource, check_path,
                                  forward_set_attrs, read_into)
from cloudgw.remotes.base import link as link_in, same_version as same_version_in
from cloudgw.remotes.names import NameCodec, NameRules


class MappedNamesRemote:
    """``inner`` seen through ``codec``; see the module docstring."""

    def __init__(self, inner: Remote, codec: NameCodec) -> None:
        self.inner, self.codec = inner, codec

    @property
    def capabilities(self) -> Capabilities:
        """The inner remote's, asked each time (it may learn more in ``check()``)."""
        caps = self.inner.capabilities
        return dataclasses.replace(caps, case_sensitive=caps.case_sensitive and not self.codec.rules.case_insensitive,
                                   change_feed=caps.change_feed and hasattr(self.inner, "changes"))

    def __repr__(self) -> str:
        return f"MappedNamesRemote({self.inner!r}, {self.codec.rules.label})"

    def _in(self, path: str) -> str:
        return self.codec.encode_path(path)

    def _out(self, entry: RemoteEntry) -> RemoteEntry:
        return dataclasses.replace(entry, path=self.codec.decode_path(entry.path))

    def check_path(self, path: str) -> None:
        self.codec.check(path)
        check_path(self.inner, self._in(path))

    async def check(self) -> None:
        await self.inner.check()

    async def stat(self, path: str) -> RemoteEntry:
        return self._out(await self.inner.stat(self._in(path)))

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        async for entry in self.inner.list(self._in(path), recursive=recursive):
            yield self._out(entry)

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        return await self.inner.read(self._in(path), offset, length, rev=rev)

    async def read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                        rev: str | None = None) -> None:
        await read_into(self.inner, self._in(path), offset, length, sink, rev=rev)

    async def write(self, path: str, source: UploadSource, *, expect: Expect | str = Expect.ANY,
                    attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        return self._out(await self.inner.write(self._in(path), source, expect=expect, attrs=attrs))

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        return self._out(await self.inner.mkdir(self._in(path), attrs))

    async def set_attrs(self, path: str, attrs: FileAttrs, *, expect: str | None = None) -> RemoteEntry:
        return self._out(await forward_set_attrs(self.inner, self._in(path), attrs, expect=expect))

    async def rmdir(self, path: str) -> None:
        await self.inner.rmdir(self._in(path))

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        await self.inner.delete(self._in(path), expect=expect)

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        return self._out(await self.inner.rename(self._in(src), self._in(dst), expect=expect))

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        return self._out(await self.inner.copy(self._in(src), self._in(dst), rev=rev, expect=expect))

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        return self._out(await self.inner.symlink(self._in(path), target))

    async def link(self, src: str, dst: str, *, rev: str | None, expect: Expect | str) -> RemoteEntry:
        """``inner``'s, of the stored names (``RemoteUnsupported`` where it has no hard links)."""
        return self._out(await link_in(self.inner, self._in(src), self._in(dst), rev=rev, expect=expect))

    def same_version(self, a: str, b: str, *, path: str | None = None) -> bool:
        """``inner``'s: revisions pass through this wrapper unchanged."""
        return same_version_in(self.inner, a, b, path=None if path is None else self._in(path))

    async def readlink(self, path: str) -> str:
        return await self.inner.readlink(self._in(path))

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        return await self.inner.abort_incomplete_uploads([self._in(p) for p in paths])

    # change feeds (``base.ChangeFeedRemote``), where ``inner`` has one; ``capabilities.change_feed`` says so

    async def change_cursor(self) -> str:
        return await self.inner.change_cursor()  # type: ignore[attr-defined]

    async def changes(self, cursor: str) -> tuple[list, str]:
        found, cursor = await self.inner.changes(cursor)  # type: ignore[attr-defined]
        decode = self.codec.decode_path
        return [dataclasses.replace(c, path=None if c.path is None else decode(c.path),
                                    entry=None if c.entry is None else self._out(c.entry)) for c in found], cursor

    async def aclose(self) -> None:
        await self.inner.aclose()


def with_name_rules(remote: Remote, rules: NameRules | None) -> Remote:
    """``remote`` behind a ``MappedNamesRemote`` when ``rules`` map names; as it is otherwise
    (its own code enforces whatever limits it has, e.g. S3's 1024-byte keys)."""
    if rules is None or not rules.maps_names:
        return remote
    return MappedNamesRemote(remote, NameCodec(rules))
