"""Upload protocols (developers.google.com/drive/api/guides/manage-uploads):
``uploadType=media`` (body = content, <= 5 MB), ``multipart`` (multipart/related: JSON metadata
then media, <= 5 MB) and ``resumable`` (a session URI; chunks with Content-Range, every chunk but
the last a multiple of 256 KiB; 308 + Range for intermediate chunks and status queries)."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field

from werkzeug.wrappers import Request

from .errors import DriveError, bad_request

SIMPLE_MAX = 5 * 1024 * 1024  # "small file (5 MB or less)" for uploadType=media and multipart
CHUNK_UNIT = 256 * 1024  # 262144


def parse_multipart_related(request: Request) -> tuple[dict, bytes, str | None]:
    """(metadata, media bytes, media Content-Type) of a multipart/related body; 400 otherwise."""
    if request.mimetype != "multipart/related":
        raise bad_request("Invalid multipart request with 0 mime parts.",
                          hint=f"uploadType=multipart needs Content-Type multipart/related, got {request.mimetype!r}")
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise bad_request("Missing boundary in multipart/related Content-Type.")
    body = request.get_data()
    delim = b"--" + boundary.encode()
    chunks = body.split(delim)
    # chunks[0] is the preamble, the last one starts with "--" (the close delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise bad_request(f"Invalid multipart request with {max(len(chunks) - 2, 0)} mime parts.",
                          hint="missing the closing delimiter")
    parts = []
    for raw in chunks[1:-1]:
        if raw.startswith(b"\r\n"):
            raw = raw[2:]
        elif raw.startswith(b"\n"):
            raw = raw[1:]
        sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
        head, _, content = raw.partition(sep)
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        headers = {}
        for line in re.split(rb"\r?\n", head):
            if b":" in line:
                k, _, v = line.partition(b":")
                headers[k.strip().lower().decode()] = v.strip().decode()
        parts.append((headers, content))
    if len(parts) != 2:
        raise bad_request(f"Invalid multipart request with {len(parts)} mime parts.",
                          hint="expected exactly two parts: JSON metadata, then the media")
    (h1, meta_raw), (h2, media) = parts
    if not h1.get("content-type", "").startswith("application/json"):
        raise bad_request("Metadata part is too large or has an invalid Content-Type.",
                          hint="the first part must be application/json")
    try:
        meta = json.loads(meta_raw or b"{}")
    except ValueError:
        raise bad_request("Invalid JSON payload received in the metadata part.") from None
    if not isinstance(meta, dict):
        raise bad_request("Invalid JSON payload received in the metadata part.")
    return meta, media, h2.get("content-type")


_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


@dataclass
class Session:
    id: str
    file_id: str | None  # None: files.create; else files.update of that file
    metadata: dict
    args: dict  # the query parameters of the initiating request (fields, supportsAllDrives, ...)
    mime: str | None
    total: int | None
    received: bytearray = field(default_factory=bytearray)
    result: dict | None = None  # the file resource once complete


class Sessions:
    def __init__(self) -> None:
        self.by_id: dict[str, Session] = {}

    def create(self, file_id, metadata, args, mime, total) -> Session:
        s = Session("AFx" + secrets.token_urlsafe(48), file_id, metadata, args, mime, total)
        self.by_id[s.id] = s
        return s

    def get(self, upload_id: str) -> Session:
        s = self.by_id.get(upload_id)
        if s is None:
            raise DriveError(404, "notFound", "Upload session not found or expired.",
                             hint="unknown upload_id")
        return s


def parse_chunk(request: Request, session: Session) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) from Content-Range; first/last None for a status query (empty body).
    Enforces the chunk rules; 400 on any violation."""
    body = request.get_data()
    cr = request.headers.get("Content-Range")
    if cr is None:
        if session.received:
            raise bad_request("Content-Range is required after the first chunk.",
                              hint="a PUT without Content-Range is a whole-body upload; bytes already stored")
        n = len(body)
        return (0, n - 1, n) if n else (None, None, 0)
    m = _RANGE.match(cr.strip())
    if not m:
        raise bad_request(f"Invalid Content-Range header: {cr!r}")
    total = None if m.group(3) == "*" else int(m.group(3))
    if m.group(1) is None:  # bytes */total: status query
        if body:
            raise bad_request("A Content-Range of bytes */N must come with an empty body.")
        return None, None, total
    first, last = int(m.group(1)), int(m.group(2))
    if last < first:
        raise bad_request(f"Invalid Content-Range header: {cr!r}")
    if len(body) != last - first + 1:
        raise bad_request("Content-Range does not match the body length.",
                          hint=f"{cr} announces {last - first + 1} bytes, the body has {len(body)}")
    if total is not None and last >= total:
        raise bad_request(f"Invalid Content-Range header: {cr!r} (last byte past the total)")
    if session.total is not None and total is not None and total != session.total:
        raise bad_request("The upload's total size changed.",
                          hint=f"total {total} != {session.total} announced before")
    if first != len(session.received):
        raise bad_request("Invalid request: the chunk does not start at the next byte to upload.",
                          hint=f"chunk starts at {first}, {len(session.received)} bytes are stored; "
                               "resume from the Range the server gave")
    final = total is not None and last + 1 == total
    if not final and (last - first + 1) % CHUNK_UNIT:
        raise bad_request("Invalid request. The chunk size must be a multiple of 256 KiB (262144 bytes), "
                          "except for the last chunk.",
                          hint=f"non-final chunk of {last - first + 1} bytes")
    return first, last, total
