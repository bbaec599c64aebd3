"""Uploads to Graph: one PUT up to 4 MiB, resumable upload sessions above, and the
records that let a session outlive the process.

Small files (``size <= SIMPLE_MAX``): the whole source is read, ``source.check()``ed and
sent in one ``PUT .../content`` (atomic on the server), then ``fileSystemInfo`` is set
with a ``PATCH``.

Large files: ``createUploadSession`` (with ``fileSystemInfo``, the conflict behaviour and
``If-Match``), then fragments of ``fragment_size`` bytes (a multiple of 320 KiB, below
60 MiB), strictly in order, to the pre-authenticated upload URL without an
``Authorization`` header.  Nothing is visible on the drive until the last fragment
commits; ``source.check()`` runs before the last fragment goes out.

Conditions: ``Expect.ABSENT`` -> ``conflictBehavior=fail`` (409 -> ``PreconditionFailed``);
a revision -> ``If-Match`` (412 -> ``PreconditionFailed``) with ``replace``; ``Expect.ANY``
-> ``replace``.  The server enforces both at the commit.

Content identity: the quickXorHash of the bytes sent is computed while they go out and
compared with the one Graph reports in the commit's own answer; a difference means the
server stored something else: the write is repeated (``If-Match`` the version it made),
up to ``HASH_ATTEMPTS`` times, and never reported as done -- except for Office files and
PDFs on Business/SharePoint drives, which SharePoint rewrites on purpose.  The mtime of a
simple upload is set afterwards with ``If-Match`` the commit's eTag: a version someone
saved in between is never touched (it keeps the server's time then).

Resuming (crash behaviour): before each fragment is sent, a record is written
(``SessionRecords``: one JSON file per session, mode 0600 -- the upload URL is a
credential -- replaced atomically) holding the URL, the size, the expectation, and
SHA-256 digests of the source's prefix up to the acknowledged offset and up to the end
of the fragment in flight.  After kill -9, a reboot or an outage, the next upload of the
same path asks the session for ``nextExpectedRanges``; if the server's offset is one of
the two recorded and the source's prefix still has that digest (read back locally, no
network), the upload continues from there.  Anything else (another size or expectation,
a changed prefix, an expired session) starts a new session.  Within one process a
fragment that failed (timeout, 5xx, broken connection) is resolved the same way: the
session is asked where it stands and the upload continues, so an outage costs at most
one fragment; failures back off (full jitter), and without progress for the remote's
timeout the upload fails (``RemoteUnavailable``) and is retried by the engine later.
Before the last fragment the expectation is checked once more with a read (Graph
documents ``If-Match`` for ``createUploadSession`` only), so a change made elsewhere
while a large upload ran (or before it resumed) is a conflict, not an overwrite.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from cloudgw.crashpoints import crash_point
from cloudgw.errors import (PreconditionFailed, RemoteError, RemoteExists, RemoteNotFound, RemoteUnavailable,
                            SourceChanged, TransientRemoteError, UserError)
from cloudgw.remotes.base import Expect, FileAttrs, UploadSource
from cloudgw.remotes.graph_http import graph_error
from cloudgw.remotes.graph_items import format_time, hex_hash, item_url, parse_time
from cloudgw.remotes.quickxor import QuickXorHash
from cloudgw.remotes.retry import backoff_delay
from cloudgw.remotes.upload_sessions import SessionRecord, interrupted, resume_hashes

if TYPE_CHECKING:
    from cloudgw.remotes.onedrive import OneDriveRemote

log = logging.getLogger(__name__)

SIMPLE_MAX = 4 << 20  # Graph: PUT .../content takes files up to 4 MiB
FRAGMENT_UNIT = 320 << 10  # fragments are multiples of 320 KiB ...
FRAGMENT_MAX = 60 << 20  # ... and below 60 MiB
HASH_ATTEMPTS = 3
# SharePoint (and OneDrive for Business) store Office files and PDFs with their own metadata
# added: the stored hash and size differ from what was sent, by design (rclone documents it too)
REWRITTEN_BY_SHAREPOINT = frozenset({"docx", "docm", "dotx", "xlsx", "xlsm", "xltx", "pptx", "pptm", "potx",
                                     "doc", "xls", "ppt", "pdf"})


def checked_fragment_size(size: int) -> int:
    if size <= 0 or size % FRAGMENT_UNIT or size >= FRAGMENT_MAX:
        raise UserError(f"chunk_size must be a multiple of 327680 (320 KiB) below 60 MiB, not {size}")
    return size


def expect_key(expect: Expect | str) -> str:
    return f"rev:{expect}" if isinstance(expect, str) else expect.value


def conditions(expect: Expect | str) -> tuple[str, dict[str, str]]:
    """The conflict behaviour and headers that make the server enforce ``expect``."""
    if expect is Expect.ABSENT:
        return "fail", {}
    if isinstance(expect, str):
        return "replace", {"If-Match": expect}
    return "replace", {}


def refused(exc: RemoteError, expect: Expect | str, what: str) -> RemoteError:
    """A commit the server refused because of ``expect``: the caller's conflict."""
    if isinstance(exc, RemoteExists) and expect is Expect.ABSENT:
        return PreconditionFailed(f"{what}: something is already there")
    if isinstance(exc, RemoteNotFound) and isinstance(expect, str):
        return PreconditionFailed(f"{what}: the revision expected is gone")
    return exc


