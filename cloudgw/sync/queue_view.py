"""The upload queue, one row per entry, for people (``cloudgw status --files``) and scripts.

``queue_files(engine)`` reads the write-back queue's snapshot (what is waiting,
uploading, failing and when it is tried next), the metadata of each entry
(path, file state, size, last local change) and the pending remote deletes,
and returns plain JSON-able dicts.  A row::

    path        where it is in the mount ("inode N" if it left the tree meanwhile)
    kind        file, dir or symlink (a queued folder or symlink: its mkdir/move)
    queue       uploading | waiting (write-back delay) | retrying (last attempt failed)
                | deleting (a remote delete waiting to be made) | writing (changed, not queued
                yet: a file still open for writing is queued when it is closed)
    state       the file's sync state (dirty, uploading, conflict, clean for a move, ...)
    size        bytes (files)
    changed     Unix time of the last local change (ctime), age = now - changed
    attempts    consecutive failed attempts (0 if none)
    last_error  the last failure ("Type: message"), or null
    next_try    Unix time of the next attempt; null while uploading

Uploading first, then by next attempt.  At most ``limit`` rows (a queue of a
million entries is not sent over the control socket); ``total`` says how many
there are (files being written are counted only when the queue itself is
shorter than ``limit``: finding them takes one more scan).  Cost: one store lookup per row shown, sorting the queue's keys.

Times: the queue keeps trio-clock due times; they are turned into Unix time
with the offset between the two clocks at the time of the call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from cloudgw.metadata.model import Inode

if TYPE_CHECKING:
    from cloudgw.sync.engine import SyncEngine

DEFAULT_LIMIT = 1000


def queue_files(engine: SyncEngine, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    store = engine.ctx.store
    snap = engine.queue.snapshot()
    wall = time.time()
    offset = wall - snap.now  # trio clock -> Unix time
    failures = {f.key: f for f in snap.failed}
    order: list[tuple[int, str, float | None]] = [(k, "uploading", None) for k in snap.uploading]
    order += [(k, "retrying" if k in failures else "waiting", due + offset) for k, due in snap.queued]
    seen = {k for k, _, _ in order}
    tombstones = store.tombstones()
    unqueued = [ino for ino in store.inos_needing_sync() if ino not in seen] if len(order) < limit else []
    total = len(order) + len(unqueued) + len(tombstones)

    rows: list[dict[str, Any]] = []
    for ino, queue, next_try in order[:limit]:
        rows.append(_row(store.get(ino), ino, queue, next_try, failures.get(ino), store))
    for ino in unqueued[: limit - len(rows)]:
        rows.append(_row(store.get(ino), ino, "writing", None, None, store))
    for path, _rev, kind in tombstones[: max(0, limit - len(rows))]:
        rows.append({"path": path, "kind": kind.value, "queue": "deleting", "state": None, "size": None,
                     "changed": None, "attempts": 0, "last_error": None, "next_try": None})
    return {"files": rows, "files_total": total, "files_more": max(0, total - len(rows)),
            "time": wall}


def _row(inode: Inode | None, ino: int, queue: str, next_try: float | None, failure: Any, store: Any) -> dict[str, Any]:
    path = (store.path_of(inode) if inode is not None else None) or f"inode {ino}"
    return {
        "path": path,
        "kind": inode.kind.value if inode is not None else None,
        "queue": queue,
        "state": inode.state.value if inode is not None else None,
        "size": inode.size if inode is not None else None,
        "changed": inode.ctime_ns / 1e9 if inode is not None else None,
        "attempts": failure.attempts if failure is not None else 0,
        "last_error": failure.last_error if failure is not None else None,
        "next_try": next_try,
    }
