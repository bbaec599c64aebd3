"""Records of resumable uploads in flight, so an upload outlives the process that began it.

Clouds with resumable upload sessions (Graph upload sessions, Drive resumable uploads)
give a session URL that accepts the rest of the bytes for days.  A remote writes a
``SessionRecord`` before each piece it sends: the URL, the size, the expectation the
upload was made under, and SHA-256 digests of the source's prefix up to the offset the
server confirmed (``acked``) and up to the end of the piece in flight (``sending``).
After a crash the next upload of the same path finds the record, asks the session where
it stands, and continues only if the local bytes up to there still have the recorded
digest (``resume_hashes``).

One JSON file per path (named by a hash of it) in the remote's state folder, replaced
atomically and mode 0600 from the first byte: a session URL is a credential (anyone who
has it can write the file).  Records are never logged.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from cloudgw.errors import RemoteError
from cloudgw.remotes.util import write_private_file


@dataclass
class SessionRecord:
    path: str
    url: str  # pre-authenticated: a secret
    size: int
    expect: str
    acked: int = 0  # bytes the server has confirmed
    acked_sha: str = ""  # SHA-256 of the source's bytes [0, acked)
    sending: int = 0  # end of the piece in flight (== acked when none)
    sending_sha: str = ""
    created: float = 0.0
    expires: float = 0.0  # wall clock; 0: unknown


class SessionRecords:
    """One JSON file per upload session in flight, in ``folder`` (None: keep none)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def _file(self, path: str) -> Path:
        assert self.folder is not None
        return self.folder / (hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".json")

    def load(self, path: str) -> SessionRecord | None:
        if self.folder is None:
            return None
        try:
            record = SessionRecord(**json.loads(self._file(path).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return record if record.path == path else None

    def save(self, record: SessionRecord) -> None:
        if self.folder is not None:
            write_private_file(self._file(record.path), json.dumps(asdict(record)))

    def drop(self, path: str) -> None:
        if self.folder is not None:
            try:
                os.unlink(self._file(path))
            except FileNotFoundError:
                pass

    def all(self) -> list[SessionRecord]:
        if self.folder is None or not self.folder.is_dir():
            return []
        found = []
        for file in sorted(self.folder.glob("*.json")):
            try:
                found.append(SessionRecord(**json.loads(file.read_text())))
            except (OSError, ValueError, TypeError):
                file.unlink(missing_ok=True)
        return found


READ_CHUNK = 4 << 20  # a resumed prefix is re-hashed this much at a time


def hash_prefix(source: Any, start: int, end: int, hashes: tuple[Any, ...]) -> None:
    """Feed ``source``'s bytes [start, end) to every hash of ``hashes`` (worker thread)."""
    for offset in range(start, end, READ_CHUNK):
        data = source.read(offset, min(READ_CHUNK, end - offset))
        for h in hashes:
            h.update(data)


def interrupted(exc: BaseException) -> bool:
    """Whether an upload stopped by ``exc`` keeps its session for a resume: a cancellation (a
    stop, a timeout) or a remote error, also inside an exception group -- trio wraps a
    cancellation that lands in a library's own nursery (the happy-eyeballs connect of
    ``open_tcp_stream``) in one, and taking that for "the session is of no more use" made the
    next upload start over.  Anything else (SourceChanged and the like): drop the session."""
    if isinstance(exc, BaseExceptionGroup):
        return all(interrupted(e) for e in exc.exceptions)
    return isinstance(exc, (RemoteError, trio.Cancelled))


def resume_hashes(record: SessionRecord, source: Any, at: int, extra: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Whether an interrupted session that now stands at byte ``at`` may go on with
    ``source`` (worker thread: reads the local prefix back, no network).

    The server may stand anywhere from the acknowledged offset to the end of the piece that
    was in flight.  The local bytes up to there must have the recorded digest (up to
    ``acked``; up to ``sending`` when the server has more), so the server holds a prefix of
    exactly the bytes hashed now.  Returns (SHA-256, *``extra``) fed with [0, at) and moves
    the record to ``at``; None: start a new session."""
    if not record.acked <= at <= record.sending:
        return None
    hashes = (hashlib.sha256(), *extra)
    hash_prefix(source, 0, record.acked, hashes)
    if hashes[0].hexdigest() != record.acked_sha:
        return None
    if at > record.acked:
        at_hashes = tuple(h.copy() for h in hashes)
        hash_prefix(source, record.acked, at, at_hashes)
        rest = at_hashes[0].copy()
        hash_prefix(source, at, record.sending, (rest,))
        if rest.hexdigest() != record.sending_sha:
            return None
        hashes = at_hashes
    record.acked, record.acked_sha = at, hashes[0].hexdigest()
    record.sending, record.sending_sha = at, record.acked_sha
    return hashes
