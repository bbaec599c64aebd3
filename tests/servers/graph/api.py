"""The Graph v1.0 drive routes of the fake, plus the pre-authenticated ``/_pre/`` URLs.

Paths are parsed from the raw request target (``RAW_URI``) so that each path
segment is percent-decoded exactly once and a ``%2F`` or ``%3A`` stays part of
a name.  Addressing: ``/me/drive``, ``/drives/{d}``, ``/sites/{host}:/{path}``,
``/sites/{site-id}[/drive|/drives[/{d}]]``; items: ``/root``, ``/items/{id}``,
``/root:/a/b``, ``/items/{id}:/a/b``, each optionally followed (after a closing
colon for the path forms) by ``/children``, ``/content``,
``/createUploadSession`` or ``/delta``.  Every handler runs under the server lock.
"""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
import time
import urllib.parse
import uuid
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from .drive import Drive, GraphError, Item, check_name, etag_matches, iso, parse_client_time
from .uploads import UploadSession, UploadSessions

SIMPLE_UPLOAD_MAX = 4 * 1024 * 1024  # 4,194,304 bytes
MAX_TOP = 200
DOWNLOAD_URL_LIFETIME = 3600
_CONFLICT = ("fail", "replace", "rename")
_NAVS = ("", "/children", "/content", "/createUploadSession", "/delta")


class DropConnection(ConnectionError):
    """Raised from a handler: werkzeug closes the socket without writing a response."""


@dataclass
class Site:
    id: str
    host: str
    path: str  # server-relative, e.g. "/sites/Team"
    name: str
    libraries: dict[str, str]  # library name -> drive id; the first one is the default ("Documents")

    def json(self) -> dict:
        return {"id": self.id, "name": self.name, "displayName": self.name,
                "webUrl": f"https://{self.host}{self.path}",
                "siteCollection": {"hostname": self.host},
                "createdDateTime": "2020-01-01T00:00:00Z", "lastModifiedDateTime": iso(time.time())}


@dataclass
class Target:
    """A parsed item address: ``base`` plus an optional path below it, and the navigation after it."""

    drive: Drive
    api_path: str  # "/drive" (addressed via /me/drive) or "/drives/{id}"; for parentReference.path
    base: Item
    segments: list[str] | None  # None: no path form
    nav: str

    def item(self) -> Item:
        return self.drive.resolve(self.base, self.segments or [])

    @property
    def url_prefix(self) -> str:
        """How links (nextLink, deltaLink) address the drive: "/me/drive" or "/drives/{id}"."""
        return "/me/drive" if self.api_path == "/drive" else self.api_path


class GraphApi:
    def __init__(self, *, base_url: str, identity, counters, drives: dict[str, Drive], me_drive_id: str,
                 sites: list[Site], page_size: int, delta_page_size: int) -> None:
        self.base_url = base_url  # https://localhost:PORT
        self.graph_url = base_url + "/v1.0"
        self.identity = identity
        self.counters = counters
        self.drives = drives
        self.me_drive_id = me_drive_id
        self.sites = sites
        self.page_size = page_size
        self.delta_page_size = delta_page_size
        self.throttles: dict[str, list[int]] = {"graph": [0, 2, 429], "pre": [0, 2, 429]}
        self.fail_fragments = 0
        self.delta_tokens: dict[str, tuple] = {}
        self.skiptokens: dict[str, tuple[str, str, int, int]] = {}
        self.downloads: dict[str, tuple[bytes, float, str]] = {}
        self.uploads = UploadSessions()

    # -- entry points ------------------------------------------------------------------------
    def handle_graph(self, request: Request, rest: str) -> Response:
        try:
            throttled = self._throttle("graph")
            if throttled:
                return throttled
            self._authenticate(request)
            return self._graph(request, rest)
        except GraphError as e:
            return error_response(e)

    def handle_pre(self, request: Request, parts: list[str]) -> Response:
        try:
            throttled = self._throttle("pre")
            if throttled:
                return throttled
            if len(parts) == 2 and parts[0] == "download":
                return self._download(request, parts[1])
            if len(parts) == 2 and parts[0] == "upload":
                return self._upload_url(request, parts[1])
            raise GraphError(404, "itemNotFound", "Unknown pre-authenticated URL.")
        except GraphError as e:
            return error_response(e)

    def _throttle(self, which: str) -> Response | None:
        st = self.throttles[which]
        if st[0] <= 0:
            return None
        st[0] -= 1
        self.counters.add("throttled")
        status, retry = st[2], st[1]
        code = "activityLimitReached" if status == 429 else "serviceNotAvailable"
        msg = "The request has been throttled" if status == 429 else "Service unavailable"
        return error_response(GraphError(status, code, msg, "throttledRequest",
                                         headers={"Retry-After": str(retry)}))

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            why = "Access token is empty."
        elif scheme.lower() != "bearer" or not self.identity.check_access_token(token.strip()):
            why = "Access token has expired or is not yet valid."
        else:
            return
        self.counters.add("unauthorized")
        raise GraphError(401, "InvalidAuthenticationToken", why, headers={
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                                'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", '
                                'error="invalid_token"'})

    # -- addressing --------------------------------------------------------------------------
    def _graph(self, request: Request, rest: str) -> Response:
        if rest in ("/me", "/me/") and request.method == "GET":
            from .identity import FAKE_DISPLAY_NAME, FAKE_USER_OID, FAKE_USERNAME
            self.counters.add("me")
            return json_response({"id": FAKE_USER_OID, "displayName": FAKE_DISPLAY_NAME,
                                  "userPrincipalName": FAKE_USERNAME, "mail": FAKE_USERNAME})
        m = re.match(r"^/me/drive(?=$|/)(.*)$", rest)
        if m:
            return self._drive_request(request, self.drives[self.me_drive_id], "/drive", m.group(1))
        m = re.match(r"^/drives/([^/:]+)(.*)$", rest)
        if m:
            return self._drive_request(request, self._drive(unquote(m.group(1))), None, m.group(2))
        m = re.match(r"^/sites/(.+)$", rest)
        if m:
            return self._site_request(request, m.group(1))
        raise GraphError(400, "invalidRequest", f"Resource not found for the segment in {rest!r}.")

    def _drive(self, drive_id: str) -> Drive:
        d = self.drives.get(drive_id)
        if d is None:
            raise GraphError(404, "itemNotFound", f"Drive {drive_id!r} not found.")
        return d

    def _site_request(self, request: Request, rest: str) -> Response:
        m = re.match(r"^([^/:,]+):(/[^:]*)(?::(.*))?$", rest)
        if m:
            host, path, tail = m.group(1).lower(), unquote_path(m.group(2)).rstrip("/").lower(), m.group(3) or ""
            site = next((s for s in self.sites if s.host == host and s.path.lower() == path), None)
        else:
            m = re.match(r"^([^/]+)(.*)$", rest)
            sid, tail = unquote(m.group(1)), m.group(2)
            site = next((s for s in self.sites if s.id.lower() == sid.lower()), None)
            if sid == "root":
                site = self.sites[0] if self.sites else None
        if site is None:
            raise GraphError(404, "itemNotFound", "Requested site could not be found")
        if tail in ("", "/"):
            _only(request, "GET")
            self.counters.add("site")
            return json_response(site.json())
        if tail == "/drives":
            _only(request, "GET")
            self.counters.add("site")
            return json_response({"value": [self.drives[d].drive_json() for d in site.libraries.values()]})
        m = re.match(r"^/drive(?=$|/)(.*)$", tail)
        if m:
            return self._drive_request(request, self.drives[next(iter(site.libraries.values()))], None,
                                       m.group(1))
        m = re.match(r"^/drives/([^/:]+)(.*)$", tail)
        if m:
            did = unquote(m.group(1))
            if did not in site.libraries.values():
                raise GraphError(404, "itemNotFound", f"Drive {did!r} not found in this site.")
            return self._drive_request(request, self.drives[did], None, m.group(2))
        raise GraphError(400, "invalidRequest", f"Resource not found for the segment in {tail!r}.")

    def _drive_request(self, request: Request, drive: Drive, api_path: str | None, tail: str) -> Response:
        api_path = api_path or f"/drives/{drive.id}"
        if tail in ("", "/"):
            _only(request, "GET")
            self.counters.add("drive")
            return json_response(drive.drive_json())
        m = re.match(r"^/(root|items/([^/:]+))(.*)$", tail)
        if not m:
            raise GraphError(400, "invalidRequest", f"Resource not found for the segment in {tail!r}.")
        item_id = unquote(m.group(2)) if m.group(2) else "root"
        base = drive.root if item_id == "root" else drive.get(item_id)
        after = m.group(3)
        segments = None
        if after.startswith(":"):
            path, colon, nav = after[1:].partition(":")
            if path not in ("", "/") and not path.startswith("/"):
                raise GraphError(400, "invalidRequest", f"Invalid path {path!r}.")
            segments = [] if path in ("", "/") else [unquote(s) for s in path[1:].split("/")]
            if any(s == "" for s in segments):
                raise GraphError(400, "invalidRequest", f"Empty path segment in {path!r}.", "invalidPath")
        else:
            nav = after
        if nav not in _NAVS:
            raise GraphError(400, "invalidRequest", f"Unsupported navigation {nav!r}.")
        t = Target(drive, api_path, base, segments, nav)
        handler = {
            ("", "GET"): self._get_item, ("", "PATCH"): self._patch, ("", "DELETE"): self._delete,
            ("/children", "GET"): self._children, ("/children", "POST"): self._mkdir,
            ("/content", "GET"): self._content, ("/content", "PUT"): self._simple_upload,
            ("/createUploadSession", "POST"): self._create_session, ("/delta", "GET"): self._delta,
        }.get((nav, request.method))
        if handler is None:
            raise GraphError(405, "invalidRequest", f"{request.method} is not allowed on {nav or 'an item'}.")
        return handler(request, t)

    # -- items ---------------------------------------------------------------------------------
    def _item_json(self, t: Target, item: Item, download_url: bool = False) -> dict:
        out = t.drive.item_json(item, api_path=t.api_path)
        if download_url and not item.folder:
            out["@microsoft.graph.downloadUrl"] = self._download_url(item)
        return out

    def _get_item(self, request: Request, t: Target) -> Response:
        self.counters.add("item")
        item = t.item()
        _check_if_none_match(request, item)
        return json_response(self._item_json(t, item, download_url=True))

    def _children(self, request: Request, t: Target) -> Response:
        self.counters.add("children")
        skip = request.args.get("$skiptoken") or request.args.get("$skipToken")
        if skip is not None:
            cur = self.skiptokens.get(skip)
            if cur is None or cur[0] != t.drive.id:
                raise GraphError(400, "invalidRequest", "Invalid or unknown $skiptoken.")
            _, folder_id, offset, top = cur
            folder = t.drive.get(folder_id)
        else:
            folder, offset, top = t.item(), 0, self._top(request, self.page_size)
            _check_if_none_match(request, folder)
        if not folder.folder:
            raise GraphError(400, "invalidRequest", f"{folder.name!r} is a file, not a folder.")
        kids = sorted((t.drive.items[c] for c in folder.children.values()), key=lambda i: i.name.lower())
        page = kids[offset:offset + top]
        body: dict = {"value": [self._item_json(t, k) for k in page]}
        if offset + top < len(kids):
            tok = secrets.token_urlsafe(16)
            self.skiptokens[tok] = (t.drive.id, folder.id, offset + top, top)
            body["@odata.nextLink"] = (f"{self.graph_url}{t.url_prefix}/items/{folder.id}/children"
                                       f"?$top={top}&$skiptoken={tok}")
        return json_response(body)

    @staticmethod
    def _top(request: Request, default: int) -> int:
        raw = request.args.get("$top")
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise GraphError(400, "invalidRequest", f"Invalid $top value {raw!r}.")
        return min(int(raw), MAX_TOP)

    def _mkdir(self, request: Request, t: Target) -> Response:
        self.counters.add("mkdir")
        body = json_body(request)
        parent = t.item()
        if not parent.folder:
            raise GraphError(400, "invalidRequest", f"{parent.name!r} is not a folder.")
        if not isinstance(body.get("folder"), dict):
            raise GraphError(400, "invalidRequest", "Only folders can be created with POST .../children "
                             "(the body needs \"folder\": {}).")
        name = check_name(body.get("name"))
        conflict = _conflict(body.get("@microsoft.graph.conflictBehavior") or body.get("@name.conflictBehavior")
                             or request.args.get("@microsoft.graph.conflictBehavior") or "fail")
        existing = t.drive.child(parent, name)
        if existing is not None:
            if conflict == "fail":
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            if conflict == "rename":
                name = t.drive.unique_name(parent, name)
            else:
                t.drive.delete(existing)
        t.drive.check_path(parent, name)
        item = t.drive.create(parent, name, folder=True, fs=_fs(body.get("fileSystemInfo")))
        return json_response(self._item_json(t, item), 201)

    def _patch(self, request: Request, t: Target) -> Response:
        self.counters.add("patch")
        body = json_body(request)
        item = t.item()
        if item.parent_id is None:
            raise GraphError(403, "accessDenied", "The root of a drive cannot be changed.")
        _check_if_match(request, item)
        conflict = _conflict(body.get("@microsoft.graph.conflictBehavior")
                             or request.args.get("@microsoft.graph.conflictBehavior") or "fail")
        parent = None
        pref = body.get("parentReference")
        if pref is not None:
            if not isinstance(pref, dict) or not isinstance(pref.get("id"), str):
                raise GraphError(400, "invalidRequest", "parentReference needs the \"id\" of the new parent.")
            if pref.get("driveId") not in (None, t.drive.id):
                raise GraphError(400, "invalidRequest", "Items cannot be moved between drives with PATCH.")
            if pref["id"] == "root":
                raise GraphError(400, "invalidRequest", "parentReference.id must be the real id of the root "
                                 "item, not \"root\".")
            parent = t.drive.get(pref["id"])
        name = body.get("name")
        if name is not None:
            check_name(name)
        if conflict == "rename" and name is not None:
            target_parent = parent or t.drive.items[item.parent_id]
            clash = t.drive.child(target_parent, name)
            if clash is not None and clash.id != item.id:
                name = t.drive.unique_name(target_parent, name)
        t.drive.update(item, parent=parent, name=name, fs=_fs(body.get("fileSystemInfo")),
                       replace=conflict == "replace")
        return json_response(self._item_json(t, item))

    def _delete(self, request: Request, t: Target) -> Response:
        self.counters.add("delete")
        item = t.item()
        if item.parent_id is None:
            raise GraphError(403, "accessDenied", "The root of a drive cannot be deleted.")
        _check_if_match(request, item)
        t.drive.delete(item)
        return Response(status=204)

    # -- download ------------------------------------------------------------------------------
    def _download_url(self, item: Item) -> str:
        now = time.time()
        if len(self.downloads) > 10_000:
            self.downloads = {k: v for k, v in self.downloads.items() if v[1] > now}
        tok = secrets.token_urlsafe(24)
        mime = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
        self.downloads[tok] = (item.data, now + DOWNLOAD_URL_LIFETIME, mime)
        return f"{self.base_url}/_pre/download/{tok}"

    def _content(self, request: Request, t: Target) -> Response:
        self.counters.add("content")
        item = t.item()
        if item.folder:
            raise GraphError(400, "invalidRequest", f"{item.name!r} is a folder; only files have content.")
        _check_if_match(request, item)
        _check_if_none_match(request, item)
        return Response(status=302, headers={"Location": self._download_url(item)})

    def _download(self, request: Request, tok: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise GraphError(405, "invalidRequest", "Download URLs only answer GET.")
        self.counters.add("download")
        entry = self.downloads.get(tok)
        if entry is None or time.time() > entry[1]:
            raise GraphError(404, "itemNotFound", "The download URL is unknown or has expired.")
        data, _, mime = entry
        size = len(data)
        rng = request.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                a = int(m.group(1))
                b = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # suffix range: the last n bytes
                n = int(m.group(2))
                a, b = max(size - n, 0), size - 1
            if a >= size or a > b or (m.group(1) == "" and int(m.group(2)) == 0):
                e = GraphError(416, "invalidRange", f"The requested range {rng!r} is not satisfiable "
                               f"(size {size}).", headers={"Content-Range": f"bytes */{size}"})
                return error_response(e)
            part = data[a:b + 1]
            self.counters.add_bytes(downloaded=len(part) if request.method == "GET" else 0)
            return Response(part if request.method == "GET" else b"", 206, mimetype=mime,
                            headers={"Content-Range": f"bytes {a}-{b}/{size}", "Accept-Ranges": "bytes",
                                     "Content-Length": str(len(part))})
        self.counters.add_bytes(downloaded=size if request.method == "GET" else 0)
        return Response(data if request.method == "GET" else b"", 200, mimetype=mime,
                        headers={"Accept-Ranges": "bytes", "Content-Length": str(size)})

    # -- simple upload -------------------------------------------------------------------------
    def _put_target(self, t: Target) -> tuple[Item | None, Item, str]:
        """(existing target or None, parent folder, name) of an upload addressed by ``t``."""
        if not t.segments:  # /items/{id}/content, /root/content: replace that item
            item = t.base if t.segments is None else t.item()
            if item.folder:
                raise GraphError(400, "invalidRequest", f"{item.name!r} is a folder; cannot upload content to it.")
            return item, t.drive.items[item.parent_id], item.name
        parent = t.drive.resolve(t.base, t.segments[:-1])
        if not parent.folder:
            raise GraphError(400, "invalidRequest", f"{parent.name!r} is not a folder.")
        name = check_name(t.segments[-1])
        return t.drive.child(parent, name), parent, name

    def _simple_upload(self, request: Request, t: Target) -> Response:
        self.counters.add("simple_upload")
        data = request.get_data()
        if len(data) > SIMPLE_UPLOAD_MAX:
            raise GraphError(413, "requestTooLarge", f"A simple upload may carry at most {SIMPLE_UPLOAD_MAX} "
                             f"bytes; this one has {len(data)}. Use an upload session.", "maxFileSizeExceeded")
        conflict = _conflict(request.args.get("@microsoft.graph.conflictBehavior", "replace"))
        existing, parent, name = self._put_target(t)
        if_match = request.headers.get("If-Match")
        if if_match is not None and (existing is None or not etag_matches(existing, if_match)):
            raise _precondition_failed()
        by_id = not t.segments
        if existing is not None and not by_id:
            if conflict == "fail":
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            if conflict == "rename":
                existing, name = None, t.drive.unique_name(parent, name)
            elif existing.folder:
                raise GraphError(409, "nameAlreadyExists", "A folder with this name exists.")
        if existing is not None:
            t.drive.write(existing, data)
            item, status = existing, 200
        else:
            t.drive.check_path(parent, name)
            item, status = t.drive.create(parent, name, folder=False, data=data), 201
        self.counters.add_bytes(uploaded=len(data))
        return json_response(self._item_json(t, item), status)

    # -- upload sessions -----------------------------------------------------------------------
    def _create_session(self, request: Request, t: Target) -> Response:
        self.counters.add("create_session")
        body = json_body(request, required=False)
        spec = body.get("item", {})
        if not isinstance(spec, dict):
            raise GraphError(400, "invalidRequest", "\"item\" must be an object.")
        if body.get("deferCommit"):
            raise GraphError(400, "invalidRequest", "deferCommit is not modelled by this fake.")
        conflict = _conflict(spec.get("@microsoft.graph.conflictBehavior") or spec.get("@name.conflictBehavior")
                             or request.args.get("@microsoft.graph.conflictBehavior") or "fail")
        fs = _fs(spec.get("fileSystemInfo"))
        existing, parent, name = self._put_target(t)
        by_id = not t.segments
        if "name" in spec and spec["name"] != name:
            raise GraphError(400, "invalidRequest", f"The name in the body ({spec['name']!r}) differs from the "
                             f"name in the path ({name!r}).")
        if_match = request.headers.get("If-Match")
        if if_match is not None and (existing is None or not etag_matches(existing, if_match)):
            raise _precondition_failed()
        if existing is not None and not by_id:
            if conflict == "fail":
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            if conflict == "replace" and existing.folder:
                raise GraphError(409, "nameAlreadyExists", "A folder with this name exists.")
        if existing is None:
            t.drive.check_path(parent, name)
        total = spec.get("fileSize")
        if total is not None and (not isinstance(total, int) or total < 0):
            raise GraphError(400, "invalidRequest", "fileSize must be a non-negative integer.")
        s = self.uploads.create(drive_id=t.drive.id, parent_id=parent.id, name=name, conflict=conflict,
                                if_match=if_match, fs=fs, target_id=existing.id if by_id else None,
                                api_path=t.api_path, total=total)
        return json_response({"uploadUrl": f"{self.base_url}/_pre/upload/{s.token}",
                              "expirationDateTime": iso(s.expires_at), "nextExpectedRanges": ["0-"]})

    def _upload_url(self, request: Request, tok: str) -> Response:
        if request.method == "GET":
            self.counters.add("session_status")
            return json_response(self.uploads.get(tok).status())
        if request.method == "DELETE":
            self.counters.add("session_delete")
            self.uploads.get(tok)
            self.uploads.drop(tok)
            return Response(status=204)
        if request.method != "PUT":
            raise GraphError(405, "invalidRequest", f"{request.method} is not allowed on an upload URL.")
        self.counters.add("fragment")
        if "Authorization" in request.headers:
            raise GraphError(401, "unauthenticated", "Do not send an Authorization header to the uploadUrl: "
                             "it is pre-authenticated.")
        s = self.uploads.get(tok)
        body = request.get_data()
        a, b, total = self.uploads.check_fragment(s, request.headers.get("Content-Range"),
                                                  request.headers.get("Content-Length"), body)
        if self.fail_fragments > 0:
            self.fail_fragments -= 1
            raise DropConnection("fail_upload_fragments: connection dropped, fragment not stored")
        s.total = total
        s.data += body
        if len(s.data) < total:
            self.counters.add_bytes(uploaded=len(body))
            return json_response(s.status(), 202)
        try:
            item, status = self._commit(s)
        except GraphError:
            del s.data[a:]  # the final fragment is not kept: the client may retry it (the session lives on)
            raise
        self.counters.add_bytes(uploaded=len(body))
        self.uploads.drop(tok)
        drive = self.drives[s.drive_id]
        return json_response(drive.item_json(item, api_path=s.api_path), status)

    def _commit(self, s: UploadSession) -> tuple[Item, int]:
        drive = self.drives[s.drive_id]
        if s.target_id is not None:
            existing = drive.items.get(s.target_id)
            if existing is None:
                raise GraphError(404, "itemNotFound", "The item this upload session replaces was deleted.")
        else:
            parent = drive.items.get(s.parent_id)
            if parent is None:
                raise GraphError(404, "itemNotFound", "The parent folder of this upload session was deleted.")
            existing = drive.child(parent, s.name)
        if s.if_match is not None and (existing is None or not etag_matches(existing, s.if_match)):
            raise _precondition_failed()
        name = s.name
        if existing is not None and s.target_id is None:
            if s.conflict == "fail":
                raise GraphError(409, "nameAlreadyExists", "Another file exists with the same name as the "
                                 "uploaded session. You can redirect the upload session to use a new filename "
                                 "by calling PUT with the new metadata and @microsoft.graph.sourceUrl attribute.")
            if s.conflict == "rename":
                existing, name = None, drive.unique_name(parent, name)
            elif existing.folder:
                raise GraphError(409, "nameAlreadyExists", "A folder with this name exists.")
        if existing is not None:
            return drive.write(existing, bytes(s.data), s.fs), 200
        drive.check_path(parent, name)
        return drive.create(parent, name, folder=False, data=bytes(s.data), fs=s.fs), 201

    # -- delta ---------------------------------------------------------------------------------
    def _delta(self, request: Request, t: Target) -> Response:
        self.counters.add("delta")
        if t.segments or t.base.id != t.drive.root.id:
            raise GraphError(400, "invalidRequest", "delta is only supported on the root of a drive.")
        link = f"{self.graph_url}{t.url_prefix}/root/delta"
        token = request.args.get("token")
        top = self._top(request, self.delta_page_size) if "$top" in request.args else self.delta_page_size
        drive = t.drive
        if token == "latest":
            return json_response({"value": [], "@odata.deltaLink": f"{link}?token={self._new_delta(drive.id, drive.seq)}"})
        if token is None:
            ids, pos, end = drive.all_ids(), 0, drive.seq
        else:
            cur = self.delta_tokens.get(token)
            if cur is None or cur[0] != drive.id:
                raise GraphError(410, "resyncRequired", "Resync required. Replace any local items with the "
                                 "server's version (including deletes) if you're sure that the service was up to "
                                 "date with your local changes when you last sync'd. Upload any local changes that "
                                 "the server doesn't know about.", "resyncChangesApplyDifferences",
                                 headers={"Location": link})
            if len(cur) == 2:  # a deltaLink: changes since that position
                ids, pos, end = drive.changes_since(cur[1]), 0, drive.seq
            else:  # a nextLink: the rest of a page list
                _, ids, pos, end = cur
        page = ids[pos:pos + top]
        body: dict = {"value": [drive.delta_json(i) for i in page]}
        if pos + top < len(ids):
            tok = secrets.token_urlsafe(24)
            self.delta_tokens[tok] = (drive.id, ids, pos + top, end)
            body["@odata.nextLink"] = f"{link}?token={tok}"
        else:
            body["@odata.deltaLink"] = f"{link}?token={self._new_delta(drive.id, end)}"
        return json_response(body)

    def _new_delta(self, drive_id: str, seq: int) -> str:
        tok = secrets.token_urlsafe(24)
        self.delta_tokens[tok] = (drive_id, seq)
        return tok


# -- helpers ------------------------------------------------------------------------------------
def unquote(segment: str) -> str:
    try:
        return urllib.parse.unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise GraphError(400, "invalidRequest", f"Invalid percent-encoding in {segment!r}.", "invalidPath") from None


def unquote_path(path: str) -> str:
    return "/".join(unquote(s) for s in path.split("/"))


def _only(request: Request, method: str) -> None:
    if request.method != method:
        raise GraphError(405, "invalidRequest", f"{request.method} is not allowed here.")


def _conflict(value: object) -> str:
    if value not in _CONFLICT:
        raise GraphError(400, "invalidRequest", f"Invalid @microsoft.graph.conflictBehavior {value!r} "
                         "(fail, replace or rename).")
    return value  # type: ignore[return-value]


def _fs(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GraphError(400, "invalidRequest", "fileSystemInfo must be an object.")
    return {k: parse_client_time(value[k]) for k in ("createdDateTime", "lastModifiedDateTime") if k in value}


def _precondition_failed() -> GraphError:
    return GraphError(412, "preconditionFailed", "The resource has changed since the caller last read it; "
                      "usually an eTag mismatch.", "entityTagDoesNotMatch")


def _check_if_match(request: Request, item: Item) -> None:
    tag = request.headers.get("If-Match")
    if tag is not None and not etag_matches(item, tag):
        raise _precondition_failed()


def _check_if_none_match(request: Request, item: Item) -> None:
    tag = request.headers.get("If-None-Match")
    if tag is not None and etag_matches(item, tag):
        raise GraphError(304, "notModified", "Not modified")


def json_body(request: Request, required: bool = True) -> dict:
    data = request.get_data()
    if not data:
        if required:
            raise GraphError(400, "invalidRequest", "A JSON request body is required.")
        return {}
    if request.mimetype != "application/json":
        raise GraphError(415, "invalidRequest", "The request body must be JSON (Content-Type: application/json).")
    try:
        obj = json.loads(data)
    except ValueError:
        raise GraphError(400, "invalidRequest", "The request body is not valid JSON.") from None
    if not isinstance(obj, dict):
        raise GraphError(400, "invalidRequest", "The request body must be a JSON object.")
    return obj


def json_response(obj: dict, status: int = 200) -> Response:
    return Response(json.dumps(obj), status, mimetype="application/json",
                    headers={"request-id": str(uuid.uuid4())})


def error_response(e: GraphError) -> Response:
    if e.status == 304:
        return Response(status=304, headers=e.headers)
    rid = str(uuid.uuid4())
    inner: dict = {"date": iso(time.time()), "request-id": rid, "client-request-id": rid}
    if e.inner:
        inner["code"] = e.inner
    body = {"error": {"code": e.code, "message": e.message, **e.extra, "innerError": inner}}
    return Response(json.dumps(body), e.status, mimetype="application/json",
                    headers={"request-id": rid, **e.headers})
