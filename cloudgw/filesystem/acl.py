"""POSIX ACLs (``system.posix_acl_access``/``_default``): the parts a filesystem must do itself.

With ``FUSE_POSIX_ACL`` the kernel checks permissions against the ACLs it reads through
getxattr, validates what setfacl sends and refuses default ACLs on non-directories; what
ext4 does in its own ``set_acl``/``init_acl`` is left to the daemon, and done here:

* an access ACL set: the mode's owner/group/other bits follow it (group bits from the
  MASK entry when there is one); an ACL the mode alone can say is not kept (``setfacl -b``
  and ``chmod`` then agree, as on ext4);
* chmod: the stored access ACL's owner, mask (or group) and other entries follow the mode;
* a new entry in a directory with a default ACL inherits it, masked by the mode the
  creator asked for (POSIX ``posix_acl_create``); a new directory also keeps it as its own
  default.  (The kernel has already applied the umask to that mode: pyfuse3 does not ask
  for ``FUSE_DONT_MASK``, so unlike ext4 the umask also applies under a default ACL.)

The value format is the kernel's ``posix_acl_xattr``: a little-endian u32 version (2),
then 8-byte entries (u16 tag, u16 perm, u32 id).
"""

from __future__ import annotations

import struct

ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"
NAMES = (ACCESS, DEFAULT)

_VERSION = 2
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

Entry = tuple[int, int, int]  # (tag, perm, id)


class BadAcl(ValueError):
    """Not a posix_acl_xattr value (the kernel validates what setfacl sends: a bug or a raw setxattr)."""


def parse(value: bytes) -> list[Entry]:
    if len(value) < _HEADER.size or (len(value) - _HEADER.size) % _ENTRY.size:
        raise BadAcl("wrong length")
    if _HEADER.unpack_from(value)[0] != _VERSION:
        raise BadAcl("unknown version")
    return [_ENTRY.unpack_from(value, off) for off in range(_HEADER.size, len(value), _ENTRY.size)]


def encode(entries: list[Entry]) -> bytes:
    return _HEADER.pack(_VERSION) + b"".join(_ENTRY.pack(*e) for e in entries)


def _perm(entries: list[Entry], tag: int) -> int | None:
    return next((perm for t, perm, _ in entries if t == tag), None)


def is_minimal(entries: list[Entry]) -> bool:
    """Says no more than mode bits (owner, group, other only)."""
    return all(tag in (USER_OBJ, GROUP_OBJ, OTHER) for tag, _, _ in entries)


def mode_with(mode: int, entries: list[Entry]) -> int:
    """``mode`` (permission bits) with the rwx bits the access ACL ``entries`` imply."""
    owner = _perm(entries, USER_OBJ) or 0
    group = _perm(entries, MASK)
    group = _perm(entries, GROUP_OBJ) if group is None else group
    other = _perm(entries, OTHER) or 0
    return (mode & ~0o777) | (owner & 7) << 6 | ((group or 0) & 7) << 3 | (other & 7)


def chmod(entries: list[Entry], mode: int) -> list[Entry]:
    """The access ACL after ``chmod(mode)`` (``posix_acl_chmod``): the mask stands for the group bits."""
    has_mask = any(tag == MASK for tag, _, _ in entries)
    out = []
    for tag, perm, id_ in entries:
        if tag == USER_OBJ:
            perm = mode >> 6 & 7
        elif tag == MASK or (tag == GROUP_OBJ and not has_mask):
            perm = mode >> 3 & 7
        elif tag == OTHER:
            perm = mode & 7
        out.append((tag, perm, id_))
    return out


def inherited(default: list[Entry], mode: int) -> tuple[list[Entry], int]:
    """A new entry's access ACL from its directory's default ACL and the creator's ``mode``
    (``posix_acl_create``): the ACL's owner, mask (or group) and other entries are masked by
    ``mode``, and the mode's bits by them.  Returns (ACL, mode)."""
    has_mask = any(tag == MASK for tag, _, _ in default)
    out = []
    owner = group = other = 0
    for tag, perm, id_ in default:
        if tag == USER_OBJ:
            perm &= mode >> 6 & 7
            owner = perm
        elif tag == MASK or (tag == GROUP_OBJ and not has_mask):
            perm &= mode >> 3 & 7
            group = perm
        elif tag == OTHER:
            perm &= mode & 7
            other = perm
        out.append((tag, perm, id_))
    return out, (mode & ~0o777) | owner << 6 | group << 3 | other
