"""What the filesystem needs from the layers below it, as narrow protocols.

The filesystem drives the sync engine through these calls; the sync engine never
calls back into the filesystem (it reports kernel-cache invalidations on a
channel the FUSE layer owns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cloudgw.cache.files import CacheEntry
from cloudgw.metadata.model import Inode
from cloudgw.remotes.base import Kind


MAX_NAME = 255  # bytes in one path component, as on local filesystems


def name_too_long(name: str) -> bool:
    """Longer than a local name may be (also for names the remote hands us)."""
    return len(name.encode("utf-8", "surrogateescape")) > MAX_NAME


class FsError(Exception):
    """A POSIX error for the kernel: ``errno`` is what the caller sees."""

    def __init__(self, errno: int, message: str = "") -> None:
        super().__init__(errno, message)
        self.errno = errno


@dataclass(frozen=True)
class Invalidate:
    """Drop the kernel's cached attributes and data of ``ino``."""

    ino: int


@dataclass(frozen=True)
class InvalidateEntry:
    """Drop the kernel's cached name ``name`` in directory ``parent``."""

    parent: int
    name: str


@dataclass(frozen=True)
class Orphaned:
    """``ino`` was removed from the tree by a remote change; free it once unreferenced."""

    ino: int


Event = Invalidate | InvalidateEntry | Orphaned


class SyncPort(Protocol):
    def content_changed(self, inode: Inode) -> None:
        """The file's local content or placement changed; it will need an upload."""

    def closed(self, inode: Inode) -> None:
        """The last writer closed: start the write-back delay."""

    def released(self, inode: Inode) -> None:
        """The last handle of any kind closed: drop what was kept per reader (read-ahead)."""

    def placement_changed(self, inodes: list[Inode]) -> None:
        """These inodes moved locally (rename); the remote must follow."""

    def removed(self, inode: Inode) -> None:
        """The inode left the tree; tombstone its remote object and stop uploading it."""

    def name_removed(self, remote_path: str, rev: str | None, kind: Kind) -> None:
        """One name of an inode that keeps others (a hard link) left the tree: tombstone its
        remote object at ``rev``; the inode's sync goes on."""

    def check_name(self, directory: Inode, name: str, moving: Inode | None = None) -> None:
        """Raise ``RemoteError`` (EINVAL, ENAMETOOLONG, EEXIST) if the remote cannot hold ``name``
        in ``directory`` (``moving``: the inode a rename brings there), so that a create or
        rename fails now instead of an upload failing forever.  No network."""

    async def ensure_listed(self, directory: Inode) -> None:
        """Load the directory's children from the remote on first access."""

    async def prepare_dir_move(self, directory: Inode) -> None:
        """Called before ``directory`` is renamed: what the remote needs known first
        (its whole subtree, where the remote moves entry by entry)."""

    async def fetch(self, inode: Inode, entry: CacheEntry, offset: int, length: int) -> None:
        """Make the blocks covering [offset, offset+length) present in the cache."""
