"""The in-memory Drive: files by id (one parent each, names may repeat), content with
md5/sha1/sha256 and headRevisionId, versions, trash, Google Docs with export formats,
shortcuts, shared drives, and the change log.  Not thread-safe: the server holds its lock."""

from __future__ import annotations

import calendar
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field

from . import ooxml
from .errors import DriveError, invalid, not_found

FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
GOOGLE_APPS = "application/vnd.google-apps."
DOC_KINDS = ("document", "spreadsheet", "presentation", "drawing")
EXPORT_LIMIT = 10 * 1024 * 1024  # files.export: "The exported content is limited to 10MB."

# Export formats per Docs Editors type (developers.google.com/drive/api/guides/ref-export-formats): mime -> ext
_PDF = ("application/pdf", "pdf")
_JPEG, _PNG, _SVG = ("image/jpeg", "jpeg"), ("image/png", "png"), ("image/svg+xml", "svg")
EXPORT_FORMATS: dict[str, dict[str, str]] = {
    "document": dict([
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
        ("application/vnd.oasis.opendocument.text", "odt"), ("application/rtf", "rtf"), _PDF,
        ("text/plain", "txt"), ("application/zip", "zip"), ("application/epub+zip", "epub"),
        ("text/markdown", "md")]),
    "spreadsheet": dict([
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
        ("application/x-vnd.oasis.opendocument.spreadsheet", "ods"), _PDF, ("text/csv", "csv"),
        ("text/tab-separated-values", "tsv"), ("application/zip", "zip")]),
    "presentation": dict([
        ("application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx"),
        ("application/vnd.oasis.opendocument.presentation", "odp"), _PDF, ("text/plain", "txt"),
        _JPEG, _PNG, _SVG]),
    "drawing": dict([_PDF, _JPEG, _PNG, _SVG]),
}


def now_ms() -> int:
    return int(time.time() * 1000)