# -- uploads ---------------------------------------------------------------------------


async def upload(remote: OneDriveRemote, path: str, source: UploadSource, expect: Expect | str,
                 attrs: FileAttrs) -> dict:
    """Store ``source`` at ``path``; the new driveItem (as our own commit answered: never a
    re-read, which could describe someone else's later version).  See the module docstring."""
    what = f"upload {remote.display(path)}"
    for attempt in range(1, HASH_ATTEMPTS + 1):
        if source.size <= SIMPLE_MAX:
            item, digest = await _simple(remote, path, source, expect, what)
        else:
            item, digest = await _session(remote, path, source, expect, attrs, what)
        theirs = hex_hash(item)
        if theirs is None or theirs == digest:
            break
        if remote.drive_type != "personal" and path.rsplit(".", 1)[-1].lower() in REWRITTEN_BY_SHAREPOINT:
            log.info("%s: SharePoint rewrote the file as it stores it (its Office metadata): hash and size differ "
                     "from the bytes sent, as expected", what)
            break
        log.warning("%s: the server's quickXorHash differs from the bytes sent (attempt %d); sending again",
                    what, attempt)
        expect = item.get("eTag") or expect  # replace exactly the version we just made, nothing newer
    else:
        raise TransientRemoteError(f"{what}: the stored content's hash differs from what was sent, "
                                   f"{HASH_ATTEMPTS} times")
    if attrs.mtime_ns is not None and source.size <= SIMPLE_MAX:  # (sessions carry fileSystemInfo themselves)
        item = await remote.set_mtime(item, attrs.mtime_ns)
    return item


def _read_all(source: UploadSource) -> tuple[bytes, str]:
    data = source.read(0, source.size)
    source.check()
    digest = QuickXorHash()
    digest.update(data)
    return data, digest.digest().hex()


async def _simple(remote: OneDriveRemote, path: str, source: UploadSource, expect: Expect | str,
                  what: str) -> tuple[dict, str]:
    data, digest = await remote.thread(_read_all, source)
    behaviour, headers = conditions(expect)
    url = item_url(remote.drive, remote.root_id, path, "content") + f"?@microsoft.graph.conflictBehavior={behaviour}"

    async def put() -> dict:
        resp = await remote.http.once(what, "PUT", url, ok=(200, 201), headers=headers, content=data)
        return resp.json()

    try:
        item = await remote.http.retried(what, put)
    except RemoteNotFound:
        if isinstance(expect, str):
            raise PreconditionFailed(f"{what}: the revision expected is gone") from None
        await remote.mkdir(_parent(path))  # Graph makes no parents for a PUT by path
        item = await remote.http.retried(what, put)
    except RemoteError as exc:
        raise refused(exc, expect, what) from None
    return item, digest


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


