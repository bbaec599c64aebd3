"""The Drive v3 routes: ``/drive/v3/...`` (metadata, alt=media, export, changes, drives, about),
``/upload/drive/v3/...`` (media, multipart, resumable) and ``/download/export/...`` (exportLinks).
Paths and parameters come from the discovery document the client uses (drive.v3.json).  Every
handler runs under the server lock."""

from __future__ import annotations

import hashlib
import json
import re
import secrets

from werkzeug.wrappers import Request, Response

from . import query as Q
from .errors import DriveError, DropConnection, bad_request, invalid
from .model import DOC_KINDS, EXPORT_FORMATS, EXPORT_LIMIT, FOLDER, GOOGLE_APPS, SHORTCUT, File, Store, \
    check_file_id, parse_rfc3339, rfc3339
from .uploads import SIMPLE_MAX, Sessions, parse_chunk, parse_multipart_related

_RATE_MESSAGES = {
    "userRateLimitExceeded": "User Rate Limit Exceeded. Rate of requests for user exceed configured project "
                             "quota. You may consider re-evaluating expected per-user traffic to the API and "
                             "adjust project quota limits accordingly.",
    "rateLimitExceeded": "Rate Limit Exceeded",
}
# Fields a request body may set (developers.google.com/drive/api/reference/rest/v3/files: "writable").
_WRITABLE = {"name", "mimeType", "description", "modifiedTime", "createdTime", "parents", "trashed", "starred",
             "shortcutDetails", "originalFilename", "viewedByMeTime", "writersCanShare",
             "copyRequiresWriterPermission", "folderColorRgb", "contentHints", "properties", "appProperties",
             "id", "contentRestrictions", "inheritedPermissionsDisabled", "downloadRestrictions"}
_IGNORED = {"starred", "viewedByMeTime", "writersCanShare", "copyRequiresWriterPermission", "folderColorRgb",
            "contentHints"}  # accepted, not modelled
_NOT_MODELLED = {"properties", "appProperties", "id", "contentRestrictions", "inheritedPermissionsDisabled",
                 "downloadRestrictions"}


def json_response(obj, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(obj, indent=1), status, content_type="application/json; charset=UTF-8",
                    headers=headers or {})


