"""Records of resumable uploads in flight, so an upload outlives the process that began it.

Clouds with resumable upload sessions (Graph upload sessions, Drive resumable uploads)
give a session URL that accepts the rest of the bytes for days.  A remote writes a
``SessionRecord`` before each piece it sends: the URL, the size, the expectation the
upload was made under, and SHA-256 digests of the source's prefix up to the offset the
server confirmed (``acked``) and up to the end of the piece in flight (``sending``).
After a crash the next upload of the same path finds the record, asks the session where
it stands, and continues only if the local bytes up to there still have the recorded
digest (see ``graph_upload._resume``).

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
