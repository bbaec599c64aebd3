"""Plaintext sizes of compressed encrypted files, remembered by (stored path, revision).

A compressed file's stored size says nothing about its plaintext size (docs/
encryption.md, "Compressed files"), and S3 listings carry no metadata, so the
encrypting remote learns a size by reading the file's first 188 bytes -- once
per revision: this store keeps the answer.  With a folder (the gateway's state
folder for this remote) it is a ``diskcache.Cache`` there, so a restart or a
second poll costs no reads; without one (``cloudgw decrypt``, fsck, tests) a
bounded in-memory map.

A revision is content: a new revision of a path is a new key, so an entry never
needs invalidating, only evicting (the least recently stored, past
``DISK_LIMIT``; an evicted size is read again when next needed).  Thread safety:
``diskcache`` is safe across threads and processes; its calls (SQLite) run in
worker threads so the trio thread never waits on the disk.  A crash loses
nothing that matters: a size missing after a crash is read again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import trio

DISK_LIMIT = 64 << 20  # bytes of the on-disk store (~300 bytes an entry: ~200,000 files)
MEMORY_ENTRIES = 16384

Key = tuple[str, str]  # (stored path, revision)


class SizeStore:
    """(stored path, revision) -> plaintext size; see the module docstring."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._disk = None
        self._opening = threading.Lock()
        self._memory: OrderedDict[Key, int] = OrderedDict()

    def _cache(self):  # noqa: ANN202 -- diskcache is imported only for a gateway with compression
        with self._opening:  # worker threads: the first two lookups must not open it twice
            return self._open()

    def _open(self):  # noqa: ANN202
        if self._disk is None and self._directory is not None:
            import diskcache

            self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._disk = diskcache.Cache(str(self._directory), size_limit=DISK_LIMIT,
                                         eviction_policy="least-recently-stored")
        return self._disk

    @staticmethod
    def _disk_key(key: Key) -> str:
        return f"{key[1]}\0{key[0]}"

    async def get_many(self, keys: Iterable[Key]) -> dict[Key, int]:
        keys = list(keys)
        if self._directory is None:
            return {key: self._memory[key] for key in keys if key in self._memory}

        def lookup() -> dict[Key, int]:
            cache = self._cache()
            found = {}
            for key in keys:
                size = cache.get(self._disk_key(key))
                if size is not None:
                    found[key] = size
            return found

        return await trio.to_thread.run_sync(lookup)

    async def put(self, key: Key, size: int) -> None:
        if self._directory is None:
            self._memory[key] = size
            self._memory.move_to_end(key)
            while len(self._memory) > MEMORY_ENTRIES:
                self._memory.popitem(last=False)
            return
        await trio.to_thread.run_sync(lambda: self._cache().set(self._disk_key(key), size))

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
