"""Google Drive and shared drives as a remote.

URLs: ``gdrive://my-drive/PATH`` (the account's My Drive) and
``gdrive://shared/DRIVE_NAME_OR_ID/PATH`` (a shared drive, by name or id).  PATH is a
folder that must exist; ``""`` is the drive's root.  Sign-in: ``gdrive_auth``
(``cloudgw login``, or a service account); requests, quotas and the error map:
``gdrive_http``; uploads: ``gdrive_upload``; Docs: ``gdrive_exports``.

Identity is the file id; paths are what the mount shows.  Every folder's children are
named by ``gdrive_names.display_names`` (duplicates get serial suffixes by age, Docs the
extension they are exported as, ``/`` shows as ``∕``), so each operation on a path first
lists the parent folder (one request, fresh: the name -> id mapping is never taken from
an old listing for a change) and acts on the id the name stands for.  Folder ids by path
are cached (a folder's id never changes); the cache is dropped whenever the change feed
reports a folder (renamed, moved, trashed elsewhere).  Window: between such a change
and the next poll, a write below the old path lands in the folder where it now is (by id).

Layout: files as they are (mtime in ``modifiedTime``; mode/uid/gid not kept); a symlink is
the small file ``NAME.cloudgw-symlink``; a Drive shortcut shows as a symlink to its
target's path when the target is inside the mount, else to its Drive URL; Google Docs,
Sheets, Slides and Drawings show as exported files (read-only: revisions ``ro:...``);
other Google types (Forms, Sites, Maps) are not shown.  Deletes move files to the Drive
trash (recoverable for 30 days) unless ``trash = false``.

Revisions: ``headRevisionId`` for files with content (content hash: MD5); for Docs
``ro:`` + ``modifiedTime`` (an edit changes it, a rename does not); for shortcuts the
target id.  Conditions: Drive has no conditional requests: every write, delete and rename
checks the revision right before it commits (``gdrive_upload``): a change that lands in
the one request between is overwritten (it stays in the file's revision history).

Change feed: ``changes.list`` from a ``getStartPageToken`` taken before the initial
listing; the cursor is the page token.  Items are reported by id and parent id; the
folders a change touches are listed again, so duplicates renumbered by another file's
arrival or departure are reported too (as renames, same id).  Trashed and removed files
are removals; a parent outside the mounted folder (checked by ancestry, cached) is a
removal from the mount.

Concurrency: calls run in worker threads (``gdrive_http``); operations on different paths
are independent; the sync engine serialises operations on one path.  Crash behaviour:
multipart uploads are atomic; resumable sessions commit with the last chunk and resume
after a crash (``gdrive_upload``); ``rename`` over an existing file moves first and then
trashes the replaced file, so a crash between leaves both (the replaced one as a
duplicate), never neither.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import logging
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Collection, Mapping

import trio

from cloudgw.errors import (LoginRequired, PreconditionFailed, RemoteError, RemoteExists, RemoteNotEmpty,
                            RemoteNotFound, RemotePermissionDenied, RemoteUnsupported, UserError)
from cloudgw.remotes import gdrive_names
from cloudgw.remotes.base import (READ_ONLY_REV, BytesSource, Capabilities, Change, Expect, FileAttrs, Kind,
                                  RemoteEntry, StreamedReads, UploadSource)
from cloudgw.remotes.gdrive_auth import DriveAuth
from cloudgw.remotes.gdrive_exports import ExportStore
from cloudgw.remotes.gdrive_http import DriveHttp
from cloudgw.remotes.gdrive_names import FOLDER_MIME, GOOGLE_APPS, SHORTCUT_MIME, Child
from cloudgw.remotes.gdrive_upload import Target, Uploader, checked_chunk_size
from cloudgw.remotes.registry import Common, Option, RemoteType, RemoteURL, masked_url
from cloudgw.remotes.symlinks import decode_target, encode_target, is_link_object, link_name, link_object
from cloudgw.remotes.upload_sessions import SessionRecords
from cloudgw.remotes.util import PathLocks, SpooledSource, remote_error, split_path

log = logging.getLogger(__name__)

API_URL = "https://www.googleapis.com/drive/v3/"
FILE_FIELDS = ("id,name,mimeType,parents,trashed,createdTime,modifiedTime,size,md5Checksum,headRevisionId,"
               "shortcutDetails(targetId,targetMimeType),exportLinks")
LIST_FIELDS = f"nextPageToken,incompleteSearch,files({FILE_FIELDS})"
CHANGE_FIELDS = f"nextPageToken,newStartPageToken,changes(fileId,removed,file({FILE_FIELDS}))"
READ_ONLY = READ_ONLY_REV  # revisions of exported Docs: the filesystem refuses writes
PIECE = 1 << 20
SESSIONS = "upload-sessions"
EXPORTS = "gdrive-exports"
MAX_DEPTH = 100  # ancestry walks give up beyond this (a cycle would be a Drive bug)
OPEN_URL = "https://drive.google.com/open?id="


@dataclasses.dataclass(frozen=True)
class Place:
    kind: str  # "my-drive" or "shared"
    drive: str = ""  # a shared drive's name or id
    folder: str = ""  # the mounted folder's path in the drive (Drive names, '/'-separated)

    def describe(self) -> str:
        if self.kind == "shared":
            return f"gdrive://shared/{self.drive}/{self.folder}"
        return f"gdrive://my-drive/{self.folder}"


@dataclasses.dataclass
class Listing:
    """One folder's children, fresh from Drive, with the names the mount shows."""

    folder_id: str
    files: dict[str, dict]  # id -> files resource
    names: dict[str, str]  # id -> display name

    def find(self, name: str) -> dict | None:
        for file_id, shown in self.names.items():
            if shown == name:
                return self.files[file_id]
        return None


