"""Special files (FIFOs, sockets, character and block devices) on any remote.

At the Remote contract a special file is a **symlink whose target is a marker**:

    "\\0cloudgw-special fifo 644 UID GID MAJOR MINOR"

(type, permission bits in octal, owner, group, device numbers).  Every remote already
holds symlinks -- natively, or emulated as a small ``NAME.cloudgw-symlink`` object
(``cloudgw.remotes.symlinks``) -- so a special file reaches every cloud through the
same seam, with no data object other tools could mistake for file content.  A marker
starts with a NUL byte, which no real symlink target can contain (POSIX), so a user's
symlink is never read as a special file; a target that starts with the prefix but does
not parse stays a plain symlink (nothing is lost).

file:// holds special files natively: ``LocalRemote.symlink`` of a marker makes the real
FIFO/socket/device (``os.mknod``) and its listings show a real one as a symlink with its
marker, so the layers above see one shape everywhere.  Through crypt with encrypted names
the marker is an encrypted target like any other (type and device numbers stay private).

Attributes: the marker carries mode and owner, so they survive on every remote; a chmod
or chown of a special file rewrites its marker (``Uploader._sync_special``).  A marker
changed elsewhere (another gateway's chmod) is picked up when the entry is next adopted
(a fresh cache, or after it left the tree), not by polls: its content is not data.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass

from cloudgw.remotes.base import Kind

PREFIX = "\0cloudgw-special "

_TYPE_NAMES = {Kind.FIFO: "fifo", Kind.SOCKET: "socket", Kind.CHAR_DEVICE: "chr", Kind.BLOCK_DEVICE: "blk"}
_KIND_OF_NAME = {v: k for k, v in _TYPE_NAMES.items()}
_KIND_OF_TYPE_BITS = {stat_mod.S_IFIFO: Kind.FIFO, stat_mod.S_IFSOCK: Kind.SOCKET,
                      stat_mod.S_IFCHR: Kind.CHAR_DEVICE, stat_mod.S_IFBLK: Kind.BLOCK_DEVICE}
TYPE_BITS = {k: bits for bits, k in _KIND_OF_TYPE_BITS.items()}


@dataclass(frozen=True)
class Special:
    """One special file as its marker describes it."""

    kind: Kind
    mode: int  # permission bits
    uid: int
    gid: int
    rdev: int  # device number (0 for FIFOs and sockets)

    def marker(self) -> str:
        return (f"{PREFIX}{_TYPE_NAMES[self.kind]} {self.mode & 0o7777:o} {self.uid} {self.gid} "
                f"{os.major(self.rdev)} {os.minor(self.rdev)}")

    @property
    def st_mode(self) -> int:
        return TYPE_BITS[self.kind] | (self.mode & 0o7777)


def kind_of_mode(st_mode: int) -> Kind | None:
    """The special kind of a full ``st_mode``, or None for anything else."""
    return _KIND_OF_TYPE_BITS.get(stat_mod.S_IFMT(st_mode))


def is_marker(target: str | None) -> bool:
    return target is not None and target.startswith(PREFIX)


def parse(target: str | None) -> Special | None:
    """The special file a symlink target stands for, or None (a plain symlink)."""
    if not is_marker(target):
        return None
    assert target is not None
    fields = target[len(PREFIX):].split(" ")
    if len(fields) != 6 or fields[0] not in _KIND_OF_NAME:
        return None
    try:
        mode = int(fields[1], 8)
        uid, gid, major, minor = (int(f) for f in fields[2:])
        rdev = os.makedev(major, minor)
    except (ValueError, OverflowError):
        return None
    if not 0 <= mode <= 0o7777 or uid < 0 or gid < 0:
        return None
    return Special(_KIND_OF_NAME[fields[0]], mode, uid, gid, rdev)


def of_stat(st: os.stat_result) -> Special | None:
    """A special file found on a local disk (file://), or None for anything else."""
    kind = kind_of_mode(st.st_mode)
    if kind is None:
        return None
    rdev = st.st_rdev if kind in (Kind.CHAR_DEVICE, Kind.BLOCK_DEVICE) else 0
    return Special(kind, stat_mod.S_IMODE(st.st_mode), st.st_uid, st.st_gid, rdev)
