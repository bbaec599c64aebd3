"""Which cached files the evictor may drop, and what dropping does to their state.

The evictor (``cache.evictor``) knows sizes and ages, not file states or open
handles; these rules do, and the composition root hands them to it.  Dirty data
(DIRTY, UPLOADING, CONFLICT) is never evictable; neither is a file someone has
open.  Eviction is the CLEAN -> REMOTE_ONLY transition of the state table.

Crash behaviour: the cache data is deleted before ``evicted`` commits the state; a
crash in between leaves a CLEAN file with no cached blocks, which simply fetches
again (the block map, not the state, says what is present).
"""

from __future__ import annotations

from typing import Mapping

from cloudgw.metadata.model import FileState
from cloudgw.metadata.store import MetadataStore


def evictable(store: MetadataStore, open_count: Mapping[int, int], ino: int) -> bool:
    inode = store.get(ino)
    if inode is None:
        return True
    if open_count.get(ino):
        return False
    # a clean file waiting only for a remote move is still whole on the remote: evictable
    return inode.state in (FileState.CLEAN, FileState.REMOTE_ONLY) and inode.remote_path is not None


def evicted(store: MetadataStore, ino: int) -> None:
    inode = store.get(ino)
    if inode is not None and inode.state is FileState.CLEAN:
        store.update(inode, state=FileState.REMOTE_ONLY)


def is_clean(store: MetadataStore, ino: int) -> bool:
    """The cached data equals the remote's revision (what the checksummer may sum)."""
    inode = store.get(ino)
    return inode is not None and inode.state is FileState.CLEAN
