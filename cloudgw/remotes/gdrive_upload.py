"""Uploads to Google Drive: one multipart request for small files, resumable sessions
above, and the records that let a session outlive the process.

Small files (``size <= SIMPLE_MAX``, 5 MiB: Drive's limit for multipart uploads): the
whole source is read, ``source.check()``ed, the expectation checked (``still_expected``)
and the metadata and bytes sent in one ``multipart`` request (atomic on the server).

Large files: a resumable session (``uploadType=resumable``: the metadata -- name,
parent, ``modifiedTime`` -- goes with the initiation), then chunks of ``chunk_size``
bytes (a multiple of 256 KiB) in order, each answered 308 with the ``Range`` stored so
far; the last answers 200 with the file.  Nothing is visible (a new file) or replaced
(an update) until the last chunk commits; ``source.check()`` and ``still_expected`` run
right before the last chunk goes out.

Conditions: Drive v3 has no conditional writes (no ETag, no If-Match on files).  The
caller's ``still_expected`` re-reads the target right before the commit (the file's
``headRevisionId`` for an update; the folder's names for a new file): a change that
slipped in before it is a ``PreconditionFailed`` (a conflict copy, never an overwrite);
one that lands between that read and the commit (one request) is overwritten -- it stays
in the file's revision history on Drive.  The README says so.

Content identity: the MD5 of the bytes sent is computed while they go out and compared
with the ``md5Checksum`` of the commit's answer; a difference means Drive stored
something else: the upload is repeated (as an update of the file it made), up to
``HASH_ATTEMPTS`` times, and never reported as done.

Resuming (crash behaviour): as Graph's sessions (``upload_sessions``: the session URI,
the size, the expectation and SHA-256 digests of the acknowledged prefix and of the
prefix up to the end of the chunk in flight, written before each chunk, mode 0600).
After kill -9, a reboot or an outage the next upload of the same path asks the session
where it stands (``Content-Range: bytes */SIZE``); if that is one of the recorded
offsets and the local prefix still has the recorded digest, the upload continues from
there; anything else starts a new session.  A chunk that fails is resolved the same way
within one process (an outage costs at most one chunk); without progress for the
remote's timeout the upload fails (``RemoteUnavailable``) and the engine retries later.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import trio

from cloudgw.crashpoints import crash_point
from cloudgw.errors import (PreconditionFailed, RemoteError, RemotePermissionDenied, RemoteUnavailable,
                            SourceChanged, TransientRemoteError, UserError)
from cloudgw.remotes.base import UploadSource
from cloudgw.remotes.gdrive_http import DriveHttp
from cloudgw.remotes.retry import backoff_delay
from cloudgw.remotes.upload_sessions import SessionRecord, SessionRecords, interrupted, resume_hashes

log = logging.getLogger(__name__)

SIMPLE_MAX = 5 << 20  # Drive: multipart uploads take up to 5 MB
CHUNK_UNIT = 256 << 10  # resumable chunks are multiples of 256 KiB
HASH_ATTEMPTS = 3
SESSION_LIFETIME = 7 * 86400.0  # Drive keeps a resumable session about a week


def checked_chunk_size(size: int) -> int:
    if size <= 0 or size % CHUNK_UNIT:
        raise UserError(f"chunk_size {size}: must be a positive multiple of {CHUNK_UNIT} (256 KiB)")
    return size


@dataclass(frozen=True)
class Target:
    """Where an upload goes: a new file (``file_id`` None) named ``name`` in ``parent_id``,
    or a new version of ``file_id``."""

    file_id: str | None
    parent_id: str
    name: str
    mtime: str | None = None  # RFC 3339 modifiedTime to set


@dataclass
class Uploader:
    """The upload machinery of one remote (its HTTP, session records, chunk size, fields)."""

    http: DriveHttp
    sessions: SessionRecords
    chunk_size: int
    fields: str  # the file fields the commit's answer carries
    params: dict[str, str]  # supportsAllDrives for shared drives

    async def upload(self, key: str, target: Target, source: UploadSource, expect: str, what: str,
                     still_expected: Callable[[], Awaitable[None]]) -> dict:
        """Store ``source`` at ``target``; the committed file's resource.  ``key`` names the
        session record (the remote path); ``expect`` is the caller's expectation as a string
        (a resumed session must have been made under the same one)."""
        self.http.upload_gate(what)
        for attempt in range(1, HASH_ATTEMPTS + 1):
            if source.size <= SIMPLE_MAX:
                item, md5 = await self._multipart(target, source, what, still_expected)
            else:  # a recorded session is resumed only for the same expectation *and* target file
                bound = f"{expect}|{target.file_id or 'new in ' + target.parent_id}"
                item, md5 = await self._resumable(key, target, source, bound, what, still_expected)
            stored = item.get("md5Checksum")
            if stored is None or stored == md5:
                return item
            log.warning("%s: Drive stored other bytes than were sent (md5 %s, sent %s); sending again (%d/%d)",
                        what, stored, md5, attempt, HASH_ATTEMPTS)
            target = Target(item["id"], target.parent_id, target.name, target.mtime)
            revision = item.get("headRevisionId")

            async def ours_still(revision: str | None = revision, file_id: str = item["id"]) -> None:
                now = await self.http.api(what, lambda s: s.files().get(fileId=file_id, fields="headRevisionId",
                                                                        **self.params))
                if now.get("headRevisionId") != revision:
                    raise PreconditionFailed(f"{what}: changed elsewhere while its content was being repaired")

            still_expected = ours_still
        raise RemoteError(f"{what}: Drive's checksum differs from the bytes sent after {HASH_ATTEMPTS} attempts")

    def _metadata(self, target: Target) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if target.file_id is None:
            body = {"name": target.name, "parents": [target.parent_id]}
        if target.mtime:
            body["modifiedTime"] = target.mtime
        return body

    def _url(self, target: Target, upload_type: str) -> tuple[str, str]:
        query = urllib.parse.urlencode({"uploadType": upload_type, "fields": self.fields, **self.params})
        if target.file_id is None:
            return "POST", f"{self.http.upload_url}?{query}"
        return "PATCH", f"{self.http.upload_url}/{urllib.parse.quote(target.file_id)}?{query}"

    # -- small files ---------------------------------------------------------------------

    async def _multipart(self, target: Target, source: UploadSource, what: str,
                         still_expected: Callable[[], Awaitable[None]]) -> tuple[dict, str]:
        data = await trio.to_thread.run_sync(source.read, 0, source.size)
        if len(data) != source.size:  # cut short meanwhile (a program truncated it): requeued, as on every remote
            raise SourceChanged(f"{what}: the local file is shorter than {source.size} bytes")
        await trio.to_thread.run_sync(source.check)
        await still_expected()
        boundary = "cloudgw-" + uuid.uuid4().hex
        body = b"".join([
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(self._metadata(target)).encode(),
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
            data, f"\r\n--{boundary}--\r\n".encode()])
        method, url = self._url(target, "multipart")
        headers = {"Content-Type": f"multipart/related; boundary={boundary}"}
        resp = await self.http.retried(what, lambda: self.http.send(what, method, url, headers=headers, content=body,
                                                                    upload=True))
        return resp.json(), hashlib.md5(data, usedforsecurity=False).hexdigest()

    # -- resumable sessions --------------------------------------------------------------

    async def _resumable(self, key: str, target: Target, source: UploadSource, expect: str, what: str,
                         still_expected: Callable[[], Awaitable[None]]) -> tuple[dict, str]:
        progress = await self._resume(key, target, source, expect, what) or await self._create(
            key, target, source, expect, what)
        record = progress.record
        failures, stalled_since = 0, trio.current_time()
        try:
            while True:
                start = record.acked
                end = min(start + self.chunk_size, source.size)
                data = await trio.to_thread.run_sync(source.read, start, end - start)
                if len(data) != end - start:  # cut short meanwhile: the session is of no more use
                    raise SourceChanged(f"{what}: the local file is shorter than {source.size} bytes")
                sha, md5 = progress.sha.copy(), progress.md5.copy()
                await trio.to_thread.run_sync(_update, (sha, md5), data)
                record.sending, record.sending_sha = end, sha.hexdigest()
                await trio.to_thread.run_sync(self.sessions.save, record)
                if end == source.size:
                    await trio.to_thread.run_sync(source.check)
                    await still_expected()  # Drive has no conditional writes: closes the window to one request
                try:
                    item = await self._chunk(record, start, data, what)
                except RemoteUnavailable:
                    raise  # the daily upload cap (or a pause past the timeout): the session waits, recorded
                except TransientRemoteError as exc:
                    failures += 1
                    waited = trio.current_time() - stalled_since
                    if waited > self.http.retry_deadline:
                        raise RemoteUnavailable(f"{what}: no progress for {waited:.0f} s ({failures} failures): "
                                                f"{exc}") from exc
                    await trio.sleep(max(backoff_delay(failures, base=0.2, cap=5.0), exc.retry_after or 0.0))
                    at = await self._status(record, what)
                    if isinstance(at, dict):
                        return at, md5.hexdigest()  # the last chunk did arrive
                    if at is None or not record.acked <= at <= record.sending:
                        raise TransientRemoteError(f"{what}: the upload session lost its place; starting again")
                    if at > record.acked:
                        sha, md5 = progress.sha.copy(), progress.md5.copy()
                        await trio.to_thread.run_sync(_update, (sha, md5), data[: at - record.acked])
                        progress.sha, progress.md5 = sha, md5
                        record.acked, record.acked_sha = at, sha.hexdigest()
                        failures, stalled_since = 0, trio.current_time()
                    continue
                failures, stalled_since = 0, trio.current_time()
                progress.sha, progress.md5 = sha, md5
                record.acked, record.acked_sha = end, record.sending_sha
                if item is not None:
                    self.sessions.drop(key)
                    return item, md5.hexdigest()
                await trio.to_thread.run_sync(self.sessions.save, record)
                crash_point(f"gdrive-chunk-acked-{end // self.chunk_size}")
        except (PreconditionFailed, UserError):
            self.cancel(record)
            raise
        except BaseException as exc:
            if not interrupted(exc):
                self.cancel(record)  # SourceChanged and the like: this session is of no more use
            raise

    async def _create(self, key: str, target: Target, source: UploadSource, expect: str, what: str) -> _Progress:
        self.sessions.drop(key)
        method, url = self._url(target, "resumable")
        headers = {"X-Upload-Content-Length": str(source.size), "X-Upload-Content-Type": "application/octet-stream"}
        metadata = self._metadata(target)
        resp = await self.http.retried(what, lambda: self.http.send(what, method, url, headers=headers,
                                                                    json_body=metadata, upload=True))
        location = resp.headers.get("location")
        if not location:
            raise RemoteError(f"{what}: Drive gave no upload session")
        now = time.time()
        record = SessionRecord(key, location, source.size, expect, created=now, expires=now + SESSION_LIFETIME)
        return _Progress(record, hashlib.sha256(), hashlib.md5(usedforsecurity=False))

    async def _chunk(self, record: SessionRecord, start: int, data: bytes, what: str) -> dict | None:
        """Send one chunk; the file when it was the last, else None."""
        end = start + len(data)
        headers = {"Content-Range": f"bytes {start}-{end - 1}/{record.size}"}
        try:
            resp = await self.http.send(what, "PUT", record.url, headers=headers, content=data, auth=False,
                                        upload=True)
        except RemoteError as exc:
            if isinstance(exc, (TransientRemoteError, RemotePermissionDenied)) or \
                    getattr(exc, "errno", None) == errno.ENOSPC:
                raise  # (RemoteUnavailable is transient too) a full drive stays ENOSPC
            # a 4xx on a chunk: the session and we disagree (Drive's 400 "wrong offset");
            # the session is asked where it stands
            raise TransientRemoteError(f"{what}: the chunk was refused ({exc})") from None
        if resp.status_code == 308:
            stored = _stored(resp)
            if stored != end:
                raise TransientRemoteError(f"{what}: Drive kept {stored} bytes, not {end}")
            return None
        return resp.json()

    async def _status(self, record: SessionRecord, what: str) -> int | dict | None:
        """Where the session stands: the bytes stored, the file if it is complete, None if gone."""
        headers = {"Content-Range": f"bytes */{record.size}"}
        try:
            resp = await self.http.retried(what, lambda: self.http.send(what, "PUT", record.url, headers=headers,
                                                                        auth=False, upload=True))
        except RemoteError:
            return None
        if resp.status_code == 308:
            return _stored(resp)
        return resp.json()

    async def _resume(self, key: str, target: Target, source: UploadSource, expect: str,
                      what: str) -> _Progress | None:
        """The session an interrupted upload of the same bytes left, where it stands (see
        ``upload_sessions.resume_hashes``)."""
        record = await trio.to_thread.run_sync(self.sessions.load, key)
        if record is None:
            return None
        if record.size != source.size or record.expect != expect or record.expires <= time.time():
            self.cancel(record)
            return None
        at = await self._status(record, what)
        if not isinstance(at, int) or at >= source.size:
            self.cancel(record)  # gone, or complete: its file was made (the next poll shows it)
            return None
        hashes = await trio.to_thread.run_sync(resume_hashes, record, source, at,
                                               (hashlib.md5(usedforsecurity=False),))
        if hashes is None:
            log.info("%s: the file changed since the interrupted upload; starting again", what)
            self.cancel(record)
            return None
        sha, md5 = hashes
        log.info("%s: resuming an interrupted upload at byte %d of %d", what, at, source.size)
        return _Progress(record, sha, md5)

    def cancel(self, record: SessionRecord) -> None:
        """Forget a session; Drive lets unfinished sessions expire by themselves (a week)."""
        self.sessions.drop(record.path)


@dataclass
class _Progress:
    record: SessionRecord
    sha: Any  # hashlib sha256 of [0, record.acked)
    md5: Any  # md5 of [0, record.acked)


def _stored(resp: Any) -> int:
    """The bytes a 308 answer says are stored (``Range: bytes=0-N``; none: 0)."""
    text = resp.headers.get("range", "")
    try:
        return int(text.rsplit("-", 1)[1]) + 1 if text else 0
    except (IndexError, ValueError):
        raise RemoteError(f"unexpected Range {text!r} in Drive's answer") from None


def _update(hashes: tuple[Any, ...], data: bytes) -> None:
    for h in hashes:
        h.update(data)

