"""Upload sessions (``createUploadSession`` + fragment PUTs to the pre-authenticated uploadUrl).

Rules enforced on each fragment (learn.microsoft.com/graph/api/driveitem-createuploadsession):
``Content-Range: bytes a-b/total`` with ``Content-Length`` = b-a+1; the total never changes; a
starts exactly at the next expected byte (416 otherwise, overlap or gap); a non-final fragment
is a multiple of 320 KiB; every fragment is below 60 MiB.  The final fragment commits (the
caller applies the conflict and If-Match rules).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field

from .drive import GraphError, iso

FRAGMENT_MULTIPLE = 327_680  # 320 KiB
MAX_FRAGMENT = 62_914_560  # 60 MiB: a fragment must be smaller
SESSION_LIFETIME = 24 * 3600
_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


@dataclass
class UploadSession:
    token: str
    drive_id: str
    parent_id: str
    name: str
    conflict: str  # fail | replace | rename
    if_match: str | None
    fs: dict[str, str]
    target_id: str | None  # createUploadSession on /items/{id}: replace that item
    api_path: str  # "/drive" or "/drives/{id}" (for the driveItem JSON of the commit)
    expires_at: float
    total: int | None = None
    data: bytearray = field(default_factory=bytearray)

    def status(self) -> dict:
        return {"expirationDateTime": iso(self.expires_at), "nextExpectedRanges": [f"{len(self.data)}-"]}


class UploadSessions:
    def __init__(self) -> None:
        self.sessions: dict[str, UploadSession] = {}

    def create(self, **kw) -> UploadSession:
        tok = secrets.token_urlsafe(32)
        s = UploadSession(token=tok, expires_at=time.time() + SESSION_LIFETIME, **kw)
        self.sessions[tok] = s
        return s

    def get(self, tok: str) -> UploadSession:
        s = self.sessions.get(tok)
        if s is None or time.time() > s.expires_at:
            self.sessions.pop(tok, None)
            raise GraphError(404, "itemNotFound", "The upload session was not found; it may have expired, "
                             "been cancelled or completed.", "uploadSessionNotFound")
        return s

    def expire_all(self) -> None:
        self.sessions.clear()

    def drop(self, tok: str) -> None:
        self.sessions.pop(tok, None)

    @staticmethod
    def check_fragment(s: UploadSession, content_range: str | None, content_length: str | None,
                       body: bytes) -> tuple[int, int, int]:
        """Validate a fragment against the session; (start, end, total) or a GraphError."""
        m = _RANGE_RE.match(content_range or "")
        if not m:
            raise GraphError(400, "invalidRequest", f"Invalid Content-Range header {content_range!r}: expected "
                             "'bytes start-end/total'.", "invalidContentRangeHeader")
        a, b, total = (int(g) for g in m.groups())
        if a > b or b >= total:
            raise GraphError(400, "invalidRequest", f"Invalid Content-Range {content_range!r}.",
                             "invalidContentRangeHeader")
        length = b - a + 1
        if content_length is None:
            raise GraphError(411, "invalidRequest", "A Content-Length header is required.")
        if not content_length.isdigit() or int(content_length) != length or len(body) != length:
            raise GraphError(400, "invalidRequest", f"Content-Length {content_length} (body {len(body)} bytes) "
                             f"does not match Content-Range {content_range!r}.", "fragmentLengthMismatch")
        expected_total = s.total
        if expected_total is not None and total != expected_total:
            raise GraphError(400, "invalidRequest", f"The current upload session is for {expected_total} total "
                             f"bytes, but the current fragment declares a total of {total}.",
                             "fragmentLengthMismatch")
        if length >= MAX_FRAGMENT:
            raise GraphError(400, "invalidRequest", f"A fragment must be smaller than {MAX_FRAGMENT} bytes "
                             f"(60 MiB); this one has {length}.", "maxFragmentLengthExceeded")
        nxt = len(s.data)
        if a != nxt:
            overlap = a < nxt
            raise GraphError(416, "invalidRange",
                             "Uploaded fragment overlaps with existing data." if overlap
                             else "Uploaded fragment is out of order.",
                             "fragmentOverlap" if overlap else "fragmentOutOfOrder",
                             extra={"nextExpectedRanges": [f"{nxt}-"]})
        if b != total - 1 and length % FRAGMENT_MULTIPLE:
            raise GraphError(400, "invalidRequest", f"A fragment other than the last must be a multiple of "
                             f"{FRAGMENT_MULTIPLE} bytes (320 KiB); this one has {length}.",
                             "invalidFragmentLength")
        return a, b, total
