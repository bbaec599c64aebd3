"""``name_to_handle_at`` / ``open_by_handle_at`` through ctypes (Python's ``os`` has neither).

These are the calls the kernel's NFS server makes on an exported filesystem:
a handle taken from a path, later turned back into an open file on the same
filesystem (here: a new mount of it).  Opening a handle needs CAP_DAC_READ_SEARCH.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path

MAX_HANDLE_SZ = 128
AT_FDCWD = -100


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_FileHandle),
                                    ctypes.POINTER(ctypes.c_int), ctypes.c_int]
_libc.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.POINTER(_FileHandle), ctypes.c_int]


@dataclass(frozen=True)
class Handle:
    type: int
    data: bytes

    @property
    def fuse_nodeid_generation(self) -> tuple[int, int]:
        """What FUSE puts in a handle: the node id (our inode number) and the generation."""
        words = [int.from_bytes(self.data[i:i + 4], "little") for i in range(0, len(self.data), 4)]
        return (words[0] << 32) | words[1], words[2]


def name_to_handle(path: Path) -> Handle:
    fh = _FileHandle(handle_bytes=MAX_HANDLE_SZ)
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), ctypes.byref(fh), ctypes.byref(mount_id), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))
    return Handle(fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes]))


def open_by_handle(mount_fd: int, handle: Handle, flags: int = os.O_RDONLY) -> int:
    fh = _FileHandle(handle_bytes=len(handle.data), handle_type=handle.type)
    ctypes.memmove(fh.f_handle, handle.data, len(handle.data))
    fd = _libc.open_by_handle_at(mount_fd, ctypes.byref(fh), flags)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd
