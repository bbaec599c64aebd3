"""OneDrive and SharePoint document libraries through Microsoft Graph.

URLs: ``onedrive://me/PATH`` (the signed-in user's drive), ``onedrive://drives/DRIVE_ID/PATH``
and ``sharepoint://HOST/sites/SITE/LIBRARY/PATH`` (the library is found by its name among
the site's drives).  PATH is a folder that must exist; ``""`` is the drive's root.
Sign-in: ``graph_auth`` (msal, ``cloudgw login``); HTTP, throttling and the error map:
``graph_http``; addressing, revisions and entries: ``graph_items``; uploads: ``graph_upload``.

Layout: files and folders as they are, names mapped by the OneDrive rules
(``cloudgw.remotes.names.ONEDRIVE``: case-insensitive, no ``"*:<>?\\|``, ...); a symlink is
the small file ``NAME.cloudgw-symlink`` (``cloudgw.remotes.symlinks``).  mtime is kept in
``fileSystemInfo``; mode/uid/gid are not kept.  OneNote notebooks (packages) and items
shared from other drives are not shown.

Change feed: ``root/delta`` of the drive (OneDrive for Business has delta on the root
only), followed from ``@odata.nextLink`` to ``@odata.deltaLink``; the cursor is the
deltaLink.  Items are reported by id with their parent's id (delta has no paths); the
mounted folder's own id is reported as "the root" (``parent_id`` None), items under
folders the sync engine does not know are outside the mount and ignored there.  410
(``resyncRequired``) -> ``CursorExpired``: the engine lists everything again.

Concurrency: conditions are enforced by the server at the commit (``If-Match``,
``conflictBehavior=fail``).  ``rmdir`` checks emptiness and then deletes with the
folder's eTag, which Graph does not change when entries are added: an entry created
elsewhere between the two would be deleted with the folder (a window of one request;
Graph deletes folders recursively).  ``copy`` is a download and an upload (Graph's copy
is asynchronous and cannot be made conditional).

Crash behaviour: see ``graph_upload`` (single PUTs are atomic; sessions commit with the
last fragment and resume after a crash).  ``rename`` is one PATCH, also of a folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Collection

import trio

from cloudgw.errors import (LoginRequired, PreconditionFailed, RemoteError, RemoteExists, RemoteNotEmpty,
                            RemoteNotFound, RemotePermissionDenied, RemoteUnsupported, TransientRemoteError, UserError)
from cloudgw.remotes import graph_upload
from cloudgw.remotes.base import (BytesSource, Capabilities, Change, Expect, FileAttrs, Kind, RemoteEntry,
                                  StreamedReads, UploadSource)
from cloudgw.remotes.graph_auth import GraphAuth
from cloudgw.remotes.graph_http import GraphHttp
from cloudgw.remotes.graph_items import SELECT, entry_of, format_time, item_url, quote_path
from cloudgw.remotes.names import ONEDRIVE
from cloudgw.remotes.registry import Common, Option, RemoteType, RemoteURL, masked_url
from cloudgw.remotes.symlinks import decode_target, encode_target, is_link_object, link_object
from cloudgw.remotes.upload_sessions import SessionRecords
from cloudgw.remotes.util import SpooledSource, remote_error, split_path

log = logging.getLogger(__name__)

GRAPH_URL = "https://graph.microsoft.com/v1.0"
AUTHORITY_URL = "https://login.microsoftonline.com"
PIECE = 1 << 20  # a download body is handed to the sink in pieces of at most this
SESSIONS = "upload-sessions"  # in the state folder


@dataclasses.dataclass(frozen=True)
class Place:
    """Which drive, and the mounted folder in it, as the URL says."""

    kind: str  # "me", "drive", "site"
    drive_id: str = ""
    host: str = ""
    site: str = ""  # server-relative site path: "sites/Team"
    library: str = ""
    folder: str = ""  # path of the mounted folder in the drive ("" = root)

    def describe(self) -> str:
        if self.kind == "me":
            return f"onedrive://me/{self.folder}"
        if self.kind == "drive":
            return f"onedrive://drives/{self.drive_id}/{self.folder}"
        return f"sharepoint://{self.host}/{self.site}/{self.library}/{self.folder}"


class OneDriveRemote(StreamedReads):
    """A folder of a OneDrive or SharePoint drive as a remote; see the module docstring."""

    def __init__(self, place: Place, http: GraphHttp, *, state_dir: Path | None = None,
                 fragment_size: int = 10 << 20, stale_upload_age: float = 7 * 86400.0, max_threads: int = 8) -> None:
        self.place = place
        self.http = http
        self.fragment_size = graph_upload.checked_fragment_size(fragment_size)
        self.stale_upload_age = stale_upload_age
        self.sessions = SessionRecords(state_dir / SESSIONS if state_dir is not None else None)
        self.drive = ""  # "/drives/ID", found by check()
        self.drive_type = ""
        self.root_id = ""
        self.capabilities = Capabilities(
            hash_kind="quickxor", conditional_write=True, server_side_copy=False, streaming_reads=True,
            native_symlinks=False, case_sensitive=False, keeps_mtime=True, change_feed=True, dir_rename=True,
            stable_ids=True)
        self._limiter = trio.CapacityLimiter(max_threads)

    def __repr__(self) -> str:
        return f"OneDriveRemote({self.place.describe()!r})"

    def display(self, path: str) -> str:
        return self.place.describe().rstrip("/") + "/" + path

    async def thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def url(self, path: str, nav: str = "") -> str:
        self._ready()
        return item_url(self.drive, self.root_id, path, nav)

    def _ready(self) -> None:
        if not self.root_id:
            raise RemoteError(f"{self.place.describe()}: not checked yet (check() finds the drive)")

    # -- finding the drive --------------------------------------------------------------

    async def check(self) -> None:
        place, where = self.place, self.place.describe()
        try:
            if place.kind == "me":
                drive = await self.http.get_json(f"{where}: find the drive", "/me/drive")
            elif place.kind == "drive":
                drive = await self.http.get_json(f"{where}: find the drive", f"/drives/{place.drive_id}")
            else:
                drive = await self._library()
            self.drive, self.drive_type = f"/drives/{drive['id']}", str(drive.get("driveType", ""))
            root_path = f"{self.drive}/root" + (f":/{quote_path(place.folder)}:" if place.folder else "")
            root = await self.http.get_json(f"{where}: find the folder", root_path)
        except RemoteNotFound:
            raise UserError(f"{where}: no such drive or folder (create the folder first)") from None
        except (RemotePermissionDenied, LoginRequired) as exc:
            raise UserError(f"{where}: {exc}") from None
        if "folder" not in root:
            raise UserError(f"{where}: not a folder")
        self.root_id = root["id"]

    async def _library(self) -> dict:
        place, where = self.place, self.place.describe()
        site = await self.http.get_json(f"{where}: find the site", f"/sites/{place.host}:/{place.site}")
        wanted = place.library.casefold()
        async for page in self.http.pages(f"{where}: list the libraries", f"/sites/{site['id']}/drives"):
            for drive in page.get("value", []):
                names = {str(drive.get("name", "")).casefold(),
                         urllib.parse.unquote(str(drive.get("webUrl", "")).rstrip("/").rsplit("/", 1)[-1]).casefold()}
                if wanted in names:
                    return drive
        raise UserError(f"{where}: the site has no document library named {place.library!r}")

    # -- reading the tree ---------------------------------------------------------------

    async def item(self, path: str) -> dict | None:
        try:
            return await self.http.get_json(f"stat {self.display(path)}", self.url(path) + f"?$select={SELECT}")
        except RemoteNotFound:
            return None

    def entry(self, path: str, item: dict) -> RemoteEntry:
        found = entry_of(path, item)
        if found is None:
            raise RemoteUnsupported(f"{self.display(path)}: a OneNote notebook or shared item (not shown)")
        return found

    async def stat(self, path: str) -> RemoteEntry:
        parts = split_path(path)
        if parts and is_link_object(parts[-1]):
            raise RemoteNotFound(f"stat {self.display(path)}: no such file or directory")
        item = await self.item(path)
        if item is None and parts:
            link = await self.item(link_object(path))
            if link is not None and "file" in link:
                return self.entry(link_object(path), link)
        if item is None or entry_of(path, item) is None:
            raise RemoteNotFound(f"stat {self.display(path)}: no such file or directory")
        return self.entry(path, item)

    async def children(self, path: str) -> AsyncIterator[dict]:
        url = self.url(path, "children") + f"?$top=200&$select={SELECT}"
        async for page in self.http.pages(f"list {self.display(path)}", url):
            for item in page.get("value", []):
                yield item

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        split_path(path)
        if path:
            found = await self.item(path)
            if found is None or "folder" not in found:
                raise RemoteNotFound(f"list {self.display(path)}: not a folder")
        folders = [path]
        while folders:
            folder = folders.pop()
            try:
                async for item in self.children(folder):
                    child = f"{folder}/{item['name']}" if folder else str(item["name"])
                    entry = entry_of(child, item)
                    if entry is None:
                        continue
                    if entry.kind is Kind.DIR and recursive:
                        folders.append(child)
                    yield entry
            except RemoteNotFound:
                if folder != path:
                    continue  # a subfolder removed while we walked (as file:// does)
                raise

    # -- reading content ----------------------------------------------------------------

    async def _download_url(self, path: str, rev: str | None, what: str) -> str:
        """The pre-authenticated URL of ``path``'s content (at ``rev``: ``If-Match`` on the
        redirect, so a changed file is a ``PreconditionFailed`` here).  Asked for at every
        read: a URL serves the version it was made for, even after a change."""
        headers = {"If-Match": rev} if rev else {}
        resp = await self.http.call(what, "GET", self.url(path, "content"), ok=(302, 303, 307), headers=headers)
        location = resp.headers.get("location")
        if not location:
            raise RemoteError(f"{what}: no download URL in the answer")
        return location

    async def read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                        rev: str | None = None) -> None:
        """One ranged GET of the download URL, streamed to ``sink``; a body that breaks is
        asked for again from where it broke, through the same URL (it is bound to the
        version it was made for, so the sink never gets bytes of two versions).  A URL
        refused meanwhile (expired: about an hour) is replaced by a new one only when
        ``rev`` pins the version (``If-Match``); else the read fails (``PreconditionFailed``)."""
        what = f"read {self.display(path)}"
        split_path(path)
        if length <= 0:
            if rev is not None:
                await self._download_url(path, rev, what)  # checks the revision
            return
        state = _Stream(offset, offset, offset + length)
        while not state.done:
            start = state.pos
            try:
                await self.http.retried(what, lambda: self._stretch(path, rev, state, sink, what))
            except TransientRemoteError:
                if state.pos == start:
                    raise  # no progress within the whole budget

    async def _stretch(self, path: str, rev: str | None, state: _Stream, sink: Callable[[bytes], None],
                       what: str) -> None:
        if state.url is None:
            state.url = await self._download_url(path, rev, what)
        async with self.http.stream(what, state.url, {"Range": f"bytes={state.pos}-{state.end - 1}"}) as resp:
            if resp.status_code == 416:  # at or past the end of the file
                state.done = True
                return
            if resp.status_code in (401, 403, 404, 410):  # the URL expired, or its version is gone
                state.url = None
                if rev is None and state.pos > state.start:
                    raise PreconditionFailed(f"{what}: the download link expired or the file changed during the read")
                raise TransientRemoteError(f"{what}: the download URL was refused ({resp.status_code})")
            if resp.status_code not in (200, 206):
                raise TransientRemoteError(f"{what}: {resp.status_code}")
            if resp.status_code == 200 and state.pos != 0:
                raise RemoteError(f"{what}: the server ignored the range")
            async for chunk in resp.aiter_bytes(PIECE):
                piece = chunk[: state.end - state.pos]
                if piece:
                    sink(piece)
                    state.pos += len(piece)
                if state.pos >= state.end:
                    break
            state.done = True  # all asked for, or a short body: the end of the file

    # -- writing ------------------------------------------------------------------------

    async def write(self, path: str, source: UploadSource, *, expect: Expect | str = Expect.ANY,
                    attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        self._leaf(path, "write")
        item = await graph_upload.upload(self, path, source, expect, attrs)
        return self.entry(path, await self._with_ctag(path, item))

    async def _with_ctag(self, path: str, item: dict) -> dict:
        """``item`` (our commit's answer) with its cTag, which OneDrive for Business leaves out
        of some answers: read again by id, and believed only if it is still our version
        (same eTag); else the eTag is the revision (the next poll sees what changed)."""
        if item.get("cTag") or "folder" in item:
            return item
        try:
            again = await self.http.get_json(f"stat {self.display(path)}",
                                             f"{self.drive}/items/{item['id']}?$select={SELECT}")
        except RemoteNotFound:
            again = None
        if again is not None and again.get("eTag") == item.get("eTag") and again.get("cTag"):
            return again
        return {**item, "cTag": item.get("eTag")}

    async def set_mtime(self, item: dict, mtime_ns: int) -> dict:
        """Set ``fileSystemInfo`` of exactly the version ``item`` (``If-Match`` its eTag); a
        version saved meanwhile by someone else is left alone and ``item`` returned."""
        what = f"set the modification time of {item.get('name')}"
        body = {"fileSystemInfo": {"lastModifiedDateTime": format_time(mtime_ns)}}
        headers = {"If-Match": item["eTag"]} if item.get("eTag") else {}
        try:
            resp = await self.http.call(what, "PATCH", f"{self.drive}/items/{item['id']}", ok=(200,), json=body,
                                        headers=headers)
        except (PreconditionFailed, RemoteNotFound):
            return item
        return resp.json()

    def _leaf(self, path: str, what: str) -> str:
        parts = split_path(path)
        if not parts:
            raise RemoteUnsupported(f"{what}: not possible on the root")
        if is_link_object(parts[-1]):
            raise RemoteUnsupported(f"{what} {path!r}: names ending in .cloudgw-symlink are reserved")
        return path

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        if not path:
            return RemoteEntry("", Kind.DIR, 0, 0, None, id=self.root_id)
        what = f"mkdir {self.display(path)}"
        parent, _, name = path.rpartition("/")
        body = {"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}
        for _ in range(2):
            try:
                resp = await self.http.call(what, "POST", self.url(parent, "children"), ok=(200, 201), json=body)
                return self.entry(path, resp.json())
            except RemoteExists:
                break
            except RemoteNotFound:
                await self.mkdir(parent)
        found = await self.item(path)
        if found is None or "folder" not in found:
            raise remote_error(RemoteExists, errno.EEXIST, f"{what}: a file has that name")
        return self.entry(path, found)

    async def rmdir(self, path: str) -> None:
        self._leaf(path, "rmdir")
        found = await self.item(path)
        if found is None:
            return
        if "folder" not in found:
            raise remote_error(RemoteError, errno.ENOTDIR, f"rmdir {self.display(path)}: not a folder")
        try:
            async for _ in self.children(path):
                raise RemoteNotEmpty(f"rmdir {self.display(path)}: not empty")
        except RemoteNotFound:
            return  # removed meanwhile (by its parent's removal, or elsewhere): gone is what we wanted
        await self._delete_item(found, found.get("eTag"), f"rmdir {self.display(path)}")

    async def _delete_item(self, item: dict, if_match: str | None, what: str) -> None:
        headers = {"If-Match": if_match} if if_match else {}
        await self.http.call(what, "DELETE", f"{self.drive}/items/{item['id']}", ok=(204, 404), headers=headers)

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        """Delete the file (or symlink object) at ``path``, by id and ``If-Match`` (``expect``,
        else the eTag just read): never a folder, which Graph would delete with everything
        in it (EISDIR)."""
        self._leaf(path, "delete")
        what = f"delete {self.display(path)}"
        item = await self.item(path)
        if item is None:
            item = await self.item(link_object(path))
            if item is None or "file" not in item:
                return  # absent: fine (idempotent)
        if "folder" in item:
            raise remote_error(RemoteError, errno.EISDIR, f"{what}: a folder (rmdir removes folders)")
        if expect is not None and expect not in (item.get("cTag"), item.get("eTag")):
            raise PreconditionFailed(f"{what}: expected revision {expect}, found {item.get('cTag')}")
        await self._delete_item(item, expect or item.get("eTag"), what)

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        """One PATCH (name and parent), replacing a file at ``dst`` in the same request
        (``conflictBehavior=replace``); an empty folder at ``dst`` is deleted first (``If-Match``
        its tag: on Business a folder's tags do not change with its entries, so an entry
        created in that moment would go with it).  A symlink's other representation at
        ``dst`` (``dst`` vs ``dst.cloudgw-symlink``) is deleted after the move succeeded."""
        self._leaf(src, "rename")
        self._leaf(dst, "rename")
        what = f"rename {self.display(src)} -> {self.display(dst)}"
        plain_dst = dst
        item = await self.item(src)
        if item is None:
            item = await self.item(link_object(src))
            if item is None or "file" not in item:
                raise RemoteNotFound(f"{what}: no such file or directory")
            src, dst = link_object(src), link_object(dst)
        if expect is not None and expect not in (item.get("cTag"), item.get("eTag")):
            raise PreconditionFailed(f"{what}: expected revision {expect}")
        parent_path, _, name = dst.rpartition("/")
        parent = await self.mkdir(parent_path)
        body: dict[str, Any] = {"name": name, "parentReference": {"id": parent.id}}
        existing = await self.item(dst)
        if existing is not None and existing["id"] != item["id"]:
            if "folder" in existing:
                if "folder" not in item:
                    raise remote_error(RemoteError, errno.EISDIR, f"{what}: the target is a folder")
                async for _ in self.children(dst):
                    raise RemoteNotEmpty(f"{what}: the target is a folder that is not empty")
                await self._delete_item(existing, existing.get("cTag") or existing.get("eTag"), what)
            elif "folder" in item:
                raise remote_error(RemoteError, errno.ENOTDIR, f"{what}: the target is a file")
            else:
                body["@microsoft.graph.conflictBehavior"] = "replace"
        headers = {"If-Match": expect} if expect else {}
        resp = await self.http.call(what, "PATCH", f"{self.drive}/items/{item['id']}", ok=(200,), json=body,
                                    headers=headers)
        if "file" in item:
            other_path = plain_dst if dst != plain_dst else link_object(plain_dst)
            other = await self.item(other_path)
            if other is not None and "file" in other:
                with contextlib.suppress(PreconditionFailed):
                    await self._delete_item(other, other.get("eTag"), what)
        return self.entry(dst, resp.json())

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        """A download pinned to ``rev`` (else to the revision found; ``PreconditionFailed`` if
        the source is at another) and an upload with ``expect`` (``graph_upload``'s conditions and
        window), through a temporary file: never the whole file in memory."""
        entry = await self.stat(src)
        if entry.kind is Kind.DIR:
            raise RemoteUnsupported(f"copy {self.display(src)}: a folder")
        source_path = link_object(src) if entry.kind is Kind.SYMLINK else src
        target_path = link_object(dst) if entry.kind is Kind.SYMLINK else dst
        with tempfile.TemporaryFile() as spool:  # never the whole file in memory
            await self.read_into(source_path, 0, entry.size, spool.write, rev=entry.rev if rev is None else rev)
            item = await graph_upload.upload(self, target_path, SpooledSource(spool, entry.size), expect,
                                             FileAttrs(mtime_ns=entry.mtime_ns or None))
        return self.entry(target_path, await self._with_ctag(target_path, item))

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        self._leaf(path, "symlink")
        if await self.item(path) is not None:
            raise RemoteExists(f"symlink {self.display(path)}: a file or folder has that name")
        try:
            item = await graph_upload.upload(self, link_object(path), BytesSource(encode_target(target)),
                                             Expect.ABSENT, FileAttrs())
        except PreconditionFailed:
            raise RemoteExists(f"symlink {self.display(path)}: already exists") from None
        return dataclasses.replace(self.entry(link_object(path), item), symlink_target=target)

    async def readlink(self, path: str) -> str:
        self._leaf(path, "readlink")
        try:
            body = await self.read(link_object(path), 0, 1 << 20)
        except RemoteNotFound:
            if await self.item(path) is not None:
                raise remote_error(RemoteError, errno.EINVAL, f"readlink {self.display(path)}: not a symlink") from None
            raise
        return decode_target(body)

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        """Cancel recorded upload sessions that expired or are older than ``stale_upload_age``.
        Unlike the contract's other remotes, a session of one of ``paths`` (our own upload
        a crash interrupted) is *kept* when it is still valid: it is what the next upload
        of that path resumes from.  Sessions are invisible on the drive and expire there."""
        now, removed = time.time(), 0
        for record in await self.thread(self.sessions.all):
            expired = (record.expires and record.expires <= now) or now - record.created >= self.stale_upload_age
            if expired:
                await graph_upload._cancel(self, record)
                removed += 1
        return removed

    # -- the change feed ----------------------------------------------------------------

    async def change_cursor(self) -> str:
        self._ready()
        page = await self.http.get_json("delta (latest)", f"{self.drive}/root/delta?token=latest")
        link = page.get("@odata.deltaLink")
        if not link:
            raise RemoteError("delta (latest): no deltaLink in the answer")
        return str(link)

    async def changes(self, cursor: str) -> tuple[list[Change], str]:
        self._ready()
        found: list[Change] = []
        url: str | None = cursor
        while True:
            assert url is not None
            page = await self.http.get_json("delta", url)
            for item in page.get("value", []):
                change = self._change(item)
                if change is not None:
                    found.append(change)
            if page.get("@odata.nextLink"):
                url = page["@odata.nextLink"]
            elif page.get("@odata.deltaLink"):
                return await self._with_ctags(found), str(page["@odata.deltaLink"])
            else:
                raise RemoteError("delta: a page with neither nextLink nor deltaLink")

    async def _with_ctags(self, found: list[Change]) -> list[Change]:
        """OneDrive for Business leaves the cTag out of delta items: read those items again
        (concurrently), so that a rename or move made elsewhere is not taken for a content
        change (which would drop the cache).  One request per changed file on Business."""
        missing = [i for i, c in enumerate(found) if c.entry is not None and c.entry.kind is not Kind.DIR
                   and c.entry.rev is None and c.id]
        limiter = trio.CapacityLimiter(8)

        async def fetch(index: int) -> None:
            change = found[index]
            async with limiter:
                try:
                    item = await self.http.get_json("delta: read a changed item",
                                                    f"{self.drive}/items/{change.id}?$select={SELECT}")
                except RemoteNotFound:
                    found[index] = Change(None, id=change.id, parent_id=change.parent_id)
                    return
            assert change.entry is not None
            found[index] = dataclasses.replace(change, entry=dataclasses.replace(
                change.entry, rev=item.get("cTag") or item.get("eTag"), size=int(item.get("size") or 0)))

        async with trio.open_nursery() as nursery:
            for index in missing:
                nursery.start_soon(fetch, index)
        return found

    def _change(self, item: dict) -> Change | None:
        item_id = item.get("id")
        if not item_id or item_id == self.root_id or "root" in item:
            return None
        parent = (item.get("parentReference") or {}).get("id")
        parent_id = None if parent == self.root_id else parent
        if "deleted" in item:
            return Change(None, id=item_id, parent_id=parent_id)
        entry = entry_of(str(item.get("name", "")), item)
        if entry is None:
            return Change(None, id=item_id, parent_id=parent_id)  # a package: not shown
        return Change(entry, id=item_id, parent_id=parent_id)

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclasses.dataclass
class _Stream:
    start: int
    pos: int
    end: int
    url: str | None = None  # the download URL of the version being read (pre-authenticated: never logged)
    done: bool = False


# -- the registry's entry --------------------------------------------------------------


def place_of(url: RemoteURL) -> Place:
    parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise url.bad("invalid path")
    if url.scheme == "onedrive":
        if url.netloc == "me":
            return Place("me", folder="/".join(parts))
        if url.netloc == "drives" and parts:
            return Place("drive", drive_id=parts[0], folder="/".join(parts[1:]))
        raise url.bad("use onedrive://me/PATH or onedrive://drives/DRIVE_ID/PATH")
    if not url.netloc or len(parts) < 3 or parts[0] not in ("sites", "teams"):
        raise url.bad("use sharepoint://HOST/sites/SITE/LIBRARY/PATH (or /teams/TEAM/... for a Teams site)")
    return Place("site", host=url.netloc, site=f"{parts[0]}/{parts[1]}", library=parts[2], folder="/".join(parts[3:]))


def auth_for(url: RemoteURL, options: dict[str, Any], common: Common) -> GraphAuth:
    if options.get("client_id") is None:
        raise UserError("client_id is not set: register an app (README: OneDrive and SharePoint) and set client_id")
    if options.get("token_file") is None:
        raise UserError("token_file is not set: say where 'cloudgw login' keeps the sign-in (mode 600)")
    authority = f"{options['authority_url'].rstrip('/')}/{options['tenant']}"
    hint = (f"cloudgw login --config CONFIG {common.name}" if common.name else
            f"cloudgw login {masked_url(url.text)} --remote-option ... (the mount's options)")
    return GraphAuth(options["client_id"], authority, options["token_file"], ca_file=options.get("ca_file"),
                     health=common.health, name=common.name, login_hint=hint)


def _build(url: RemoteURL, options: dict[str, Any], common: Common) -> OneDriveRemote:
    place = place_of(url)
    auth = auth_for(url, options, common)
    http = GraphHttp(options["graph_url"], auth, ca_file=options.get("ca_file"), retry_deadline=common.timeout,
                     health=common.health, name=common.name)
    return OneDriveRemote(place, http, state_dir=common.state_dir, fragment_size=options["chunk_size"])


def login(url: RemoteURL, options: dict[str, Any], common: Common, out: Any, *, no_browser: bool = False) -> str:
    """``cloudgw login``: the device-code flow for this remote's account (blocking; it needs no
    browser on this machine, so ``no_browser`` changes nothing)."""
    place_of(url)
    return auth_for(url, options, common).device_login(out)


REMOTE_TYPE = RemoteType(
    options=(
        Option("client_id", str, "the application (client) id of your app registration (README: OneDrive)"),
        Option("token_file", Path, "where 'cloudgw login' keeps the sign-in (msal token cache, mode 600)"),
        Option("tenant", str, "the Entra ID tenant: common, organizations, consumers, a domain or a GUID",
               default="common"),
        Option("graph_url", str, "the Graph endpoint (national clouds)", default=GRAPH_URL),
        Option("authority_url", str, "the sign-in endpoint (national clouds)", default=AUTHORITY_URL),
        Option("ca_file", Path, "PEM file of a private CA for graph_url and authority_url (tests, proxies)"),
        Option("chunk_size", int, "bytes per upload fragment: a multiple of 327680 (320 KiB) below 60 MiB",
               default=10 << 20),
    ),
    build=_build,
    names=ONEDRIVE,
    poll_interval=15.0,  # an idle poll is one delta request: 5,760 a day
    extra={"login": login},
)
