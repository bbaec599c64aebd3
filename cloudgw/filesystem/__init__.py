"""POSIX semantics over the metadata store, the cache and the sync engine; no pyfuse3."""

from __future__ import annotations

from typing import Callable

from cloudgw.cache.files import CacheFiles
from cloudgw.filesystem.core import Namespace
from cloudgw.filesystem.data import DataOps
from cloudgw.filesystem.ports import Event, FsError, Orphaned, SyncPort
from cloudgw.metadata.store import MetadataStore

__all__ = ["FileSystem", "FsError"]


class FileSystem:
    """The whole filesystem: ``ns`` for names and attributes, ``data`` for file I/O."""

    def __init__(self, store: MetadataStore, cache: CacheFiles, sync: SyncPort, *, read_only: bool = False,
                 fixed_root: bool = False, acls: bool = False, make_room: Callable[[int], int] | None = None) -> None:
        self.ns = Namespace(store, cache, sync, read_only=read_only, fixed_root=fixed_root, acls=acls)
        self.data = DataOps(self.ns, make_room)

    def handle_event(self, event: Event) -> Event | None:
        """Apply a sync-engine event; returns what the kernel must be told, if anything."""
        if isinstance(event, Orphaned):
            self.ns.reap_if_unused(event.ino)
            return None
        return event
