"""Comparing a remote object with bytes we know (rare paths: conflicts, lost
replies, half-done moves).

Where the remote reports a content hash (``Capabilities.hash_kind``,
``RemoteEntry.hash``) the local bytes are hashed in a worker thread and nothing
is downloaded; otherwise the object is read back chunk by chunk.

A reply cut short by the network is no verdict: ``read_exact`` raises
``TransientRemoteError`` (the caller's reconcile is retried) instead of letting
a truncated read pass for different content -- which would make a spurious
conflict copy.  An object that changed or went away meanwhile reads as None.
"""

from __future__ import annotations

import hashlib

import trio

from cloudgw.errors import PreconditionFailed, RemoteNotFound, TransientRemoteError
from cloudgw.remotes.base import Remote, RemoteEntry, UploadSource, capabilities_at
from cloudgw.remotes.quickxor import QuickXorHash

HASHES = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256, "quickxor": QuickXorHash}

COMPARE_CHUNK = 4 << 20  # bytes per read when comparing whole objects


async def read_exact(remote: Remote, path: str, at: RemoteEntry, offset: int, length: int) -> bytes | None:
    """Bytes [offset, offset+length) of revision ``at`` of ``path`` (clipped to its size)."""
    want = max(0, min(length, at.size - offset))
    try:
        data = await remote.read(path, offset, want, rev=at.rev)
    except (PreconditionFailed, RemoteNotFound):
        return None
    if len(data) != want:
        raise TransientRemoteError(f"{path}: short read at {offset} while comparing contents")
    return data


async def holds_same_bytes(remote: Remote, path: str, theirs: RemoteEntry, source: UploadSource) -> bool:
    """Whether revision ``theirs`` of ``path`` holds exactly the bytes of ``source``."""
    if theirs.size != source.size:
        return False
    kind = capabilities_at(remote, path).hash_kind
    if theirs.hash and kind in HASHES:
        return await trio.to_thread.run_sync(_hash_of, source, kind) == theirs.hash.lower()
    for offset in range(0, source.size, COMPARE_CHUNK):
        remote_bytes = await read_exact(remote, path, theirs, offset, COMPARE_CHUNK)
        if remote_bytes is None or remote_bytes != source.read(offset, COMPARE_CHUNK):
            return False
    return True


def _hash_of(source: UploadSource, kind: str) -> str:
    digest = HASHES[kind]()
    for offset in range(0, source.size, COMPARE_CHUNK):
        digest.update(source.read(offset, COMPARE_CHUNK))
    return digest.hexdigest()
