"""Startup recovery of local state after a crash (run before mounting).

* Inodes unlinked while open (parent NULL) had no remaining users once the old
  process died: their rows and cache files go (their remote objects were
  already tombstoned when they were unlinked).
* A dirty file's size is taken from its cache file: a program may have written
  more before ``kill -9`` than the last persisted size says, and the cache file
  holds exactly what was written.
"""

from __future__ import annotations

import logging
import os

from cloudgw.cache.files import CacheFiles
from cloudgw.metadata.model import ROOT_INO
from cloudgw.metadata.store import MetadataStore

log = logging.getLogger(__name__)


def recover(store: MetadataStore, cache: CacheFiles) -> None:
    orphans = store.orphans()
    for ino in orphans:
        inode = store.get(ino)
        if inode is not None and ino != ROOT_INO:
            cache.remove(ino)
            store.delete(inode)
    for ino in store.inos_needing_sync():
        inode = store.get(ino)
        if inode is None or not inode.state.has_unsynced_data:
            continue
        entry = cache.get(ino)
        if entry is None:
            continue
        size = os.stat(entry.path).st_size
        if size != inode.size and not entry.missing(0, entry.fetch_limit):
            log.info("recovered size of %s: %d -> %d bytes", store.path_of(inode), inode.size, size)
            store.update(inode, size=size)
    if orphans:
        log.info("removed %d files unlinked before the last shutdown", len(orphans))