@dataclass
class _Progress:
    record: SessionRecord
    sha: Any  # hashlib sha256 of [0, record.acked)
    qx: QuickXorHash  # quickXorHash of [0, record.acked)


async def _session(remote: OneDriveRemote, path: str, source: UploadSource, expect: Expect | str,
                   attrs: FileAttrs, what: str) -> tuple[dict, str]:
    progress = await _resume(remote, path, source, expect, what) or await _create(remote, path, source, expect,
                                                                                   attrs, what)
    records, record = remote.sessions, progress.record
    failures, stalled_since = 0, trio.current_time()
    try:
        while True:
            start = record.acked
            end = min(start + remote.fragment_size, source.size)
            data = await remote.thread(source.read, start, end - start)
            if len(data) != end - start:  # cut short meanwhile: the session is of no more use
                raise SourceChanged(f"{what}: the local file is shorter than {source.size} bytes")
            sha, qx = progress.sha.copy(), progress.qx.copy()
            await remote.thread(_update, (sha, qx), data)
            record.sending, record.sending_sha = end, sha.hexdigest()
            await remote.thread(records.save, record)
            if end == source.size:
                await remote.thread(source.check)
                await _still_expected(remote, path, expect, what)  # Graph documents If-Match at creation only
            try:
                item = await _fragment(remote, record, start, data, what)
            except TransientRemoteError as exc:
                failures += 1
                waited = trio.current_time() - stalled_since
                if waited > remote.http.retry_deadline:
                    raise RemoteUnavailable(f"{what}: no progress for {waited:.0f} s ({failures} failures): {exc}") \
                        from exc
                await trio.sleep(max(backoff_delay(failures, base=0.2, cap=5.0), exc.retry_after or 0.0))
                if await _realign(remote, progress, data, what):  # the session says where it stands; or raises
                    failures, stalled_since = 0, trio.current_time()
                continue
            except RemoteError as exc:
                raise refused(exc, expect, what) from None
            failures, stalled_since = 0, trio.current_time()
            progress.sha, progress.qx = sha, qx
            record.acked, record.acked_sha = end, record.sending_sha
            if item is not None:
                records.drop(path)
                return item, qx.digest().hex()
            await remote.thread(records.save, record)
            crash_point(f"graph-fragment-acked-{end // remote.fragment_size}")
    except (PreconditionFailed, RemoteExists, UserError):
        await _cancel(remote, record)
        raise
    except BaseException as exc:
        if not interrupted(exc):
            await _cancel(remote, record)  # SourceChanged and the like: this session is of no more use
        raise


async def _still_expected(remote: OneDriveRemote, path: str, expect: Expect | str, what: str) -> None:
    """Right before the commit: what is at ``path`` is still what ``expect`` says (the
    server is asked to enforce it too; this closes the window to one request)."""
    if expect is Expect.ANY:
        return
    item = await remote.item(path)
    if expect is Expect.ABSENT:
        if item is not None:
            raise PreconditionFailed(f"{what}: something is already there")
    elif item is None or expect not in (item.get("cTag"), item.get("eTag")):
        raise PreconditionFailed(f"{what}: changed meanwhile (expected revision {expect})")


def _update(hashes: tuple[Any, ...], data: bytes) -> None:
    for h in hashes:
        h.update(data)


async def _fragment(remote: OneDriveRemote, record: SessionRecord, start: int, data: bytes,
                    what: str) -> dict | None:
    """Send one fragment; the driveItem when it was the last, else None."""
    end = start + len(data)
    headers = {"Content-Range": f"bytes {start}-{end - 1}/{record.size}"}
    resp = await remote.http._send(what, "PUT", record.url, headers=headers, json=None, content=data, auth=False)
    if resp.status_code == 202:
        return None
    if resp.status_code in (200, 201):
        return resp.json()
    if resp.status_code == 416:
        raise TransientRemoteError(f"{what}: the session expected another range")
    if resp.status_code == 404:
        raise TransientRemoteError(f"{what}: the upload session is gone")
    raise graph_error(resp, what)


