"""rename and copy on the WebDAV remote: one MOVE or COPY.

A file or symlink moves with ``Overwrite: T`` pinned to the revision just seen
(tagged ``If``), so a version changed meanwhile is never moved over the target; the
object of the other kind at the target's name (``NAME`` vs ``NAME.cloudgw-symlink``)
is removed afterwards.  A directory moves in one MOVE with ``Overwrite: F``: an
empty directory at the target is removed first (as rename(2) does), a non-empty one
is ``RemoteNotEmpty`` and a file there ``ENOTDIR``; a directory tree is never replaced.
Targets wsgidav cannot take as a Destination (``webdav_io.movable``) are copied by
reading and writing (the read pinned to the source's revision), then the source is
deleted pinned the same way.  A crash between the two leaves both: a duplicate,
never a loss.

A COPY is conditional like a write (``webdav_io._expectation``): the target is checked
with a PROPFIND, then the COPY carries ``Overwrite: F`` for "absent" or a tagged ``If``
on the target's revision next to the source's pin, under the target's path lock.  Where
the server skips a tagged condition (wsgidav, on a target deleted after our PROPFIND) the
copy can recreate it: the same check-then-write window as a write's.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import trio

from cloudgw.errors import PreconditionFailed, RemoteExists, RemoteNotFound, RemoteUnsupported
from cloudgw.remotes import webdav_io
from cloudgw.remotes.base import Expect, FileAttrs, RemoteEntry
from cloudgw.remotes.symlinks import link_object
from cloudgw.remotes.util import remote_error
from cloudgw.remotes.webdav_io import _expectation
from cloudgw.remotes.webdav_xml import Prop, rev_of

if TYPE_CHECKING:
    from cloudgw.remotes.webdav import WebDavRemote


async def transfer(remote: WebDavRemote, method: str, src: str, dst: str, rev: str | None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
    """MOVE or COPY ``src`` (at ``rev``, if given) to ``dst``; a COPY's target as ``expect`` says."""
    what = f"{'rename' if method == 'MOVE' else 'copy'} {remote.http.display(src)} -> {remote.http.display(dst)}"
    remote.leaf(src, what)
    remote.leaf(dst, what)
    found = await remote.object(src)
    if found is None:
        raise RemoteNotFound(f"{what}: no such file")
    source, prop = found
    if prop.collection and method == "COPY":
        raise RemoteUnsupported(f"{what}: directories are not copied here")
    if rev is not None and (prop.collection or prop.etag != rev_of(rev)):
        raise PreconditionFailed(f"{what}: expected revision {rev}, found {prop.etag}")
    symlink = source != src
    target = link_object(dst) if symlink else dst
    if not webdav_io.movable(target):
        if prop.collection:
            raise RemoteUnsupported(f"{what}: this name cannot be a MOVE target (';' or '?')")
        return await _through_client(remote, method, source, target, prop, expect)
    async with remote.locked(dst):
        if prop.collection:  # never replace a directory tree: only an empty directory
            there = await remote.prop(dst)
            if there is not None and not there.collection:
                raise remote_error(RemoteExists, errno.ENOTDIR, f"{what}: a file has the target's name")
            if there is not None:
                await remote.rmdir(dst)  # RemoteNotEmpty unless empty, as rename(2)
            await remote.move(source, target, what, overwrite=False)
        else:
            overwrite, cond = True, [(source, prop.etag)] if prop.etag else []
            other = dst if symlink else link_object(dst)  # the same name as the other kind
            if method == "COPY":  # never a directory replaced, nor a file other than ``expect`` allows
                overwrite, there = await _expectation(remote, target, expect, what)
                cond += there
                if expect is Expect.ABSENT:
                    await _expectation(remote, other, expect, what)  # (removed below if there)
            await remote.move(source, target, what, overwrite=overwrite, conditions=cond, method=method)
            there = await remote.prop(other)
            if there is not None and not there.collection:
                await remote.http.call(f"DELETE {remote.http.display(other)}", "DELETE", remote.http.url(other),
                                       ok=(200, 204, 404))
        new = await remote.prop(target)
    if new is None:
        raise RemoteNotFound(f"{what}: the target vanished")
    if prop.collection:
        remote.known_dirs.discard(src)
    return remote.entry(target, new)


async def _through_client(remote: WebDavRemote, method: str, source: str, target: str, prop: Prop,
                          expect: Expect | str) -> RemoteEntry:
    """Copy (and for a move delete) by reading and writing: for targets that cannot be
    a Destination (``webdav_io.movable``).  The read is pinned to the source's revision."""

    class _Source:
        size = prop.size

        def read(self, offset: int, length: int) -> bytes:
            return trio.from_thread.run(lambda: remote.read(source, offset, length, rev=prop.etag))

        def check(self) -> None:
            return None

    async with remote.locked(target):
        new = await webdav_io.upload(remote, target, _Source(), expect, FileAttrs())
    if method == "MOVE":
        cond = [(source, prop.etag)] if prop.etag else []
        await remote.http.call(f"DELETE {remote.http.display(source)}", "DELETE", remote.http.url(source),
                               ok=(200, 204, 404), headers=remote.http.if_header(cond))
    return remote.entry(target, new)