def rfc3339(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def parse_rfc3339(value, what: str = "modifiedTime") -> int:
    """RFC 3339 date-time -> ms since the epoch; anything else -> 400 invalid."""
    m = _TS.match(value) if isinstance(value, str) else None
    if not m:
        raise DriveError(400, "invalid", f"Invalid value for {what}: {value!r}", location=what,
                         location_type="other")
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    try:
        secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        time.gmtime(secs)
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
            raise ValueError
    except (ValueError, OverflowError):
        raise DriveError(400, "invalid", f"Invalid value for {what}: {value!r}", location=what,
                         location_type="other") from None
    frac = int(((m.group(7) or ".0")[1:] + "000")[:3])
    tz = m.group(8)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * 1000 + frac


def new_file_id() -> str:
    return "1" + secrets.token_urlsafe(24)  # 33 characters, like real file ids


@dataclass
class SharedDrive:
    id: str
    name: str
    created: int

    def resource(self) -> dict:
        return {"kind": "drive#drive", "id": self.id, "name": self.name, "createdTime": rfc3339(self.created),
                "hidden": False, "capabilities": {"canAddChildren": True, "canDeleteChildren": True,
                                                  "canEdit": True, "canListChildren": True,
                                                  "canManageMembers": True, "canTrashChildren": True}}


@dataclass
class File:
    id: str
    name: str
    mime: str
    parent: str | None  # None: a root folder (My Drive root or a shared drive's root)
    drive_id: str | None  # a shared drive, or None (My Drive)
    created: int
    modified: int
    version: int
    data: bytes | None = None  # files with content only
    head_revision: str | None = None
    explicitly_trashed: bool = False
    description: str | None = None
    shortcut_target: str | None = None
    doc_text: str | None = None  # Google Docs: the text the export bytes derive from
    original_filename: str | None = None

    @property
    def is_folder(self) -> bool:
        return self.mime == FOLDER

    @property
    def doc_kind(self) -> str | None:
        if self.mime.startswith(GOOGLE_APPS):
            kind = self.mime[len(GOOGLE_APPS):]
            return kind if kind in DOC_KINDS else None
        return None


@dataclass
class ChangeRecord:
    seq: int
    file_id: str
    drive_id: str | None
    time: int


@dataclass
class Store:
    user: str
    root_id: str = field(default_factory=lambda: "0A" + secrets.token_urlsafe(14)[:17] + "Uk9PVA")
    files: dict[str, File] = field(default_factory=dict)
    drives: dict[str, SharedDrive] = field(default_factory=dict)
    changes: list[ChangeRecord] = field(default_factory=list)
    _version: int = 1

    def __post_init__(self) -> None:
        t = now_ms()
        self.files[self.root_id] = File(self.root_id, "My Drive", FOLDER, None, None, t, t, self._next_version())

    # -- helpers -----------------------------------------------------------------------------
    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def resolve_id(self, file_id: str) -> str:
        return self.root_id if file_id == "root" else file_id

    def get(self, file_id: str, *, all_drives: bool = True) -> File:
        """The file, or 404 notFound; items of shared drives are found only with supportsAllDrives=true."""
        f = self.files.get(self.resolve_id(file_id))
        if f is None or (f.drive_id is not None and not all_drives):
            raise not_found(file_id)
        return f

    def ancestors(self, f: File) -> list[File]:
        out = []
        while f.parent is not None:
            f = self.files[f.parent]
            out.append(f)
        return out

    def is_trashed(self, f: File) -> bool:
        return f.explicitly_trashed or any(a.explicitly_trashed for a in self.ancestors(f))

    def children(self, folder_id: str) -> list[File]:
        return [f for f in self.files.values() if f.parent == folder_id]

    def subtree(self, f: File) -> list[File]:
        """``f`` and everything below it, parents before children."""
        out, todo = [], [f]
        while todo:
            cur = todo.pop(0)
            out.append(cur)
            todo.extend(self.children(cur.id))
        return out

    def log(self, f: File) -> None:
        self.changes.append(ChangeRecord(len(self.changes) + 1, f.id, f.drive_id, now_ms()))

    def touch(self, f: File, modified: int | None = None) -> None:
        f.version = self._next_version()
        if modified is not None:
            f.modified = modified
        self.log(f)

    @property
    def next_change(self) -> int:
        return len(self.changes) + 1

    # -- mutations ---------------------------------------------------------------------------
    def check_parent(self, parent_id: str, *, all_drives: bool = True) -> File:
        parent = self.files.get(self.resolve_id(parent_id))
        if parent is None or (parent.drive_id is not None and not all_drives):
            raise DriveError(404, "notFound", f"File not found: {parent_id}.", location="parents",
                             location_type="other")
        if not parent.is_folder:
            raise DriveError(400, "badRequest", "The specified parent is not a folder.",
                             hint=f"parent {parent_id} is a {parent.mime}")
        return parent

    def create(self, parent_id: str, name: str, mime: str, *, data: bytes | None = None,
               created: int | None = None, modified: int | None = None, description: str | None = None,
               shortcut_target: str | None = None, doc_text: str | None = None,
               all_drives: bool = True) -> File:
        parent = self.check_parent(parent_id, all_drives=all_drives)
        t = now_ms()
        f = File(new_file_id(), name, mime, parent.id, parent.drive_id, created or t, modified or t,
                 self._next_version(), description=description)
        if mime == SHORTCUT:
            target = self.files.get(shortcut_target or "")
            if target is None:
                raise DriveError(400, "badRequest", "The shortcut target is invalid.",
                                 hint="shortcutDetails.targetId missing or unknown")
            f.shortcut_target = target.id
        elif f.doc_kind is not None:
            f.doc_text = doc_text or ""
        elif not f.is_folder and not mime.startswith(GOOGLE_APPS):
            f.data = data or b""
            f.head_revision = "0B" + secrets.token_urlsafe(30)
            f.original_filename = name
        self.files[f.id] = f
        self.log(f)
        return f

    def set_content(self, f: File, data: bytes, *, mime: str | None = None, modified: int | None = None) -> None:
        if f.data is None:
            raise DriveError(400, "badRequest", "Only files with binary content can be updated with media.",
                             hint=f"{f.mime} has no binary content")
        f.data = bytes(data)
        f.head_revision = "0B" + secrets.token_urlsafe(30)
        if mime:
            f.mime = mime
        self.touch(f, modified if modified is not None else now_ms())

    def edit_doc(self, f: File, text: str) -> None:
        f.doc_text = text
        self.touch(f, now_ms())

    def move(self, f: File, new_parent_id: str, *, all_drives: bool = True) -> None:
        parent = self.check_parent(new_parent_id, all_drives=all_drives)
        if parent.id == f.id or f in self.ancestors(parent):
            raise DriveError(400, "badRequest", "The specified parent would create a cycle.",
                             hint="a folder into itself or a descendant")
        if parent.drive_id != f.drive_id and f.is_folder:
            raise DriveError(403, "teamDrivesFolderMoveInNotSupported",
                             "Moving folders into shared drives is not supported.")
        for x in self.subtree(f):
            x.drive_id = parent.drive_id
        f.parent = parent.id

    def set_trashed(self, f: File, trashed: bool) -> None:
        if f.parent is None:
            raise DriveError(403, "insufficientFilePermissions", "The user does not have sufficient permissions "
                             "for this file.", hint="the root folder cannot be trashed")
        f.explicitly_trashed = trashed
        f.version = self._next_version()
        for x in self.subtree(f):
            if x is not f:
                x.version = self._next_version()
            self.log(x)

    def delete(self, f: File) -> None:
        if f.parent is None:
            raise DriveError(403, "insufficientFilePermissions",
                             "The user does not have sufficient permissions for this file.",
                             hint="a root folder cannot be deleted")
        for x in reversed(self.subtree(f)):
            del self.files[x.id]
            self.changes.append(ChangeRecord(len(self.changes) + 1, x.id, x.drive_id, now_ms()))

    def create_shared_drive(self, name: str) -> SharedDrive:
        d = SharedDrive("0A" + secrets.token_urlsafe(14)[:17], name, now_ms())
        self.drives[d.id] = d
        t = d.created
        # A shared drive's root folder has the drive's id (as on Drive).
        self.files[d.id] = File(d.id, name, FOLDER, None, d.id, t, t, self._next_version())
        return d

    # -- views -------------------------------------------------------------------------------
    def export(self, f: File, mime: str) -> bytes:
        """Deterministic bytes from the doc's text, kind, target format and version: a minimal
        OOXML zip for docx/xlsx/pptx (``ooxml.py``), else a header line and the text."""
        kind = f.doc_kind
        header = f"[{kind} {f.id} exported as {mime}, version {f.version}]"
        if mime in ooxml.BUILDERS:  # .docx, .xlsx, .pptx: a minimal OOXML package holding the same lines
            return ooxml.BUILDERS[mime]([header, *(f.doc_text or "").split("\n")])
        return (header + "\n").encode() + (f.doc_text or "").encode()

    def export_links(self, f: File, root_url: str) -> dict[str, str]:
        kind = f.doc_kind
        return {mime: f"{root_url}download/export/{kind}?id={f.id}&exportFormat={ext}"
                for mime, ext in EXPORT_FORMATS[kind].items()}

    def resource(self, f: File, root_url: str) -> dict:
        """The files resource with every field the fake models."""
        trashed = self.is_trashed(f)
        r: dict = {"kind": "drive#file", "id": f.id, "name": f.name, "mimeType": f.mime, "starred": False,
                   "trashed": trashed, "explicitlyTrashed": f.explicitly_trashed,
                   "spaces": ["drive"], "version": str(f.version),
                   "createdTime": rfc3339(f.created), "modifiedTime": rfc3339(f.modified),
                   "viewedByMe": True, "shared": f.drive_id is not None,
                   "webViewLink": f"https://drive.google.com/file/d/{f.id}/view",
                   "capabilities": {"canEdit": True, "canRename": True, "canTrash": True, "canDelete": True,
                                    "canDownload": True, "canCopy": not f.is_folder,
                                    "canAddChildren": f.is_folder, "canListChildren": f.is_folder,
                                    "canMoveItemWithinDrive": f.parent is not None,
                                    "canReadRevisions": f.data is not None, "canUntrash": True}}
        if f.parent is not None:
            r["parents"] = [f.parent]
        if f.drive_id is not None:
            r["driveId"] = f.drive_id
        else:
            r["ownedByMe"] = True
            r["owners"] = [{"kind": "drive#user", "emailAddress": self.user, "me": True,
                            "displayName": self.user.split("@")[0].title()}]
        if f.description is not None:
            r["description"] = f.description
        if f.data is not None:
            r["size"] = str(len(f.data))
            r["quotaBytesUsed"] = str(len(f.data))
            r["md5Checksum"] = hashlib.md5(f.data).hexdigest()
            r["sha1Checksum"] = hashlib.sha1(f.data).hexdigest()
            r["sha256Checksum"] = hashlib.sha256(f.data).hexdigest()
            r["headRevisionId"] = f.head_revision
            r["originalFilename"] = f.original_filename or f.name
            if "." in f.name.strip("."):
                r["fullFileExtension"] = f.name.split(".", 1)[1] if not f.name.startswith(".") else f.name[1:]
                r["fileExtension"] = f.name.rsplit(".", 1)[1]
        else:
            r["quotaBytesUsed"] = "0"
        if f.shortcut_target is not None:
            target = self.files.get(f.shortcut_target)
            r["shortcutDetails"] = {"targetId": f.shortcut_target,
                                    "targetMimeType": target.mime if target else "application/octet-stream"}
        if f.doc_kind is not None:
            r["exportLinks"] = self.export_links(f, root_url)
        return r

    def usage(self) -> int:
        return sum(len(f.data) for f in self.files.values() if f.data is not None and f.drive_id is None)


def check_file_id(file_id: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", file_id or ""):
        raise not_found(file_id)


__all__ = ["DOC_KINDS", "EXPORT_FORMATS", "EXPORT_LIMIT", "FOLDER", "File", "GOOGLE_APPS", "SHORTCUT",
           "SharedDrive", "Store", "check_file_id", "invalid", "now_ms", "parse_rfc3339", "rfc3339"]
