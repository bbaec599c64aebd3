"""Reading a remote object back to compare it with bytes we know (rare paths:
conflicts, lost replies, half-done moves).

A reply cut short by the network is no verdict: ``read_exact`` raises
``TransientRemoteError`` (the caller's reconcile is retried) instead of letting
a truncated read pass for different content -- which would make a spurious
conflict copy.  An object that changed or went away meanwhile reads as None.
"""

from __future__ import annotations

from cloudgw.errors import PreconditionFailed, RemoteNotFound, TransientRemoteError
from cloudgw.remotes.base import Remote, RemoteEntry

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
