"""A remote that reports every call it forwards: count, duration, failure, bytes moved.

``InstrumentedRemote(inner, name, observer)`` implements the whole Remote
contract by delegating to ``inner`` unchanged -- same arguments, same results,
same exceptions -- and tells ``observer`` (``cloudgw.metrics.Metrics`` in the
daemon; anything with the ``Observer`` methods in tests) what happened.  It
adds nothing to what callers see: ``capabilities`` is the inner remote's, asked
each time, and the optional parts of the contract (``capabilities_for``,
``check_path``, ``set_attrs``, ``link``, ``same_version``, the change feed) exist on the wrapper exactly when ``inner``
has them, so ``isinstance(remote, ChangeFeedRemote)`` and ``getattr`` probes
answer as they would for ``inner``.  ``read_into`` is always there (a
non-streaming inner is read whole, as ``base.read_into`` does anyway).

What counts as a request: one call of the contract (``stat``, ``list``,
``read``, ``write``, ``delete``, ``rename``, ...), whatever number of HTTP
requests, pages or retries the remote makes inside it.  A ``list`` is one
request lasting until its last entry was handed out; a ``read_into`` is
counted as op ``read``.  A call that raises is an error, except the answers
that are part of normal work (``RemoteNotFound``: nothing there;
``RemoteExists``/``RemoteNotEmpty``; ``PreconditionFailed``: someone else
changed it, which the sync engine resolves with a conflict copy): those are
requests, not failures of the remote.  A cancelled call (a timeout, a stop) is
counted as a request, not as a failure.

Bytes: downloaded = bytes a read handed over (as they arrive, also of a read
that then fails); uploaded = the size of each write the remote acknowledged,
less the ranges it copied server-side (``DeltaSource.copied``): bytes stored
by successful writes that crossed the wire.  A failed or abandoned upload is
not counted (its retry is), and a large upload is counted when it completes.

Concurrency: ``observer.request`` and ``observer.moved`` are called in the
trio thread only.  ``DeltaSource.copied`` comes from the remote's worker
threads (several at once for parallel part copies): the copied bytes of one
write are summed under a lock and taken off when the write ends.  The wrapper
keeps no other state.
"""

from __future__ import annotations

import threading
import time
from typing import AsyncIterator, Callable, Collection, Protocol

import trio

from cloudgw.errors import PreconditionFailed, RemoteExists, RemoteNotEmpty, RemoteNotFound
from cloudgw.remotes.base import (Capabilities, DeltaSource, Expect, FileAttrs, Remote, RemoteEntry, UploadSource,
                                  read_into)

ANSWERS = (RemoteNotFound, RemoteExists, RemoteNotEmpty, PreconditionFailed)  # not failures (module docstring)


class Observer(Protocol):
    def request(self, remote: str, op: str, seconds: float, failed: bool) -> None:
        """One call of ``op`` ended after ``seconds``; ``failed``: it raised a real error."""

    def moved(self, remote: str, direction: str, nbytes: int) -> None:
        """``nbytes`` crossed the wire ``direction`` ("up" or "down"); negative: a correction."""


class _CountedSource:
    """The upload source as given; a ``DeltaSource`` one also reports copied ranges."""

    def __init__(self, source: UploadSource, copied: Callable[[int], None]) -> None:
        self._source, self._copied, self.size = source, copied, source.size

    def read(self, offset: int, length: int) -> bytes:
        return self._source.read(offset, length)

    def check(self) -> None:
        self._source.check()


class _CountedDeltaSource(_CountedSource):
    _source: DeltaSource

    @property
    def base_rev(self) -> str | None:
        return self._source.base_rev

    def unchanged(self, offset: int, length: int) -> bool:
        return self._source.unchanged(offset, length)

    def base_offset(self, offset: int) -> int:
        return self._source.base_offset(offset)

    def copied(self, offset: int, length: int) -> None:
        self._source.copied(offset, length)
        self._copied(length)