class GDriveRemote(StreamedReads):
    """A folder of My Drive or of a shared drive as a remote; see the module docstring."""

    def __init__(self, place: Place, http: DriveHttp, *, state_dir: Path | None = None, chunk_size: int = 8 << 20,
                 trash: bool = True, formats: Mapping[str, tuple[str, str]] = gdrive_names.EXPORT_FORMATS) -> None:
        self.place = place
        self.http = http
        self.trash = trash
        self.formats = dict(formats)
        self.sessions = SessionRecords(state_dir / SESSIONS if state_dir is not None else None)
        self.exports = ExportStore(state_dir / EXPORTS if state_dir is not None else None)
        self.drive_id = ""  # a shared drive's id (check())
        self.root_id = ""  # the mounted folder's id (check())
        self.params: dict[str, Any] = {"supportsAllDrives": True}
        self.uploader = Uploader(http, self.sessions, checked_chunk_size(chunk_size), FILE_FIELDS,
                                 {"supportsAllDrives": "true"})
        self.capabilities = Capabilities(
            hash_kind="md5", conditional_write=False, server_side_copy=False, streaming_reads=True,
            native_symlinks=False, case_sensitive=True, keeps_mtime=True, change_feed=True, dir_rename=True,
            stable_ids=True)
        self._folders: dict[str, str] = {}  # mount path -> folder id
        self._parents: dict[str, str | None] = {}  # folder id -> its parent's id (ancestry)
        self._placed: dict[str, str] = {}  # file id -> the folder it was last listed in
        self._warned_read_only: set[str] = set()
        self._export_failed: set[str] = set()  # Docs whose failed export was said (once each)
        self._folders_generation = 0  # bumped when the feed drops the folder cache
        self._locks = PathLocks()  # writers of one path (and creators of one folder) take turns

    def __repr__(self) -> str:
        return f"GDriveRemote({self.place.describe()!r})"

    def display(self, path: str) -> str:
        return self.place.describe().rstrip("/") + "/" + path

    def _ready(self) -> None:
        if not self.root_id:
            raise RemoteError(f"{self.place.describe()}: not checked yet (check() finds the folder)")

    # -- finding the folder -------------------------------------------------------------

    async def check(self) -> None:
        where = self.place.describe()
        try:
            if self.place.kind == "shared":
                self.drive_id = await self._shared_drive()
                start = self.drive_id
            else:
                start = (await self.http.api(f"{where}: find My Drive",
                                             lambda s: s.files().get(fileId="root", fields="id")))["id"]
            self.root_id = start
            self._folders = {"": start}
            folder_id = start
            for part in split_path(self.place.folder):
                listing = await self._list_folder(folder_id, where)
                found = [f for f in listing.files.values() if f.get("name") == part and f["mimeType"] == FOLDER_MIME]
                if not found:
                    raise UserError(f"{where}: no such folder (create it first)")
                folder_id = min(found, key=lambda f: (f.get("createdTime", ""), f["id"]))["id"]
        except (RemotePermissionDenied, LoginRequired) as exc:
            raise UserError(f"{where}: {exc}") from None
        except RemoteNotFound:
            raise UserError(f"{where}: no such drive or folder") from None
        self.root_id = folder_id
        self._folders = {"": folder_id}

    async def _shared_drive(self) -> str:
        where, wanted = self.place.describe(), self.place.drive
        token: str | None = None
        while True:
            page = await self.http.api(f"{where}: find the shared drive", lambda s: s.drives().list(
                pageSize=100, pageToken=token, fields="nextPageToken,drives(id,name)"))
            for drive in page.get("drives", []):
                if wanted in (drive.get("id"), drive.get("name")):
                    return str(drive["id"])
            token = page.get("nextPageToken")
            if not token:
                raise UserError(f"{where}: no shared drive named {wanted!r} is visible to this account")

    # -- listings and names -------------------------------------------------------------

    def _corpus(self) -> dict[str, Any]:
        if self.drive_id:
            return {"corpora": "drive", "driveId": self.drive_id, "includeItemsFromAllDrives": True,
                    "supportsAllDrives": True}
        return {"supportsAllDrives": True}

    async def _list_folder(self, folder_id: str, what: str) -> Listing:
        """The folder's children now (every page), named as the mount shows them."""
        files: dict[str, dict] = {}
        token: str | None = None
        query = f"'{_quoted(folder_id)}' in parents and trashed = false"
        while True:
            page = await self.http.api(what, lambda s: s.files().list(
                q=query, pageSize=1000, pageToken=token, fields=LIST_FIELDS, spaces="drive", **self._corpus()))
            for file in page.get("files", []):
                if self._shown_kind(file) is not None:
                    files[file["id"]] = file
            token = page.get("nextPageToken")
            if not token:
                break
        names = gdrive_names.display_names((self._child(f) for f in files.values()), self.formats)
        for file_id in files:
            self._placed[file_id] = folder_id
        for file in files.values():
            if file["mimeType"] == FOLDER_MIME:
                self._parents[file["id"]] = folder_id
        return Listing(folder_id, files, names)

    def _child(self, file: dict) -> Child:
        name = str(file.get("name", ""))
        if is_link_object(name) and file["mimeType"] != FOLDER_MIME:
            name = link_name(name)
        return Child(file["id"], name, file["mimeType"], str(file.get("createdTime", "")))

    def _shown_kind(self, file: dict) -> Kind | None:
        """What ``file`` is in the mount; None: not shown (Forms, Sites, Maps ...)."""
        mime = file.get("mimeType", "")
        if mime == FOLDER_MIME:
            return Kind.DIR
        if mime == SHORTCUT_MIME or is_link_object(str(file.get("name", ""))):
            return Kind.SYMLINK
        if mime.startswith(GOOGLE_APPS):
            return Kind.FILE if mime in self.formats else None
        return Kind.FILE

    async def _folder_id(self, path: str, *, create: bool = False) -> str:
        """The id of the folder the mount shows at ``path`` (created with its parents when
        ``create``); ``RemoteNotFound`` if there is none."""
        found = self._folders.get(path)
        if found is not None:
            return found
        generation = self._folders_generation
        parent_path, _, name = path.rpartition("/")
        parent_id = await self._folder_id(parent_path, create=create)
        listing = await self._list_folder(parent_id, f"find {self.display(path)}")
        file = listing.find(name)
        if generation != self._folders_generation:  # the feed dropped the cache meanwhile: look again
            return await self._folder_id(path, create=create)
        if file is None and create:
            async with self._locks.locked("\0dir:" + path):  # one folder, not one per concurrent writer
                found = self._folders.get(path)
                if found is not None:
                    return found
                listing = await self._list_folder(parent_id, f"find {self.display(path)}")
                file = listing.find(name)
                if file is None:
                    return (await self._make_folder(parent_id, path, name))["id"]
        if file is None or file["mimeType"] != FOLDER_MIME:
            raise RemoteNotFound(f"{self.display(path)}: no such folder")
        self._folders[path] = file["id"]
        return str(file["id"])

    async def _lookup(self, path: str, what: str) -> tuple[str, Listing, dict | None]:
        """(the parent folder's id, its fresh listing, the file shown at ``path`` or None)."""
        parent_path, _, name = path.rpartition("/")
        parent_id = await self._folder_id(parent_path)
        listing = await self._list_folder(parent_id, what)
        return parent_id, listing, listing.find(name)

    # -- entries --------------------------------------------------------------------------

    def rev_of(self, file: dict) -> str | None:
        mime = file.get("mimeType", "")
        if mime == FOLDER_MIME:
            return None
        if mime == SHORTCUT_MIME:
            return "shortcut:" + str((file.get("shortcutDetails") or {}).get("targetId", ""))
        if mime.startswith(GOOGLE_APPS):
            return READ_ONLY + str(file.get("modifiedTime", ""))
        return file.get("headRevisionId") or file.get("md5Checksum") or None

    async def _entry(self, path: str, file: dict) -> RemoteEntry | None:
        kind = self._shown_kind(file)
        if kind is None:
            return None
        mtime = _parse_time(file.get("modifiedTime"))
        if kind is Kind.DIR:
            return RemoteEntry(path, Kind.DIR, 0, mtime, None, FileAttrs(mtime_ns=mtime), id=file["id"])
        size = int(file.get("size") or 0)
        mime = file["mimeType"]
        if mime == SHORTCUT_MIME:
            size = 0
        elif mime.startswith(GOOGLE_APPS):
            copy = await self.exports.get(self.http, file, *self.formats[mime], what=f"export {self.display(path)}")
            size = copy.stat().st_size
        return RemoteEntry(path, kind, size, mtime, self.rev_of(file), FileAttrs(mtime_ns=mtime), id=file["id"],
                           hash=file.get("md5Checksum") if kind is Kind.FILE else None)

    async def _export_all(self, listing: Listing, folder: str | None) -> None:
        """Export the folder's Docs not kept yet, a few at a time (their sizes are listed)."""
        docs = [f for f in listing.files.values() if f["mimeType"] in self.formats
                and self.exports.size(f["id"], str(f.get("modifiedTime", "")), self.formats[f["mimeType"]][1]) is None]
        if len(docs) < 2:
            return
        limiter = trio.CapacityLimiter(4)

        async def export(file: dict) -> None:
            async with limiter:
                with contextlib.suppress(RemoteError):  # said and skipped by _listed_entry
                    name = listing.names[file["id"]]
                    where = self.display(f"{folder}/{name}" if folder else name) if folder is not None else name
                    await self.exports.get(self.http, file, *self.formats[file["mimeType"]], what=f"export {where}")

        async with trio.open_nursery() as nursery:
            for file in docs:
                nursery.start_soon(export, file)

    async def _listed_entry(self, path: str, file: dict) -> RemoteEntry | None:
        """``_entry`` for a listing or the feed: a Doc Drive does not export (now) is left out
        with one WARNING instead of failing the whole listing -- it shows once an export
        works (the next listing of its folder, or its next change)."""
        try:
            return await self._entry(path, file)
        except RemoteError as exc:
            if file["mimeType"] not in self.formats:
                raise
            if file["id"] not in self._export_failed:
                self._export_failed.add(file["id"])
                log.warning("%s: not shown, its export failed: %s", self.display(path), exc)
            return None

    async def stat(self, path: str) -> RemoteEntry:
        if not split_path(path):
            return RemoteEntry("", Kind.DIR, 0, 0, None, id=self.root_id)
        try:
            _, _, file = await self._lookup(path, f"stat {self.display(path)}")
        except RemoteNotFound:
            file = None
        entry = await self._entry(path, file) if file is not None else None
        if entry is None:
            raise RemoteNotFound(f"stat {self.display(path)}: no such file or directory")
        return entry

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        split_path(path)
        self._ready()
        folders = [(path, await self._folder_id(path))]
        while folders:
            folder, folder_id = folders.pop()
            listing = await self._list_folder(folder_id, f"list {self.display(folder)}")
            await self._export_all(listing, folder)
            for file_id, name in sorted(listing.names.items(), key=lambda item: item[1]):
                child = f"{folder}/{name}" if folder else name
                entry = await self._listed_entry(child, listing.files[file_id])
                if entry is None:
                    continue
                if entry.kind is Kind.DIR:
                    self._folders[child] = file_id
                    if recursive:
                        folders.append((child, file_id))
                yield entry

    # -- reading ----------------------------------------------------------------------------

    async def _current(self, path: str, rev: str | None, what: str) -> dict:
        """The file at ``path`` now, at revision ``rev`` if given (else ``PreconditionFailed``)."""
        try:
            _, _, file = await self._lookup(path, what)
        except RemoteNotFound:
            file = None
        if file is None or file["mimeType"] == FOLDER_MIME:
            if rev is not None:  # the revision expected is gone (as a change made elsewhere)
                raise PreconditionFailed(f"{what}: expected revision {rev}, but it is gone")
            raise RemoteNotFound(f"{what}: no such file")
        if rev is not None and self.rev_of(file) != rev:
            raise PreconditionFailed(f"{what}: changed (expected revision {rev})")
        return file

    async def read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                        rev: str | None = None) -> None:
        """A ranged ``alt=media`` GET streamed to ``sink``.  Drive cannot pin a download to a
        revision, so the revision is read before and after: a change in between is a
        ``PreconditionFailed`` (the caller drops what it got).  Docs are read from their
        exported copy."""
        what = f"read {self.display(path)}"
        split_path(path)
        try:
            await self._read_into(path, offset, length, sink, rev, what)
        except RemoteNotFound:
            if rev is None:
                raise
            raise PreconditionFailed(f"{what}: expected revision {rev}, but it is gone (deleted meanwhile)") from None

    async def _read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], rev: str | None,
                         what: str) -> None:
        file = await self._current(path, rev, what)
        mime = file["mimeType"]
        if mime.startswith(GOOGLE_APPS):
            if mime not in self.formats:
                raise RemoteUnsupported(f"{what}: not a file with content")
            copy = await self.exports.get(self.http, file, *self.formats[mime], what=what)
            data = await trio.to_thread.run_sync(_read_slice, copy, offset, length)
            if data:
                sink(data)
            return
        size = int(file.get("size") or 0)
        if length <= 0 or offset >= size:
            return
        end = min(offset + length, size)
        url = f"{self.http.api_url}files/{urllib.parse.quote(file['id'])}?alt=media&supportsAllDrives=true"
        pos = offset
        while pos < end:
            start = pos

            async def stretch() -> None:
                nonlocal pos
                async with self.http.stream(what, url, {"Range": f"bytes={pos}-{end - 1}"}) as resp:
                    if resp.status_code == 416:
                        pos = end
                        return
                    if resp.status_code == 200 and pos != 0:
                        raise RemoteError(f"{what}: the server ignored the range")
                    async for chunk in resp.aiter_bytes(PIECE):
                        piece = chunk[: end - pos]
                        if piece:
                            sink(piece)
                            pos += len(piece)
                        if pos >= end:
                            break
                    if pos < end and pos == start:
                        pos = end  # nothing more: the file is shorter now (the after-check decides)

            await self.http.retried(what, stretch)
        after = await self.http.api(what, lambda s: s.files().get(fileId=file["id"], fields="headRevisionId,trashed",
                                                                 supportsAllDrives=True))
        if after.get("headRevisionId") != file.get("headRevisionId") or after.get("trashed"):
            raise PreconditionFailed(f"{what}: changed during the read")

    # -- writing ----------------------------------------------------------------------------

    def _leaf(self, path: str, what: str) -> str:
        parts = split_path(path)
        if not parts:
            raise RemoteUnsupported(f"{what}: not possible on the root")
        if is_link_object(parts[-1]):
            raise RemoteUnsupported(f"{what} {path!r}: names ending in .cloudgw-symlink are reserved")
        return parts[-1]

    def _refuse_read_only(self, file: dict, what: str) -> None:
        mime = file.get("mimeType", "")
        if mime.startswith(GOOGLE_APPS) and mime != FOLDER_MIME:
            if file["id"] not in self._warned_read_only:
                self._warned_read_only.add(file["id"])
                log.warning("%s: a Google %s shown as an exported copy is read-only; save it under another name",
                            what, mime.removeprefix(GOOGLE_APPS))
            raise remote_error(RemotePermissionDenied, errno.EACCES, f"{what}: a Google Doc (read-only)")

    async def write(self, path: str, source: UploadSource, *, expect: Expect | str = Expect.ANY,
                    attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        name = self._leaf(path, "write")
        async with self._locks.locked(path):
            return await self._write(path, name, source, expect, attrs, link=False)

    async def _write(self, path: str, name: str, source: UploadSource, expect: Expect | str, attrs: FileAttrs, *,
                     link: bool) -> RemoteEntry:
        what = f"write {self.display(path)}"
        self.http.upload_gate(what)
        parent_path = path.rpartition("/")[0]
        try:
            parent_id = await self._folder_id(parent_path, create=not isinstance(expect, str))
        except RemoteNotFound:
            raise PreconditionFailed(f"{what}: the revision expected is gone") from None
        listing = await self._list_folder(parent_id, what)
        existing = listing.find(name)
        self._check_expect(existing, expect, what)
        if existing is not None:
            if existing["mimeType"] == FOLDER_MIME:
                raise remote_error(RemoteError, errno.EISDIR, f"{what}: a folder has that name")
            self._refuse_read_only(existing, what)
            if link != is_link_object(str(existing.get("name", ""))):
                raise RemoteExists(f"{what}: a {'file' if link else 'symlink'} has that name")
        drive_name = _drive_name(name) + (".cloudgw-symlink" if link else "")
        mtime = _format_time(attrs.mtime_ns) if attrs.mtime_ns is not None else None
        target = Target(existing["id"] if existing else None, parent_id, drive_name, mtime)
        expected_rev = self.rev_of(existing) if existing is not None else None

        async def still_expected() -> None:
            if target.file_id is not None:
                now = await self.http.api(what, lambda s: s.files().get(
                    fileId=target.file_id, fields="headRevisionId,md5Checksum,trashed", supportsAllDrives=True))
                if now.get("trashed") or (expect is not Expect.ANY and self.rev_of(
                        {"mimeType": "", **now}) != expected_rev):
                    raise PreconditionFailed(f"{what}: changed elsewhere meanwhile")
            elif expect is Expect.ABSENT:  # one small query, not the folder again
                query = (f"name = '{_quoted(drive_name)}' and '{_quoted(parent_id)}' in parents and trashed = false")
                again = await self.http.api(what, lambda s: s.files().list(
                    q=query, pageSize=1, fields="files(id)", spaces="drive", **self._corpus()))
                if again.get("files"):
                    raise PreconditionFailed(f"{what}: created elsewhere meanwhile")

        key = path + ("\0link" if link else "")
        file = await self.uploader.upload(key, target, source, _expect_key(expect), what, still_expected)
        self._placed[file["id"]] = parent_id
        entry = await self._entry(path, file)
        assert entry is not None
        return entry

    def _check_expect(self, existing: dict | None, expect: Expect | str, what: str) -> None:
        if expect is Expect.ABSENT and existing is not None:
            raise PreconditionFailed(f"{what}: something is already there")
        if isinstance(expect, str) and (existing is None or self.rev_of(existing) != expect):
            raise PreconditionFailed(f"{what}: changed elsewhere (expected revision {expect})")

    async def _make_folder(self, parent_id: str, path: str, name: str) -> dict:
        body = {"name": _drive_name(name), "mimeType": FOLDER_MIME, "parents": [parent_id]}
        folder = await self.http.api(f"mkdir {self.display(path)}", lambda s: s.files().create(
            body=body, fields=FILE_FIELDS, supportsAllDrives=True))
        self._folders[path] = folder["id"]
        self._parents[folder["id"]] = parent_id
        return folder

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        if not split_path(path):
            return RemoteEntry("", Kind.DIR, 0, 0, None, id=self.root_id)
        what = f"mkdir {self.display(path)}"
        parent_path, _, name = path.rpartition("/")
        parent_id = await self._folder_id(parent_path, create=True)
        async with self._locks.locked("\0dir:" + path):
            return await self._mkdir(path, name, parent_id, what)

    async def _mkdir(self, path: str, name: str, parent_id: str, what: str) -> RemoteEntry:
        listing = await self._list_folder(parent_id, what)
        existing = listing.find(name)
        if existing is not None:
            if existing["mimeType"] != FOLDER_MIME:
                raise remote_error(RemoteExists, errno.EEXIST, f"{what}: a file has that name")
            self._folders[path] = existing["id"]
            folder = existing
        else:
            folder = await self._make_folder(parent_id, path, name)
        entry = await self._entry(path, folder)
        assert entry is not None
        return entry

    async def _remove(self, file: dict, what: str) -> None:
        """Move ``file`` to the trash (or delete it for good with ``trash = false``)."""
        if self.trash:
            await self.http.api(what, lambda s: s.files().update(fileId=file["id"], body={"trashed": True},
                                                                 fields="id", supportsAllDrives=True))
        else:
            try:
                await self.http.api(what, lambda s: s.files().delete(fileId=file["id"], supportsAllDrives=True))
            except RemoteNotFound:
                pass
        self._placed.pop(file["id"], None)

    async def rmdir(self, path: str) -> None:
        self._leaf(path, "rmdir")
        what = f"rmdir {self.display(path)}"
        try:
            _, _, found = await self._lookup(path, what)
        except RemoteNotFound:
            return
        if found is None:
            return
        if found["mimeType"] != FOLDER_MIME:
            raise remote_error(RemoteError, errno.ENOTDIR, f"{what}: not a folder")
        inside = await self._list_folder(found["id"], what)
        if inside.files:
            raise RemoteNotEmpty(f"{what}: not empty")
        await self._remove(found, what)
        self._forget_folders(path)

    def _forget_folders(self, path: str) -> None:
        for cached in [p for p in self._folders if p == path or p.startswith(path + "/")]:
            del self._folders[cached]

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        """Trash (or delete) the file or symlink at ``path``; never a folder (EISDIR)."""
        self._leaf(path, "delete")
        async with self._locks.locked(path):
            await self._delete(path, expect)

    async def _delete(self, path: str, expect: str | None) -> None:
        what = f"delete {self.display(path)}"
        try:
            _, listing, file = await self._lookup(path, what)
        except RemoteNotFound:
            return  # absent: fine (idempotent), also with an expectation
        file = self._expected(listing, file, expect)
        if file is None:
            return
        if file["mimeType"] == FOLDER_MIME:
            raise remote_error(RemoteError, errno.EISDIR, f"{what}: a folder (rmdir removes folders)")
        if expect is not None and self.rev_of(file) != expect:
            raise PreconditionFailed(f"{what}: expected revision {expect}, found {self.rev_of(file)}")
        await self._remove(file, what)

    def _expected(self, listing: Listing, file: dict | None, expect: str | None) -> dict | None:
        """The file an operation conditional on ``expect`` means: the one shown at the name,
        or -- when that one has another revision -- the sibling that has ``expect``.  Numbered
        duplicates shift when one of them goes elsewhere, and until the next poll the mount
        still shows the old numbers: ``mv 'report (1).pdf' x`` must move the file it showed
        as ``report (1).pdf``, not the one that moved up into that name."""
        if expect is None or (file is not None and self.rev_of(file) == expect):
            return file
        for sibling in listing.files.values():
            if self.rev_of(sibling) == expect and sibling["mimeType"] != FOLDER_MIME:
                return sibling
        return file  # (then: PreconditionFailed, as for a file changed elsewhere; or not found)

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        """One PATCH (name, and parents when the folder changes); a file shown at ``dst`` is
        trashed after the move (both exist for a moment, never neither); an empty folder at
        ``dst`` first.  A Doc keeps its Drive name without the export extension."""
        self._leaf(src, "rename")
        dst_name = self._leaf(dst, "rename")
        first, second = sorted((src, dst))
        async with self._locks.locked(first), contextlib.AsyncExitStack() as stack:
            if second != first:
                await stack.enter_async_context(self._locks.locked(second))
            return await self._rename(src, dst, dst_name, expect)

    async def _rename(self, src: str, dst: str, dst_name: str, expect: str | None) -> RemoteEntry:
        what = f"rename {self.display(src)} -> {self.display(dst)}"
        src_parent, src_listing, file = await self._lookup(src, what)
        file = self._expected(src_listing, file, expect)
        if file is None:
            raise RemoteNotFound(f"{what}: no such file or directory")
        if expect is not None and self.rev_of(file) != expect:
            raise PreconditionFailed(f"{what}: expected revision {expect}")
        dst_parent_path = dst.rpartition("/")[0]
        dst_parent = await self._folder_id(dst_parent_path, create=True)
        listing = await self._list_folder(dst_parent, what)
        existing = listing.find(dst_name)
        replaced: dict | None = None
        if existing is not None and existing["id"] != file["id"]:
            if existing["mimeType"] == FOLDER_MIME:
                if file["mimeType"] != FOLDER_MIME:
                    raise remote_error(RemoteError, errno.EISDIR, f"{what}: the target is a folder")
                if (await self._list_folder(existing["id"], what)).files:
                    raise RemoteNotEmpty(f"{what}: the target is a folder that is not empty")
                await self._remove(existing, what)
                self._forget_folders(dst)
            elif file["mimeType"] == FOLDER_MIME:
                raise remote_error(RemoteError, errno.ENOTDIR, f"{what}: the target is a file")
            else:
                replaced = existing
        new_name = _drive_name(dst_name)
        if is_link_object(str(file.get("name", ""))) and file["mimeType"] != FOLDER_MIME:
            new_name = link_object(new_name)
        extension = gdrive_names.exported_extension(file["mimeType"], self.formats)
        if extension and new_name.lower().endswith("." + extension):
            new_name = new_name[: -len(extension) - 1]
        moves: dict[str, Any] = {}
        if dst_parent != src_parent:
            moves = {"addParents": dst_parent, "removeParents": src_parent}
        moved = await self.http.api(what, lambda s: s.files().update(
            fileId=file["id"], body={"name": new_name}, fields=FILE_FIELDS, supportsAllDrives=True, **moves))
        if file["mimeType"] == FOLDER_MIME:
            self._forget_folders(src)
            self._folders[dst] = moved["id"]
            self._parents[moved["id"]] = dst_parent
        self._placed[moved["id"]] = dst_parent
        if replaced is not None:
            await self._remove(replaced, what)
        entry = await self._entry(dst, moved)
        assert entry is not None
        return entry

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        """A download pinned to ``rev`` (else to the revision found; ``PreconditionFailed`` if
        the source is at another) and an upload with ``expect`` (``write``'s conditions and
        window), through a temporary file: never the whole file in memory."""
        entry = await self.stat(src)
        if entry.kind is not Kind.FILE:
            raise RemoteUnsupported(f"copy {self.display(src)}: not a file")
        with tempfile.TemporaryFile() as spool:
            await self.read_into(src, 0, entry.size, spool.write, rev=entry.rev if rev is None else rev)
            return await self.write(dst, SpooledSource(spool, entry.size), expect=expect,
                                    attrs=FileAttrs(mtime_ns=entry.mtime_ns or None))

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        name = self._leaf(path, "symlink")
        try:
            async with self._locks.locked(path):
                entry = await self._write(path, name, BytesSource(encode_target(target)), Expect.ABSENT,
                                          FileAttrs(), link=True)
        except PreconditionFailed:
            raise RemoteExists(f"symlink {self.display(path)}: already exists") from None
        return dataclasses.replace(entry, kind=Kind.SYMLINK, symlink_target=target)

    async def readlink(self, path: str) -> str:
        self._leaf(path, "readlink")
        what = f"readlink {self.display(path)}"
        _, _, file = await self._lookup(path, what)
        if file is None:
            raise RemoteNotFound(f"{what}: no such file or directory")
        if file["mimeType"] == SHORTCUT_MIME:
            return await self._shortcut_target(path, file)
        if not is_link_object(str(file.get("name", ""))):
            raise remote_error(RemoteError, errno.EINVAL, f"{what}: not a symlink")
        body: list[bytes] = []
        url = f"{self.http.api_url}files/{urllib.parse.quote(file['id'])}?alt=media&supportsAllDrives=true"
        async with self.http.stream(what, url, {}) as resp:
            async for chunk in resp.aiter_bytes(PIECE):
                body.append(chunk)
        return decode_target(b"".join(body))

    async def _shortcut_target(self, path: str, file: dict) -> str:
        """The relative path of a shortcut's target inside the mount, else its Drive URL."""
        target_id = str((file.get("shortcutDetails") or {}).get("targetId", ""))
        where = await self._path_of(target_id)
        if where is None:
            return OPEN_URL + target_id
        depth = len(split_path(path)) - 1
        return "/".join([".."] * depth + ([where] if where else ["."])) if depth else (where or ".")

    async def _path_of(self, file_id: str) -> str | None:
        """The mount path of ``file_id`` (its parents' listings name it), None outside the mount."""
        names: list[str] = []
        current = file_id
        for _ in range(MAX_DEPTH):
            if current == self.root_id:
                return "/".join(reversed(names))
            try:
                file = await self.http.api("find a shortcut's target", lambda s: s.files().get(
                    fileId=current, fields="id,parents,trashed", supportsAllDrives=True))
            except RemoteNotFound:
                return None
            parents = file.get("parents") or []
            if file.get("trashed") or not parents:
                return None
            listing = await self._list_folder(parents[0], "find a shortcut's target")
            if current not in listing.names:
                return None
            names.append(listing.names[current])
            current = parents[0]
        return None

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        """Forget recorded sessions older than Drive keeps them; a session of one of ``paths``
        that is still valid is kept (the next upload of that path resumes from it).  Drive
        drops unfinished sessions by itself: nothing to delete there."""
        now, removed = time.time(), 0
        for record in await trio.to_thread.run_sync(self.sessions.all):
            if record.expires <= now:
                self.uploader.cancel(record)
                removed += 1
        return removed

    # -- the change feed --------------------------------------------------------------------

    def _change_corpus(self) -> dict[str, Any]:
        if self.drive_id:
            return {"driveId": self.drive_id, "supportsAllDrives": True, "includeItemsFromAllDrives": True}
        return {"supportsAllDrives": True}

    async def change_cursor(self) -> str:
        self._ready()
        kwargs = {"driveId": self.drive_id, "supportsAllDrives": True} if self.drive_id else {}
        answer = await self.http.api("changes (start)", lambda s: s.changes().getStartPageToken(**kwargs))
        return str(answer["startPageToken"])

    async def changes(self, cursor: str) -> tuple[list[Change], str]:
        self._ready()
        latest: dict[str, dict] = {}
        token = cursor
        while True:
            page = await self.http.api("changes", lambda s: s.changes().list(
                pageToken=token, pageSize=1000, includeRemoved=True, fields=CHANGE_FIELDS, spaces="drive",
                **self._change_corpus()))
            for change in page.get("changes", []):
                file_id = change.get("fileId")
                if file_id:
                    latest.pop(file_id, None)
                    latest[file_id] = change
            if page.get("nextPageToken"):
                token = page["nextPageToken"]
            elif page.get("newStartPageToken"):
                new_cursor = str(page["newStartPageToken"])
                break
            else:
                raise RemoteError("changes: a page with neither nextPageToken nor newStartPageToken")
        if not latest:
            return [], new_cursor
        return await self._changes_of(latest), new_cursor

    async def _changes_of(self, latest: dict[str, dict]) -> list[Change]:
        """Removals first, then every child of each folder a change touched, with the names
        the folder shows now: a duplicate renumbered because another file came or went is
        reported too (a rename, same id).  All children, not only those whose name changed:
        what was reported before is not remembered (it may not have been applied: a crash,
        a failed poll), so the engine compares (an unchanged child costs it one lookup)."""
        removals: list[Change] = []
        touched: set[str] = set()
        for file_id, change in latest.items():
            file = change.get("file")
            parents = (file or {}).get("parents") or []
            if file is not None and file.get("mimeType") == FOLDER_MIME:
                self._folders = {"": self.root_id}  # a folder renamed, moved or gone: paths are looked up again
                self._folders_generation += 1
                self._parents[file_id] = parents[0] if parents else None
            old_parent = self._placed.get(file_id)
            if old_parent is not None:
                touched.add(old_parent)  # the duplicates it leaves may move up
            if change.get("removed") or file is None or file.get("trashed"):
                removals.append(Change(None, id=file_id))
                self.exports.drop(file_id)
                if parents:
                    touched.add(parents[0])  # (trashed: Drive still says where it was)
                continue
            if parents and await self._inside(parents[0]):
                touched.add(parents[0])
            else:
                removals.append(Change(None, id=file_id))  # outside the mounted folder (or moved out)
        found: list[Change] = []
        for folder_id in touched:
            if not await self._inside(folder_id):
                continue
            try:
                listing = await self._list_folder(folder_id, "changes: list a changed folder")
            except RemoteNotFound:
                continue
            await self._export_all(listing, None)
            parent_id = None if folder_id == self.root_id else folder_id
            for file_id, name in listing.names.items():
                entry = await self._listed_entry(name, listing.files[file_id])
                if entry is not None:
                    found.append(Change(entry, id=file_id, parent_id=parent_id))
        return removals + found

    async def _inside(self, folder_id: str) -> bool:
        """Whether ``folder_id`` is the mounted folder or below it (ancestry, cached)."""
        current: str | None = folder_id
        for _ in range(MAX_DEPTH):
            if current is None:
                return False
            if current == self.root_id:
                return True
            if current not in self._parents:
                try:
                    file = await self.http.api("changes: where is a folder", lambda s: s.files().get(
                        fileId=current, fields="id,parents,trashed", supportsAllDrives=True))
                except RemoteNotFound:
                    return False
                parents = file.get("parents") or []
                self._parents[current] = None if file.get("trashed") or not parents else parents[0]
            current = self._parents[current]
        return False

    async def aclose(self) -> None:
        await self.http.aclose()


def _read_slice(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _drive_name(shown: str) -> str:
    """The Drive name a new file shown as ``shown`` gets (``gdrive_names.base_name`` reversed)."""
    if shown in ("\uff0e", "\uff0e\uff0e"):
        return "." * len(shown)
    return shown.replace("\u2215", "/")


def _expect_key(expect: Expect | str) -> str:
    return expect.value if isinstance(expect, Expect) else "rev:" + expect


def _parse_time(text: str | None) -> int:
    if not text:
        return 0
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _format_time(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1_000_000:03d}Z"


# -- the registry's entry ----------------------------------------------------------------


def place_of(url: RemoteURL) -> Place:
    parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise url.bad("invalid path")
    if url.netloc == "my-drive":
        return Place("my-drive", folder="/".join(parts))
    if url.netloc == "shared" and parts:
        return Place("shared", drive=parts[0], folder="/".join(parts[1:]))
    raise url.bad("use gdrive://my-drive/PATH or gdrive://shared/DRIVE_NAME_OR_ID/PATH")


def auth_for(url: RemoteURL, options: dict[str, Any], common: Common) -> DriveAuth:
    if options.get("service_account_file") is None and options.get("token_file") is None:
        raise UserError("token_file is not set: say where 'cloudgw login' keeps the sign-in (mode 600), "
                        "or set service_account_file")
    hint = (f"cloudgw login --config CONFIG {common.name}" if common.name else
            f"cloudgw login {masked_url(url.text)} --remote-option ... (the mount's options)")
    return DriveAuth(token_file=options.get("token_file"), client_secret_file=options.get("client_secret_file"),
                     service_account_file=options.get("service_account_file"), impersonate=options.get("impersonate"),
                     token_url=options.get("token_url"), health=common.health, name=common.name, login_hint=hint)


def export_formats(text: str | None) -> dict[str, tuple[str, str]]:
    """``export_formats = "drawing=pdf,document=odt"``: the defaults with these changed."""
    formats = dict(gdrive_names.EXPORT_FORMATS)
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        kind, _, extension = item.partition("=")
        mime = GOOGLE_APPS + kind.strip()
        extension = extension.strip().lower()
        known = EXPORT_MIME.get(extension)
        allowed = EXPORTABLE.get(kind.strip(), ())
        if mime not in formats or known is None or extension not in allowed:
            raise UserError(f"export_formats {item!r}: use KIND=EXTENSION: "
                            + "; ".join(f"{k} = {'|'.join(v)}" for k, v in EXPORTABLE.items()))
        formats[mime] = (known, extension)
    return formats


EXPORTABLE = {  # what Drive exports each editor type to (Drive: "Export MIME types for Google Workspace documents")
    "document": ("docx", "odt", "pdf", "txt"),
    "spreadsheet": ("xlsx", "ods", "pdf"),
    "presentation": ("pptx", "odp", "pdf", "txt"),
    "drawing": ("svg", "pdf", "png"),
}
EXPORT_MIME = {
    "docx": gdrive_names.EXPORT_FORMATS[GOOGLE_APPS + "document"][0],
    "xlsx": gdrive_names.EXPORT_FORMATS[GOOGLE_APPS + "spreadsheet"][0],
    "pptx": gdrive_names.EXPORT_FORMATS[GOOGLE_APPS + "presentation"][0],
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "pdf": "application/pdf",
    "svg": "image/svg+xml",
    "png": "image/png",
    "txt": "text/plain",
}


def _build(url: RemoteURL, options: dict[str, Any], common: Common) -> GDriveRemote:
    place = place_of(url)
    formats = export_formats(options.get("export_formats"))
    auth = auth_for(url, options, common)
    http = DriveHttp(options["api_url"], auth, retry_deadline=common.timeout, health=common.health, name=common.name,
                     quota_pause=options["quota_pause"])
    return GDriveRemote(place, http, state_dir=common.state_dir, chunk_size=options["chunk_size"],
                        trash=options["trash"], formats=formats)


def login(url: RemoteURL, options: dict[str, Any], common: Common, out: Any, *, no_browser: bool = False) -> str:
    """``cloudgw login``: Google's sign-in for installed apps (blocking)."""
    place_of(url)
    auth = auth_for(url, options, common)
    auth.login(out, no_browser=no_browser)
    return auth.account(options["api_url"])


REMOTE_TYPE = RemoteType(
    options=(
        Option("token_file", Path, "where 'cloudgw login' keeps the sign-in (mode 600)"),
        Option("client_secret_file", Path, "the OAuth client of type 'Desktop app' (README: Google Drive)",
               secret_file=True),
        Option("service_account_file", Path, "a Workspace service account's key instead of a sign-in",
               secret_file=True),
        Option("impersonate", str, "with service_account_file: the user to act as (domain-wide delegation)"),
        Option("api_url", str, "the Drive v3 endpoint (tests)", default=API_URL),
        Option("token_url", str, "Google's token endpoint (tests)"),
        Option("chunk_size", int, "bytes per resumable-upload chunk: a multiple of 262144 (256 KiB)",
               default=8 << 20),
        Option("trash", bool, "deletes go to the Drive trash (false: deleted for good)", default=True),
        Option("export_formats", str, "how Google Docs show, e.g. \"drawing=pdf,document=odt\" (default: docx, "
               "xlsx, pptx, svg)"),
        Option("quota_pause", float, "seconds uploads wait after Drive's daily upload limit answered",
               default=3600.0),
    ),
    build=_build,
    poll_interval=15.0,  # an idle poll is one changes.list request: 5,760 a day
    extra={"login": login},
)
