"""Request counters of the fake Drive server (thread-safe)."""

from __future__ import annotations

import threading
from collections import Counter


class Counters:
    """Requests per kind: "files.list", "files.get", "files.create", "files.update", "files.delete",
    "media" (alt=media downloads), "export", "download" (exportLinks), "changes.list",
    "changes.getStartPageToken", "upload_session", "upload_chunk", "upload_status", "dropped_chunk",
    "token", "auth", "drives.list", "drives.get", "about.get", "rate_limited", "unauthorized"; plus
    ``bytes_uploaded`` (media bodies and chunks that were stored) and ``bytes_downloaded``
    (alt=media, export and exportLinks bodies sent)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self.bytes_uploaded = 0
        self.bytes_downloaded = 0

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._requests[kind] += n

    def add_bytes(self, *, uploaded: int = 0, downloaded: int = 0) -> None:
        with self._lock:
            self.bytes_uploaded += uploaded
            self.bytes_downloaded += downloaded

    def __getitem__(self, kind: str) -> int:
        with self._lock:
            return self._requests[kind]

    def get(self, kind: str, default: int = 0) -> int:
        with self._lock:
            return self._requests.get(kind, default)

    @property
    def requests(self) -> dict[str, int]:
        """A copy of the per-kind counts."""
        with self._lock:
            return dict(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self.bytes_uploaded = 0
            self.bytes_downloaded = 0

    def __repr__(self) -> str:
        return f"Counters({self.requests}, bytes_uploaded={self.bytes_uploaded}, " \
               f"bytes_downloaded={self.bytes_downloaded})"