async def _status(remote: OneDriveRemote, record: SessionRecord, what: str) -> int | None:
    """Where the session stands (the next byte it expects); None if it is gone."""
    try:
        resp = await remote.http.call(what, "GET", record.url, ok=(200,), auth=False)
    except RemoteNotFound:
        return None
    ranges = resp.json().get("nextExpectedRanges") or []
    try:
        return int(str(ranges[0]).split("-")[0]) if ranges else None
    except ValueError:
        return None


async def _realign(remote: OneDriveRemote, progress: _Progress, data: bytes, what: str) -> bool:
    """After a fragment failed: continue from where the session stands (anywhere from the
    acknowledged offset to the end of the fragment in flight: Graph may keep part of a
    fragment); True if it got further.  Anything else raises: the upload starts over."""
    record = progress.record
    at = await _status(remote, record, what)
    if at is None or not record.acked <= at <= record.sending:
        raise TransientRemoteError(f"{what}: the upload session lost its place (at {at}); starting again")
    if at == record.acked:
        return False  # resend the fragment
    sha, qx = progress.sha.copy(), progress.qx.copy()
    await remote.thread(_update, (sha, qx), data[: at - record.acked])
    progress.sha, progress.qx = sha, qx
    record.acked, record.acked_sha = at, sha.hexdigest()
    return True


async def _create(remote: OneDriveRemote, path: str, source: UploadSource, expect: Expect | str,
                  attrs: FileAttrs, what: str) -> _Progress:
    remote.sessions.drop(path)
    behaviour, headers = conditions(expect)
    item: dict[str, Any] = {"@microsoft.graph.conflictBehavior": behaviour}
    if attrs.mtime_ns is not None:
        item["fileSystemInfo"] = {"lastModifiedDateTime": format_time(attrs.mtime_ns)}
    url = item_url(remote.drive, remote.root_id, path, "createUploadSession")
    try:
        try:
            resp = await remote.http.call(what, "POST", url, ok=(200,), headers=headers, json={"item": item})
        except RemoteNotFound:
            if isinstance(expect, str):
                raise PreconditionFailed(f"{what}: the revision expected is gone") from None
            await remote.mkdir(_parent(path))
            resp = await remote.http.call(what, "POST", url, ok=(200,), headers=headers, json={"item": item})
    except RemoteError as exc:
        raise refused(exc, expect, what) from None
    body = resp.json()
    record = SessionRecord(path, body["uploadUrl"], source.size, expect_key(expect), created=time.time(),
                           expires=_expires(body.get("expirationDateTime")))
    return _Progress(record, hashlib.sha256(), QuickXorHash())


def _expires(text: str | None) -> float:
    return parse_time(text) / 1e9


async def _resume(remote: OneDriveRemote, path: str, source: UploadSource, expect: Expect | str,
                  what: str) -> _Progress | None:
    """The session a crashed or failed earlier upload of the same bytes left, where it stands
    (``upload_sessions.resume_hashes``)."""
    record = await remote.thread(remote.sessions.load, path)
    if record is None:
        return None
    if record.size != source.size or record.expect != expect_key(expect):
        await _cancel(remote, record)
        return None
    at = await _status(remote, record, what)
    if at is None or not record.acked <= at <= record.sending or at >= source.size:
        await _cancel(remote, record)
        return None
    hashes = await remote.thread(resume_hashes, record, source, at, (QuickXorHash(),))
    if hashes is None:
        log.info("%s: the file changed since the interrupted upload; starting again", what)
        await _cancel(remote, record)
        return None
    log.info("%s: resuming an interrupted upload at byte %d of %d", what, at, source.size)
    return _Progress(record, hashes[0], hashes[1])


async def _cancel(remote: OneDriveRemote, record: SessionRecord) -> None:
    """Forget a session (shielded: also on cancellation); a failure to delete it on the
    server only leaves it to expire there."""
    with trio.CancelScope(shield=True), trio.move_on_after(10):
        remote.sessions.drop(record.path)
        try:
            await remote.http.once("cancel upload session", "DELETE", record.url, ok=(204, 404), auth=False)
        except RemoteError:
            pass