class DriveApi:
    def __init__(self, *, store: Store, oauth, counters, root_url: str, page_size_cap: int,
                 change_page_size: int) -> None:
        self.store = store
        self.oauth = oauth
        self.counters = counters
        self.root_url = root_url  # http://127.0.0.1:PORT/
        self.page_size_cap = page_size_cap
        self.change_page_size = change_page_size
        self.rate = [0, "userRateLimitExceeded", 403, None]
        self.upload_quota = False
        self.fail_chunks = 0
        self.page_tokens: dict[str, tuple] = {}
        self.sessions = Sessions()
        disc = Q.discovery()
        self.global_params = set(disc["parameters"])
        self.methods = {f"{r}.{m}": set(d.get("parameters", {}))
                        for r, res in disc["resources"].items() for m, d in res.get("methods", {}).items()}

    # -- entry -------------------------------------------------------------------------------
    def handle(self, request: Request, path: str) -> Response:
        try:
            if path.startswith("/download/"):
                self._authenticate(request)
                return self._export_link(request, path)
            chunk = path.startswith("/upload/drive/v3/files") and request.method == "PUT"
            if not chunk:
                self._authenticate(request)
            self._rate_limit()
            if chunk:
                return self._chunk(request, path)
            if path.startswith("/upload/drive/v3/"):
                return self._upload(request, path[len("/upload/drive/v3/"):])
            return self._route(request, path[len("/drive/v3/"):])
        except DriveError as e:
            return e.response()

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization")
        if not header:
            self.counters.add("unauthorized")
            raise DriveError(401, "required", "Login Required.", location="Authorization",
                             location_type="header", headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        scheme, _, token = header.partition(" ")
        self.subject = None
        info = self.oauth.check_access_token(token.strip()) if scheme.lower() == "bearer" else None
        if info is None:
            self.counters.add("unauthorized")
            raise DriveError(401, "authError", "Invalid Credentials", location="Authorization",
                             location_type="header",
                             headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                                          'error="invalid_token"'},
                             hint="unknown, expired or revoked access token")
        self.subject = info["subject"]

    def _rate_limit(self) -> None:
        count, reason, status, retry = self.rate
        if count <= 0:
            return
        self.rate[0] -= 1
        self.counters.add("rate_limited")
        headers = {"Retry-After": str(retry)} if retry is not None else {}
        message = _RATE_MESSAGES.get(reason, "Rate Limit Exceeded")
        raise DriveError(status, reason, message, domain="usageLimits", headers=headers)

    def _check_upload_quota(self) -> None:
        if self.upload_quota:
            # The daily 750 GB upload cap: 403 userRateLimitExceeded with exactly this message (rclone's
            # --drive-stop-on-upload-limit detects it by the message; see README).
            raise DriveError(403, "userRateLimitExceeded", "User rate limit exceeded.", domain="usageLimits",
                             hint="upload_quota_exceeded(True): the daily 750 GB upload limit")

    # -- parameters --------------------------------------------------------------------------
    def _params(self, request: Request, method: str, extra: tuple = ()) -> dict:
        allowed = self.global_params | self.methods[method] | set(extra)
        out = {}
        for k in request.args:
            if k not in allowed:
                raise DriveError(400, "invalidParameter", f"Invalid parameter: {k}", location=k,
                                 hint=f"{k} is not a parameter of {method} (discovery document)")
            values = request.args.getlist(k)
            out[k] = values[-1]
        if out.get("alt", "json") not in ("json", "media"):
            raise invalid("alt", hint="alt must be json or media")
        return out

    @staticmethod
    def _bool(p: dict, *names: str, default: bool = False) -> bool:
        for name in names:
            v = p.get(name)
            if v is None:
                continue
            if v not in ("true", "false"):
                raise invalid(name, f"Invalid value '{v}'. Valid values are true and false.")
            return v == "true"
        return default

    @staticmethod
    def _int(p: dict, name: str, default: int, lo: int, hi: int) -> int:
        v = p.get(name)
        if v is None:
            return default
        if not re.fullmatch(r"-?\d+", v):
            raise invalid(name, f"Invalid value '{v}'. Values must be within the range: [{lo}, {hi}]")
        n = int(v)
        if not lo <= n <= hi:
            raise invalid(name, f"Invalid value '{v}'. Values must be within the range: [{lo}, {hi}]")
        return n

    def _all_drives(self, p: dict) -> bool:
        return self._bool(p, "supportsAllDrives", "supportsTeamDrives")

    def _resource(self, f: File, p: dict) -> dict:
        return Q.select(p.get("fields"), Q.FILE_DEFAULT, "File", self.store.resource(f, self.root_url))

    # -- routing -----------------------------------------------------------------------------
    def _route(self, request: Request, rest: str) -> Response:
        m = request.method
        parts = rest.split("/")
        if parts == ["files"]:
            if m == "GET":
                return self.files_list(request)
            if m == "POST":
                return self.files_create(request)
        elif len(parts) == 2 and parts[0] == "files" and parts[1] not in ("", "trash", "generateIds"):
            fid = parts[1]
            if m == "GET":
                return self.files_get(request, fid)
            if m == "PATCH":
                return self.files_update(request, fid)
            if m == "DELETE":
                return self.files_delete(request, fid)
        elif len(parts) == 3 and parts[0] == "files" and parts[2] == "export" and m == "GET":
            return self.files_export(request, parts[1])
        elif parts == ["changes"] and m == "GET":
            return self.changes_list(request)
        elif parts == ["changes", "startPageToken"] and m == "GET":
            return self.changes_start(request)
        elif parts == ["drives"] and m == "GET":
            return self.drives_list(request)
        elif len(parts) == 2 and parts[0] == "drives" and m == "GET":
            return self.drives_get(request, parts[1])
        elif parts == ["about"] and m == "GET":
            return self.about_get(request)
        raise DriveError(404, "notFound", f"Not Found: {m} /drive/v3/{rest}",
                         hint="no such route in the fake (not modelled, or not in the discovery document)")

    # -- files ---------------------------------------------------------------------------------
    def files_list(self, request: Request) -> Response:
        self.counters.add("files.list")
        p = self._params(request, "files.list")
        s = self.store
        all_drives = self._all_drives(p)
        include_all = self._bool(p, "includeItemsFromAllDrives", "includeTeamDriveItems")
        drive_id = p.get("driveId") or p.get("teamDriveId")
        corpora = p.get("corpora") or ("drive" if drive_id else "user")
        if "corpus" in p and p["corpus"] not in ("user", "domain"):
            raise invalid("corpus")
        if corpora not in ("user", "drive", "allDrives", "domain"):
            raise invalid("corpora", hint="corpora must be user, drive, allDrives (domain: not modelled)")
        if corpora == "domain":
            raise invalid("corpora", hint="corpora=domain is not modelled")
        if (corpora == "drive") != bool(drive_id):
            raise invalid("driveId", "The driveId parameter must be specified if and only if corpora is set "
                                     "to drive.")
        if include_all and not all_drives:
            raise invalid("includeItemsFromAllDrives", "The includeItemsFromAllDrives parameter can only be set "
                          "to true if supportsAllDrives is also set to true.")
        if corpora in ("drive", "allDrives") and not include_all:
            raise invalid("includeItemsFromAllDrives", "The includeItemsFromAllDrives parameter must be set to "
                          "true when corpora is set to drive or allDrives.")
        if drive_id and drive_id not in s.drives:
            raise DriveError(404, "notFound", f"Shared drive not found: {drive_id}", location="driveId")
        spaces = p.get("spaces", "drive")
        if set(spaces.split(",")) != {"drive"}:
            raise invalid("spaces", hint="only spaces=drive is modelled")
        page_size = self._int(p, "pageSize", 100, 1, 1000)
        preds = Q.parse_q(p["q"], s.resolve_id) if p.get("q") is not None else []
        key = (p.get("q"), corpora, drive_id, include_all)
        offset = 0
        if p.get("pageToken") is not None:
            cur = self.page_tokens.get(p["pageToken"])
            if cur is None or cur[0] != key:
                raise invalid("pageToken", hint="unknown page token, or q/corpora/driveId changed between pages")
            offset = cur[1]

        def in_corpus(f: File) -> bool:
            if f.parent is None:
                return False  # root folders are never listed
            if corpora == "drive":
                return f.drive_id == drive_id
            if corpora == "allDrives":
                return True
            return f.drive_id is None or include_all

        matches = sorted((f for f in s.files.values() if in_corpus(f) and all(pr(s, f) for pr in preds)),
                         key=lambda f: (f.name, f.id))
        n = min(page_size, self.page_size_cap)
        page = matches[offset:offset + n]
        out = {"kind": "drive#fileList", "incompleteSearch": False,
               "files": [s.resource(f, self.root_url) for f in page]}
        if offset + n < len(matches):
            token = secrets.token_urlsafe(24)
            self.page_tokens[token] = (key, offset + n)
            out["nextPageToken"] = token
        return json_response(Q.select(p.get("fields"), Q.LIST_DEFAULT, "FileList", out))

    def files_get(self, request: Request, fid: str) -> Response:
        p = self._params(request, "files.get")
        check_file_id(fid)
        f = self.store.get(fid, all_drives=self._all_drives(p))
        if p.get("alt") == "media":
            return self._download(request, f)
        self.counters.add("files.get")
        return json_response(self._resource(f, p))

    def _download(self, request: Request, f: File) -> Response:
        self.counters.add("media")
        if f.data is None:
            raise DriveError(403, "fileNotDownloadable", "Only files with binary content can be downloaded. "
                             "Use Export with Docs Editors files.", location="alt")
        data, size = f.data, len(f.data)
        headers = {"Accept-Ranges": "bytes"}
        rng = request.headers.get("Range")
        status = 200
        if rng:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    first = int(m.group(1))
                    last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                    if m.group(2) and int(m.group(2)) < first:
                        first = None  # invalid range: ignored (RFC 9110)
                else:
                    n = int(m.group(2))
                    first, last = max(size - n, 0), size - 1
                    if n == 0:
                        first, last = size, size - 1
                if first is not None:
                    if first >= size:
                        return Response(b"", 416, headers={"Content-Range": f"bytes */{size}"},
                                        content_type="text/html; charset=UTF-8")
                    data = f.data[first:last + 1]
                    status = 206
                    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        self.counters.add_bytes(downloaded=len(data))
        return Response(data, status, headers=headers, content_type=f.mime)

    def _check_body(self, body: dict, *, update: bool) -> None:
        props = Q.discovery()["schemas"]["File"]["properties"]
        for k in body:
            if k not in props:
                raise bad_request(f'Invalid JSON payload received. Unknown name "{k}": Cannot find field.',
                                  hint=f"{k} is not a files resource field")
            if k not in _WRITABLE or (update and k in ("createdTime", "shortcutDetails")):
                raise DriveError(403, "fieldNotWritable",
                                 "The resource body includes fields which are not directly writable.",
                                 location=k, location_type="other")
            if update and k == "parents":
                raise DriveError(403, "fieldNotWritable", "The parents field is not directly writable in "
                                 "update requests. Use the addParents and removeParents parameters instead.",
                                 location="parents", location_type="other")
            if k in _NOT_MODELLED:
                raise bad_request(f"Field {k} is not supported here.", hint=f"{k} is not modelled by the fake")
        if "name" in body and not isinstance(body["name"], str):
            raise bad_request("Invalid value for name.")

    def _json_body(self, request: Request) -> dict:
        raw = request.get_data()
        if not raw:
            return {}
        if request.mimetype != "application/json":
            raise bad_request("Metadata must be application/json.",
                              hint=f"Content-Type {request.mimetype!r} for a metadata body")
        try:
            body = json.loads(raw)
        except ValueError:
            raise bad_request("Invalid JSON payload received.") from None
        if not isinstance(body, dict):
            raise bad_request("Invalid JSON payload received. Expected an object.")
        return body

    def _new_file(self, body: dict, p: dict, *, data: bytes | None = None, media_mime: str | None = None) -> File:
        """files.create: validate the metadata and make the file."""
        self._check_body(body, update=False)
        parents = body.get("parents") or ["root"]
        if not isinstance(parents, list) or len(parents) != 1 or not isinstance(parents[0], str):
            raise DriveError(403, "cannotAddParent", "Increasing the number of parents is not allowed.",
                             hint="exactly one parent is allowed")
        mime = body.get("mimeType") or media_mime or "application/octet-stream"
        if data is not None and mime.startswith(GOOGLE_APPS):
            raise bad_request("Conversion to Google Docs formats is not supported.",
                              hint="uploading into a Google Docs type (conversion) is not modelled")
        if mime.startswith(GOOGLE_APPS) and mime not in (FOLDER, SHORTCUT) \
                and mime[len(GOOGLE_APPS):] not in DOC_KINDS:
            raise bad_request(f"Creating files of type {mime} is not supported.", hint="not modelled")
        target = None
        if mime == SHORTCUT:
            target = (body.get("shortcutDetails") or {}).get("targetId")
            if not target:
                raise DriveError(400, "shortcutTargetInvalid", "The shortcut target is invalid.",
                                 hint="shortcutDetails.targetId is required")
        elif "shortcutDetails" in body:
            raise bad_request("shortcutDetails is only allowed for shortcuts.")
        created = parse_rfc3339(body["createdTime"], "createdTime") if "createdTime" in body else None
        modified = parse_rfc3339(body["modifiedTime"], "modifiedTime") if "modifiedTime" in body else None
        f = self.store.create(parents[0], body.get("name") or "Untitled", mime, data=data, created=created,
                              modified=modified, description=body.get("description"), shortcut_target=target,
                              all_drives=self._all_drives(p))
        if body.get("originalFilename") and f.data is not None:
            f.original_filename = body["originalFilename"]
        if body.get("trashed") is True:
            self.store.set_trashed(f, True)
        return f

    def files_create(self, request: Request) -> Response:
        self.counters.add("files.create")
        p = self._params(request, "files.create")
        if p.get("uploadType"):
            raise bad_request("Media uploads go to /upload/drive/v3/files.",
                              hint="uploadType on the metadata URL")
        f = self._new_file(self._json_body(request), p)
        return json_response(self._resource(f, p))

    def _apply_update(self, f: File, body: dict, p: dict, *, data: bytes | None = None,
                      media_mime: str | None = None) -> None:
        """files.update: metadata (and content), in one version step."""
        s = self.store
        self._check_body(body, update=True)
        if f.parent is None and (body or p.get("addParents") or p.get("removeParents") or data is not None):
            raise DriveError(403, "insufficientFilePermissions",
                             "The user does not have sufficient permissions for this file.",
                             hint="a root folder cannot be changed")
        add = [x for x in (p.get("addParents") or "").split(",") if x]
        remove = [x for x in (p.get("removeParents") or "").split(",") if x]
        all_drives = self._all_drives(p)
        if add or remove:
            remaining = [] if s.resolve_id(f.parent) in [s.resolve_id(r) for r in remove] else [f.parent]
            new = remaining + [s.resolve_id(a) for a in add if s.resolve_id(a) not in remaining]
            if len(new) > 1:
                raise DriveError(403, "cannotAddParent", "Increasing the number of parents is not allowed.",
                                 hint="a file has exactly one parent: use removeParents with addParents")
            if not new:
                raise bad_request("A file must have exactly one parent.", hint="removeParents without addParents")
            if new[0] != f.parent:
                s.move(f, new[0], all_drives=all_drives)
        if "mimeType" in body and body["mimeType"] != f.mime:
            if f.data is None or str(body["mimeType"]).startswith(GOOGLE_APPS):
                raise bad_request("The mimeType of this file cannot be changed.",
                                  hint="only binary files may change mimeType, not to Google types")
        modified = parse_rfc3339(body["modifiedTime"], "modifiedTime") if "modifiedTime" in body else None
        if data is not None:
            s.set_content(f, data, mime=body.get("mimeType"), modified=modified)
        elif body.get("mimeType"):
            f.mime = body["mimeType"]
        if "name" in body:
            f.name = body["name"] or f.name
        if "description" in body:
            f.description = body["description"]
        if modified is not None:
            f.modified = modified
        if "trashed" in body:
            if not isinstance(body["trashed"], bool):
                raise bad_request("Invalid value for trashed.")
            if body["trashed"] != f.explicitly_trashed:
                s.set_trashed(f, body["trashed"])
                return
        if data is None:
            s.touch(f)

    def files_update(self, request: Request, fid: str) -> Response:
        self.counters.add("files.update")
        p = self._params(request, "files.update")
        if p.get("uploadType"):
            raise bad_request("Media uploads go to /upload/drive/v3/files/{fileId}.")
        check_file_id(fid)
        f = self.store.get(fid, all_drives=self._all_drives(p))
        self._apply_update(f, self._json_body(request), p)
        return json_response(self._resource(f, p))

    def files_delete(self, request: Request, fid: str) -> Response:
        self.counters.add("files.delete")
        p = self._params(request, "files.delete")
        check_file_id(fid)
        self.store.delete(self.store.get(fid, all_drives=self._all_drives(p)))
        return Response(b"", 204)

    def files_export(self, request: Request, fid: str) -> Response:
        self.counters.add("export")
        p = self._params(request, "files.export")
        check_file_id(fid)
        f = self.store.get(fid, all_drives=True)
        mime = p.get("mimeType")
        if not mime:
            raise DriveError(400, "required", "Required parameter: mimeType", location="mimeType")
        if f.doc_kind is None:
            raise DriveError(403, "fileNotExportable", "Export only supports Docs Editors files.",
                             location="fileId")
        if mime not in EXPORT_FORMATS[f.doc_kind]:
            raise bad_request("The requested conversion is not supported.",
                              hint=f"{f.doc_kind} cannot be exported as {mime}")
        data = self.store.export(f, mime)
        if len(data) > EXPORT_LIMIT:
            raise DriveError(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
        self.counters.add_bytes(downloaded=len(data))
        return Response(data, 200, content_type=mime)

    def _export_link(self, request: Request, path: str) -> Response:
        self.counters.add("download")
        m = re.fullmatch(r"/download/export/([a-z]+)", path)
        f = self.store.files.get(request.args.get("id", ""))
        if not m or f is None or f.doc_kind != m.group(1):
            return Response("Not Found", 404, content_type="text/html")
        fmt = {ext: mime for mime, ext in EXPORT_FORMATS[f.doc_kind].items()}
        mime = fmt.get(request.args.get("exportFormat", ""))
        if mime is None:
            return Response("Bad Request: unknown exportFormat", 400, content_type="text/html")
        data = self.store.export(f, mime)  # no 10 MB limit on exportLinks
        self.counters.add_bytes(downloaded=len(data))
        return Response(data, 200, content_type=mime)

    # -- changes -------------------------------------------------------------------------------
    def changes_start(self, request: Request) -> Response:
        self.counters.add("changes.getStartPageToken")
        p = self._params(request, "changes.getStartPageToken")
        drive_id = p.get("driveId") or p.get("teamDriveId")
        if drive_id:
            if not self._all_drives(p):
                raise invalid("supportsAllDrives", "The supportsAllDrives parameter must be set to true when "
                              "driveId is specified.")
            if drive_id not in self.store.drives:
                raise DriveError(404, "notFound", f"Shared drive not found: {drive_id}", location="driveId")
        out = {"kind": "drive#startPageToken", "startPageToken": str(self.store.next_change)}
        return json_response(Q.select(p.get("fields"), {"kind": None, "startPageToken": None},
                                      "StartPageToken", out))

    def changes_list(self, request: Request) -> Response:
        self.counters.add("changes.list")
        p = self._params(request, "changes.list")
        s = self.store
        token = p.get("pageToken")
        if token is None:
            raise DriveError(400, "required", "Required parameter: pageToken", location="pageToken")
        if not re.fullmatch(r"[1-9]\d{0,15}", token) or int(token) > s.next_change:
            raise invalid("pageToken", hint="not a page token this fake issued")
        start = int(token)
        page_size = self._int(p, "pageSize", 100, 1, 1000)
        include_removed = self._bool(p, "includeRemoved", default=True)
        restrict = self._bool(p, "restrictToMyDrive")
        all_drives = self._all_drives(p)
        include_all = self._bool(p, "includeItemsFromAllDrives", "includeTeamDriveItems")
        drive_id = p.get("driveId") or p.get("teamDriveId")
        if include_all and not all_drives:
            raise invalid("includeItemsFromAllDrives", "The includeItemsFromAllDrives parameter can only be set "
                          "to true if supportsAllDrives is also set to true.")
        if drive_id:
            if not all_drives:
                raise invalid("supportsAllDrives", "The supportsAllDrives parameter must be set to true when "
                              "driveId is specified.")
            if drive_id not in s.drives:
                raise DriveError(404, "notFound", f"Shared drive not found: {drive_id}", location="driveId")
        if set(p.get("spaces", "drive").split(",")) != {"drive"}:
            raise invalid("spaces", hint="only spaces=drive is modelled")

        def in_corpus(d: str | None) -> bool:
            if drive_id:
                return d == drive_id
            return d is None or (include_all and not restrict)

        latest: dict[str, object] = {}
        for rec in s.changes[start - 1:]:
            if in_corpus(rec.drive_id) or rec.file_id in latest:
                latest.pop(rec.file_id, None)
                latest[rec.file_id] = rec  # re-inserted: ordered by the file's latest change
        recs = sorted(latest.values(), key=lambda r: r.seq)
        n = min(page_size, self.change_page_size)
        changes = []
        last_seq = None
        for rec in recs:
            if len(changes) == n:
                break
            last_seq = rec.seq
            f = s.files.get(rec.file_id)
            removed = f is None or not in_corpus(f.drive_id)
            if removed and not include_removed:
                continue
            ch = {"kind": "drive#change", "changeType": "file", "time": rfc3339(rec.time), "removed": removed,
                  "fileId": rec.file_id}
            if not removed:
                ch["file"] = s.resource(f, self.root_url)
            changes.append(ch)
        out: dict = {"kind": "drive#changeList", "changes": changes}
        more = last_seq is not None and any(r.seq > last_seq for r in recs)
        if more:
            out["nextPageToken"] = str(last_seq + 1)
        else:
            out["newStartPageToken"] = str(s.next_change)
        return json_response(Q.select(p.get("fields"), Q.CHANGES_DEFAULT, "ChangeList", out))

    # -- drives, about -------------------------------------------------------------------------
    def drives_list(self, request: Request) -> Response:
        self.counters.add("drives.list")
        p = self._params(request, "drives.list")
        n = self._int(p, "pageSize", 10, 1, 100)
        drives = sorted(self.store.drives.values(), key=lambda d: (d.created, d.id))
        offset = 0
        if p.get("pageToken") is not None:
            cur = self.page_tokens.get(p["pageToken"])
            if cur is None or cur[0] != "drives":
                raise invalid("pageToken")
            offset = cur[1]
        out: dict = {"kind": "drive#driveList", "drives": [d.resource() for d in drives[offset:offset + n]]}
        if offset + n < len(drives):
            token = secrets.token_urlsafe(24)
            self.page_tokens[token] = ("drives", offset + n)
            out["nextPageToken"] = token
        return json_response(Q.select(p.get("fields"), Q.DRIVES_DEFAULT, "DriveList", out))

    def drives_get(self, request: Request, drive_id: str) -> Response:
        self.counters.add("drives.get")
        p = self._params(request, "drives.get")
        d = self.store.drives.get(drive_id)
        if d is None:
            raise DriveError(404, "notFound", f"Shared drive not found: {drive_id}", location="driveId")
        return json_response(Q.select(p.get("fields"), Q.DRIVE_DEFAULT, "Drive", d.resource()))

    def about_get(self, request: Request) -> Response:
        self.counters.add("about.get")
        p = self._params(request, "about.get")
        if not p.get("fields"):
            raise DriveError(400, "required", "The 'fields' parameter is required for this method.",
                             location="fields")
        s = self.store
        used = s.usage()
        trash = sum(len(f.data) for f in s.files.values()
                    if f.data is not None and f.drive_id is None and s.is_trashed(f))
        email = self.subject or s.user
        out = {"kind": "drive#about",
               "user": {"kind": "drive#user", "displayName": email.split("@")[0].title(), "me": True,
                        "emailAddress": email, "permissionId": "0" + str(int(hashlib.sha1(email.encode()).hexdigest(), 16) % 10**20)},
               "storageQuota": {"limit": str(15 * 1024**3), "usage": str(used), "usageInDrive": str(used),
                                "usageInDriveTrash": str(trash)},
               "maxUploadSize": str(5 * 1024**4), "appInstalled": False,
               "canCreateDrives": True, "importFormats": {}, "exportFormats": {
                   "application/vnd.google-apps." + k: list(v) for k, v in EXPORT_FORMATS.items()}}
        return json_response(Q.select(p["fields"], {}, "About", out))

    # -- uploads -------------------------------------------------------------------------------
    def _upload(self, request: Request, rest: str) -> Response:
        parts = rest.split("/")
        if parts == ["files"] and request.method == "POST":
            method, fid = "files.create", None
        elif len(parts) == 2 and parts[0] == "files" and request.method == "PATCH":
            method, fid = "files.update", parts[1]
        else:
            raise DriveError(404, "notFound", f"Not Found: {request.method} /upload/drive/v3/{rest}")
        p = self._params(request, method)
        utype = p.get("uploadType")
        if utype not in ("media", "multipart", "resumable"):
            raise bad_request("Upload requests must include an uploadType URL parameter and a URL path "
                              "beginning with /upload/", hint=f"uploadType={utype!r}")
        self._check_upload_quota()
        target = None
        if fid is not None:
            check_file_id(fid)
            target = self.store.get(fid, all_drives=self._all_drives(p))
        if utype == "resumable":
            self.counters.add("upload_session")
            body = self._json_body(request)
            self._check_body(body, update=fid is not None)
            if fid is None:
                self.store.check_parent((body.get("parents") or ["root"])[0], all_drives=self._all_drives(p))
            elif target.data is None:
                raise bad_request("Only files with binary content can be updated with media.")
            total = request.headers.get("X-Upload-Content-Length")
            if total is not None and not total.isdigit():
                raise bad_request("Invalid X-Upload-Content-Length.")
            session = self.sessions.create(fid, body, p, request.headers.get("X-Upload-Content-Type"),
                                           int(total) if total is not None else None)
            where = "files" if fid is None else f"files/{fid}"
            location = f"{self.root_url}upload/drive/v3/{where}?uploadType=resumable&upload_id={session.id}"
            return Response(b"", 200, headers={"Location": location, "X-GUploader-UploadID": session.id})
        self.counters.add(method)
        if utype == "media":
            body, data, mime = {}, request.get_data(), request.mimetype or None
        else:
            body, data, mime = parse_multipart_related(request)
        if len(data) > SIMPLE_MAX:
            raise bad_request("Media larger than 5 MB: use uploadType=resumable.",
                              hint=f"{len(data)} bytes with uploadType={utype} (limit 5 MB)")
        self.counters.add_bytes(uploaded=len(data))
        if target is None:
            f = self._new_file(body, p, data=data, media_mime=mime)
        else:
            f = target
            self._apply_update(f, body, p, data=data, media_mime=mime)
        return json_response(self._resource(f, p))

    def _chunk(self, request: Request, path: str) -> Response:
        upload_id = request.args.get("upload_id")
        if not upload_id or request.args.get("uploadType") != "resumable":
            raise bad_request("Upload requests must include an uploadType URL parameter and a URL path "
                              "beginning with /upload/", hint="a PUT needs uploadType=resumable&upload_id=...")
        session = self.sessions.get(upload_id)
        expected = "/upload/drive/v3/files" + (f"/{session.file_id}" if session.file_id else "")
        if path != expected:
            raise DriveError(404, "notFound", "Upload session not found.", hint="path does not match the session")
        body = request.get_data()
        if session.result is not None:
            self.counters.add("upload_status")
            return json_response(session.result)
        if body and self.fail_chunks > 0:
            self.fail_chunks -= 1
            self.counters.add("upload_chunk")
            self.counters.add("dropped_chunk")
            raise DropConnection("fail_upload_chunks: connection dropped, chunk not stored")
        if body:
            self._check_upload_quota()
        first, last, total = parse_chunk(request, session)
        if total is not None:
            session.total = total
        if first is None:
            self.counters.add("upload_status")
            if session.total is not None and session.total == len(session.received) == 0 and total == 0:
                return self._commit(session)
            return self._incomplete(session)
        self.counters.add("upload_chunk")
        session.received += body
        self.counters.add_bytes(uploaded=len(body))
        if session.total is not None and len(session.received) == session.total:
            return self._commit(session)
        return self._incomplete(session)

    @staticmethod
    def _incomplete(session) -> Response:
        headers = {"X-GUploader-UploadID": session.id}
        if session.received:
            headers["Range"] = f"bytes=0-{len(session.received) - 1}"
        return Response(b"", 308, headers=headers)

    def _commit(self, session) -> Response:
        p = session.args
        data = bytes(session.received)
        if session.file_id is None:
            f = self._new_file(session.metadata, p, data=data, media_mime=session.mime)
        else:
            f = self.store.get(session.file_id, all_drives=True)
            self._apply_update(f, session.metadata, p, data=data, media_mime=session.mime)
        session.result = self._resource(f, p)
        return json_response(session.result)
