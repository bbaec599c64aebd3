"""Unnamed empty files made ahead of time, so a create links a ready inode instead of allocating one.

Why: every file created on the mount needs its own cache data file, and making one
(``open(O_CREAT)``) is the slowest step of a create -- 90 to 500 us on the ext4 of a
small NAS or VM, where the kernel may have to read inode bitmaps and tables from
disk.  A thread keeps up to ``HIGH`` unnamed files open (``O_TMPFILE`` in the data
directory) and a create gives one its name (``take``: ``linkat``, ~20 us).  When
none is ready, or the name is taken, or the cache's filesystem has no
``O_TMPFILE``, the caller makes its file itself, as before.

Concurrency: ``take`` runs on the caller's thread (the trio thread); the filler
thread only opens unnamed files (which locks no directory) and appends their
descriptors under ``_lock``.  A descriptor is handed out once: it leaves the list
under the lock before it is linked.  The filler starts with ``start`` (the daemon
calls it once mounted; fsck never does) or the first ``take``, and is woken when
the pool falls below ``LOW``.

Crash behaviour: nothing to clean up.  An unnamed file lives only while its
descriptor is open, so the kernel frees the spares of a process that dies (and
ext4/xfs free them at the next mount after a power loss); a linked one is an
ordinary, empty data file (``linkat`` names it atomically).
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

HIGH = 128  # spares kept ready (descriptors): a burst of creates this long never waits for an inode
LOW = 96  # the filler is woken when fewer remain


class SpareFiles:
    def __init__(self, directory: Path, *, high: int = HIGH, low: int = LOW) -> None:
        self.directory = directory
        self.high, self.low = high, low
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._stopped = False
        self._unsupported = False  # no O_TMPFILE here (some FUSE/network filesystems): creates make their own
        self._thread: threading.Thread | None = None
        self._ready: list[int] = []  # descriptors of unnamed empty files in ``directory``
        self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)

    def take(self, name: str) -> bool:
        """Name a ready empty file ``name`` in the directory; False if none was ready or the name exists."""
        with self._lock:
            fd = self._ready.pop() if self._ready else -1
            remaining = len(self._ready)
        self.start()
        if remaining < self.low:
            self._wanted.set()
        if fd < 0:
            return False
        try:
            # through /proc (linkat with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH); dst_dir_fd
            # makes Python call linkat with AT_SYMLINK_FOLLOW (link(2) would link the /proc symlink)
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=self._dir_fd, follow_symlinks=True)
        except FileExistsError:  # the caller empties the existing file instead; the spare goes back
            with self._lock:
                self._ready.append(fd)
            return False
        except OSError:
            os.close(fd)
            return False
        os.close(fd)
        return True

    def ready(self) -> int:
        with self._lock:
            return len(self._ready)

    def start(self) -> None:
        """Begin filling the pool (idempotent)."""
        if self._thread is None and not self._unsupported:
            self._thread = threading.Thread(target=self._fill, name="cloudgw-spares", daemon=True)
            self._thread.start()
            self._wanted.set()

    def _fill(self) -> None:
        while not self._stopped:
            self._wanted.wait()
            self._wanted.clear()
            while not self._stopped and self.ready() < self.high:
                try:
                    fd = os.open(self.directory, os.O_TMPFILE | os.O_RDWR, 0o600)
                except OSError as exc:
                    if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                        self._unsupported = True
                        return
                    break  # disk full, out of inodes or descriptors: creates make their own files
                with self._lock:
                    self._ready.append(fd)

    def close(self) -> None:
        """Stop the filler and drop the spares (the kernel frees unnamed files at their close).  Idempotent."""
        if self._dir_fd < 0:
            return
        self._stopped = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            ready, self._ready = self._ready, []
        for fd in ready:
            os.close(fd)
        os.close(self._dir_fd)
        self._dir_fd = -1
