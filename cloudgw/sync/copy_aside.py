"""Keeping the other version of a conflicting file: ``copy_aside``.

Where the remote copies server-side (``Capabilities.server_side_copy``) that is one
call, with ``Expect.ABSENT``: a conflict name another gateway took meanwhile (see the
uploader's ``_free_conflict_name``) is a ``PreconditionFailed``, never overwritten.  Elsewhere the other version is downloaded, pinned to the revision that was
found (``read_exact``: a version that changes meanwhile is no verdict, the upload
retries), into an unlinked spool file next to the cache, and uploaded under the
conflict name with ``Expect.ABSENT``; memory stays at one chunk whatever the size.

Crash behaviour: the spool file is anonymous (``O_TMPFILE``-like: unlinked at once),
so a crash leaves nothing behind; the conflict copy is either complete on the
remote or absent, and the upload that found the conflict is redone.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import trio

from cloudgw.errors import TransientRemoteError
from cloudgw.remotes.base import Expect, Remote, RemoteEntry, capabilities_at
from cloudgw.sync.compare import COMPARE_CHUNK, read_exact


class _SpoolSource:
    """An UploadSource over a private spool file (nobody else writes it)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd, self.size = fd, size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, max(0, min(length, self.size - offset)), offset)

    def check(self) -> None:
        return None


async def copy_aside(remote: Remote, src: str, dst: str, theirs: RemoteEntry, *, spool_dir: Path | None = None) -> None:
    """Save revision ``theirs`` of ``src`` at ``dst`` (a name nothing holds)."""
    if capabilities_at(remote, src).server_side_copy:
        await remote.copy(src, dst, expect=Expect.ABSENT)
        return
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        fd = spool.fileno()
        for offset in range(0, theirs.size, COMPARE_CHUNK):
            data = await read_exact(remote, src, theirs, offset, COMPARE_CHUNK)
            if data is None:
                raise TransientRemoteError(f"{src}: changed again while its conflict copy was made")
            await trio.to_thread.run_sync(os.pwrite, fd, data, offset)
        await remote.write(dst, _SpoolSource(fd, theirs.size), expect=Expect.ABSENT, attrs=theirs.attrs)