class InstrumentedRemote:
    """``inner``, observed (see the module docstring)."""

    def __init__(self, inner: Remote, name: str, observer: Observer) -> None:
        self.inner, self.name, self.observer = inner, name, observer
        # the optional parts of the contract: present exactly when ``inner`` has them
        if hasattr(inner, "capabilities_for"):
            self.capabilities_for = inner.capabilities_for  # type: ignore[attr-defined]
        if hasattr(inner, "check_path"):
            self.check_path = inner.check_path  # type: ignore[attr-defined]  # no network: nothing to observe
        if hasattr(inner, "set_attrs"):
            self.set_attrs = self._set_attrs
        if hasattr(inner, "link"):
            self.link = self._link
        if hasattr(inner, "same_version"):
            self.same_version = inner.same_version  # type: ignore[attr-defined]  # no network: nothing to observe
        if hasattr(inner, "changes") and hasattr(inner, "change_cursor"):
            self.changes = self._changes
            self.change_cursor = self._change_cursor

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def __repr__(self) -> str:
        return f"InstrumentedRemote({self.inner!r}, {self.name!r})"

    async def _call(self, op: str, fn: Callable, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        start = time.monotonic()
        failed = False
        try:
            return await fn(*args, **kwargs)
        except ANSWERS:
            raise
        except trio.Cancelled:
            raise
        except BaseException:
            failed = True
            raise
        finally:
            self.observer.request(self.name, op, time.monotonic() - start, failed)

    # -- the contract ------------------------------------------------------------------------

    async def check(self) -> None:
        await self._call("check", self.inner.check)

    async def stat(self, path: str) -> RemoteEntry:
        return await self._call("stat", self.inner.stat, path)

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        start, failed = time.monotonic(), False
        try:
            async for entry in self.inner.list(path, recursive=recursive):
                yield entry
        except (*ANSWERS, trio.Cancelled, GeneratorExit):
            raise
        except BaseException:
            failed = True
            raise
        finally:
            self.observer.request(self.name, "list", time.monotonic() - start, failed)

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        data = await self._call("read", self.inner.read, path, offset, length, rev=rev)
        self.observer.moved(self.name, "down", len(data))
        return data

    async def read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                        rev: str | None = None) -> None:
        def counted(data: bytes) -> None:
            self.observer.moved(self.name, "down", len(data))
            sink(data)

        await self._call("read", read_into, self.inner, path, offset, length, counted, rev=rev)

    async def write(self, path: str, source: UploadSource, *, expect: Expect | str = Expect.ANY,
                    attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        copied, lock = 0, threading.Lock()

        def on_copied(n: int) -> None:  # from the remote's worker threads
            nonlocal copied
            with lock:
                copied += n

        wrapped = (_CountedDeltaSource if isinstance(source, DeltaSource) else _CountedSource)(source, on_copied)
        result = await self._call("write", self.inner.write, path, wrapped, expect=expect, attrs=attrs)
        self.observer.moved(self.name, "up", max(0, source.size - copied))
        return result

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        return await self._call("mkdir", self.inner.mkdir, path, attrs)

    async def rmdir(self, path: str) -> None:
        await self._call("rmdir", self.inner.rmdir, path)

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        await self._call("delete", self.inner.delete, path, expect=expect)

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        return await self._call("rename", self.inner.rename, src, dst, expect=expect)

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        return await self._call("copy", self.inner.copy, src, dst, rev=rev, expect=expect)

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        return await self._call("symlink", self.inner.symlink, path, target)

    async def readlink(self, path: str) -> str:
        return await self._call("readlink", self.inner.readlink, path)

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        return await self._call("abort_uploads", self.inner.abort_incomplete_uploads, paths)

    async def _set_attrs(self, path: str, attrs: FileAttrs, *, expect: str | None = None) -> RemoteEntry:
        """``set_attrs`` (bound in __init__ only where ``inner`` has it)."""
        return await self._call("set_attrs", self.inner.set_attrs, path, attrs,  # type: ignore[attr-defined]
                                expect=expect)

    async def _link(self, src: str, dst: str, *, rev: str | None, expect: Expect | str) -> RemoteEntry:
        """``link`` (bound in __init__ only where ``inner`` has it)."""
        return await self._call("link", self.inner.link, src, dst, rev=rev, expect=expect)  # type: ignore[attr-defined]

    # change feeds (``base.ChangeFeedRemote``): bound in __init__ only where ``inner`` has one

    async def _change_cursor(self) -> str:
        return await self._call("change_cursor", self.inner.change_cursor)  # type: ignore[attr-defined]

    async def _changes(self, cursor: str) -> tuple[list, str]:
        return await self._call("changes", self.inner.changes, cursor)  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self.inner.aclose()
