"""The in-memory drive model behind the fake Graph API.

A ``Drive`` holds items by id, one root folder, names that are
case-insensitive for lookup and conflicts (case preserved as created), an
``eTag`` (changes on any change of the item) and a ``cTag`` (content only;
for folders: when a descendant changes) per item, and an append-only change
log of item ids that the delta feed is computed from.  Every mutation goes
through this module, so changes made through the API and through the test
backdoor look alike.  Not thread-safe by itself: the server holds one lock
around every call.
"""

from __future__ import annotations

import base64
import datetime
import mimetypes
import re
import secrets
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from cloudgw.remotes.quickxor import quickxor_b64

MAX_PATH = 400  # characters in the decoded path from the drive root, name included (at most)
FORBIDDEN_CHARS = frozenset('"*:<>?/\\|')
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,7})?(Z|[+-]\d\d:\d\d)$")


class GraphError(Exception):
    """An error answer in Graph's shape: ``status`` + ``code`` (+ an inner ``innerError.code``)."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.inner = status, code, message, inner
        self.headers = headers or {}
        self.extra = extra or {}  # more members of the "error" object (e.g. nextExpectedRanges)


def not_found(what: str = "The resource could not be found.") -> GraphError:
    return GraphError(404, "itemNotFound", what)


def iso(ts: float) -> str:
    """Service time: ISO 8601 UTC, whole seconds, 'Z'."""
    return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_client_time(value: object) -> str:
    """A client-given fileSystemInfo time, validated; UTC 'Z' form, fraction kept (up to 7 digits)."""
    m = _TIME_RE.match(value) if isinstance(value, str) else None
    if not m:
        raise GraphError(400, "invalidRequest", f"Invalid DateTimeOffset value: {value!r}")
    stem, frac, zone = m.groups()
    try:
        when = datetime.datetime.fromisoformat(stem + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        raise GraphError(400, "invalidRequest", f"Invalid DateTimeOffset value: {value!r}") from None
    utc = when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return utc + (frac or "") + "Z"


def check_name(name: object) -> str:
    """400 invalidRequest/invalidPath unless ``name`` is allowed in OneDrive for Business/SharePoint."""
    if not isinstance(name, str) or not name:
        raise GraphError(400, "invalidRequest", "The name is missing or empty.", "invalidPath")
    bad = sorted(set(name) & FORBIDDEN_CHARS)
    why = None
    if bad:
        why = f"contains the character(s) {''.join(bad)}"
    elif any(ord(c) < 32 for c in name):
        why = "contains control characters"
    elif name != name.strip(" "):
        why = "starts or ends with a space"
    elif name.endswith("."):
        why = "ends with a period"
    elif name.split(".", 1)[0].upper() in _RESERVED:
        why = "is a reserved device name"
    elif name.lower() in (".lock", "desktop.ini"):
        why = "is a reserved name"
    elif name.startswith("~$"):
        why = "starts with ~$"
    elif "_vti_" in name.lower():
        why = "contains _vti_"
    if why:
        raise GraphError(400, "invalidRequest", f"The name {name!r} {why}.", "invalidPath")
    return name


def quote_segment(name: str) -> str:
    return urllib.parse.quote(name, safe="!$&'()*+,;=@")


def etag_matches(item: "Item", tag: str) -> bool:
    """``If-Match``: the item's eTag or (files, and folders on personal drives) its cTag, byte for byte.

    Tags are not split on commas: Business tags contain one ("{GUID},3")."""
    tag = tag.strip()
    return tag == "*" or tag in (item.etag(), item.ctag())


@dataclass
class Item:
    id: str
    name: str
    parent_id: str | None  # None for the root
    folder: bool
    guid: str
    created: float
    modified: float
    fs_created: str
    fs_modified: str
    data: bytes = b""
    qxh: str = ""
    etag_v: int = 1
    ctag_v: int = 1
    children: dict[str, str] = field(default_factory=dict)  # lower-cased name -> id (folders)

    def etag(self) -> str:
        return f'"{{{self.guid}}},{self.etag_v}"'

    def ctag(self) -> str:
        return f'"c:{{{self.guid}}},{self.ctag_v}"'


class Drive:
    """One drive (the user's OneDrive or one SharePoint library)."""

    def __init__(self, drive_id: str, drive_type: str, name: str, owner: str = "Test User",
                 web_url: str = "https://contoso-my.sharepoint.com/personal/test_contoso_com/Documents") -> None:
        self.id = drive_id
        self.drive_type = drive_type  # "business", "personal" or "documentLibrary"
        self.name = name
        self.owner = owner
        self.web_url = web_url
        self.items: dict[str, Item] = {}
        self.tombstones: dict[str, tuple[str | None, str]] = {}  # deleted id -> (parent id, name)
        self.log: list[str] = []  # item ids in change order; a delta position is an index into it
        self._counter = 0
        now = time.time()
        stamp = iso(now)
        self.root = Item(self._new_id(), "root", None, True, str(uuid.uuid4()).upper(), now, now, stamp, stamp)
        self.items[self.root.id] = self.root
        self.log.append(self.root.id)

    # -- ids, lookup ------------------------------------------------------------------------
    @property
    def personal(self) -> bool:
        return self.drive_type == "personal"

    def _new_id(self) -> str:
        self._counter += 1
        if self.personal:
            return f"{self.id.upper()}!{100 + self._counter}"
        return "01" + base64.b32encode(secrets.token_bytes(20)).decode()[:32]

    def get(self, item_id: str) -> Item:
        item = self.items.get(item_id)
        if item is None:
            raise not_found(f"Item not found: {item_id}")
        return item

    def child(self, folder: Item, name: str) -> Item | None:
        cid = folder.children.get(name.lower())
        return self.items[cid] if cid else None

    def resolve(self, base: Item, segments: list[str]) -> Item:
        item = base
        for seg in segments:
            nxt = self.child(item, seg) if item.folder else None
            if nxt is None:
                raise not_found("The resource could not be found.")
            item = nxt
        return item

    def names(self, item: Item) -> list[str]:
        out: list[str] = []
        while item.parent_id is not None:
            out.append(item.name)
            item = self.items[item.parent_id]
        return out[::-1]

    def is_within(self, item: Item, ancestor: Item) -> bool:
        while True:
            if item.id == ancestor.id:
                return True
            if item.parent_id is None:
                return False
            item = self.items[item.parent_id]

    def subtree(self, item: Item) -> list[Item]:
        """``item`` and its descendants, parents before children."""
        out, stack = [], [item]
        while stack:
            it = stack.pop()
            out.append(it)
            if it.folder:
                kids = sorted((self.items[c] for c in it.children.values()), key=lambda i: i.name.lower())
                stack.extend(reversed(kids))
        return out

    def size(self, item: Item) -> int:
        return sum(len(i.data) for i in self.subtree(item)) if item.folder else len(item.data)

    def unique_name(self, folder: Item, name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, dot, ext = name, "", ""
        n = 1
        while True:
            cand = f"{stem} {n}{dot}{ext}"
            if self.child(folder, cand) is None:
                return cand
            n += 1

    def check_path(self, parent: Item, name: str) -> None:
        full = "/".join(self.names(parent) + [name])
        if len(full) > MAX_PATH:
            raise GraphError(400, "invalidRequest", f"The path is {len(full)} characters long; "
                             f"it may have at most {MAX_PATH}.", "pathIsTooLong")

    # -- mutations (each one goes into the change log) ---------------------------------------
    def _changed(self, *ids: str) -> None:
        self.log.extend(ids)

    def _bump_ancestors(self, folder_id: str | None) -> None:
        while folder_id is not None:
            f = self.items[folder_id]
            f.ctag_v += 1
            folder_id = f.parent_id

    def _attach(self, parent: Item, item: Item) -> None:
        if not parent.folder:
            raise GraphError(400, "invalidRequest", f"{parent.name!r} is not a folder.")
        check_name(item.name)
        self.check_path(parent, item.name)
        item.parent_id = parent.id
        parent.children[item.name.lower()] = item.id

    def create(self, parent: Item, name: str, *, folder: bool, data: bytes = b"",
               fs: dict[str, str] | None = None) -> Item:
        if not parent.folder:
            raise GraphError(400, "invalidRequest", f"{parent.name!r} is not a folder.")
        if self.child(parent, name) is not None:
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
        now = time.time()
        fs = fs or {}
        item = Item(self._new_id(), name, None, folder, str(uuid.uuid4()).upper(), now, now,
                    fs.get("createdDateTime", iso(now)), fs.get("lastModifiedDateTime", iso(now)),
                    data=bytes(data), qxh="" if folder else quickxor_b64(data))
        self._attach(parent, item)
        self.items[item.id] = item
        self._bump_ancestors(parent.id)
        self._changed(parent.id, item.id)
        return item

    def write(self, item: Item, data: bytes, fs: dict[str, str] | None = None) -> Item:
        """Replace a file's content (same id; new eTag and cTag)."""
        if item.folder:
            raise GraphError(400, "invalidRequest", "Cannot write content to a folder.")
        now = time.time()
        item.data = bytes(data)
        item.qxh = quickxor_b64(item.data)
        item.modified = now
        fs = fs or {}
        item.fs_modified = fs.get("lastModifiedDateTime", iso(now))
        if "createdDateTime" in fs:
            item.fs_created = fs["createdDateTime"]
        item.etag_v += 1
        item.ctag_v += 1
        self._bump_ancestors(item.parent_id)
        self._changed(item.id)
        return item

    def update(self, item: Item, *, parent: Item | None = None, name: str | None = None,
               fs: dict[str, str] | None = None, replace: bool = False) -> Item:
        """Rename and/or move (same id) and/or set fileSystemInfo."""
        if item.parent_id is None:
            raise GraphError(403, "accessDenied", "The root of a drive cannot be changed.")
        old_parent = self.items[item.parent_id]
        new_parent = parent or old_parent
        new_name = item.name if name is None else name
        if not new_parent.folder:
            raise GraphError(400, "invalidRequest", f"{new_parent.name!r} is not a folder.")
        if item.folder and self.is_within(new_parent, item):
            raise GraphError(400, "invalidRequest", "A folder cannot be moved into itself or a descendant.")
        check_name(new_name)
        self.check_path(new_parent, new_name)
        clash = self.child(new_parent, new_name)
        if clash is not None and clash.id != item.id:
            if not replace or clash.folder or item.folder:
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            self.delete(clash)
        moved = new_parent.id != old_parent.id or new_name != item.name
        if moved:
            del old_parent.children[item.name.lower()]
            item.name = new_name
            item.parent_id = new_parent.id
            new_parent.children[new_name.lower()] = item.id
        if fs:
            item.fs_created = fs.get("createdDateTime", item.fs_created)
            item.fs_modified = fs.get("lastModifiedDateTime", item.fs_modified)
        if moved or fs:
            item.etag_v += 1
            item.modified = time.time()
            self._bump_ancestors(old_parent.id)
            if new_parent.id != old_parent.id:
                self._bump_ancestors(new_parent.id)
                self._changed(old_parent.id, new_parent.id)
            self._changed(item.id)
        return item

    def delete(self, item: Item) -> None:
        """Delete ``item`` (folders: with everything below); the folder is logged before its contents."""
        if item.parent_id is None:
            raise GraphError(403, "accessDenied", "The root of a drive cannot be deleted.")
        parent = self.items[item.parent_id]
        doomed = self.subtree(item)
        del parent.children[item.name.lower()]
        for it in doomed:
            del self.items[it.id]
            self.tombstones[it.id] = (it.parent_id, it.name)
        self._bump_ancestors(parent.id)
        self._changed(parent.id, *(it.id for it in doomed))

    # -- delta --------------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        return len(self.log)

    def all_ids(self) -> list[str]:
        return [it.id for it in self.subtree(self.root)]

    def changes_since(self, seq: int) -> list[str]:
        return list(self.log[seq:])

    # -- JSON -----------------------------------------------------------------------------------
    def drive_json(self) -> dict:
        used = self.size(self.root)
        total = 1024 ** 4
        return {"id": self.id, "driveType": self.drive_type, "name": self.name, "webUrl": self.web_url,
                "createdDateTime": iso(self.root.created), "lastModifiedDateTime": iso(time.time()),
                "owner": {"user": {"displayName": self.owner}},
                "quota": {"total": total, "used": used, "remaining": total - used, "deleted": 0,
                          "state": "normal"}}

    def item_json(self, item: Item, *, api_path: str | None, delta: bool = False) -> dict:
        """The driveItem JSON; ``api_path`` is "/drive" or "/drives/{id}" (None: no ``path``)."""
        pref: dict = {"driveId": self.id, "driveType": self.drive_type}
        if item.parent_id is not None:
            pref["id"] = item.parent_id
            if api_path is not None and not delta:
                parent_names = self.names(self.items[item.parent_id])
                pref["path"] = f"{api_path}/root:" + "".join("/" + quote_segment(n) for n in parent_names)
        web = self.web_url + "".join("/" + quote_segment(n) for n in self.names(item))
        out: dict = {
            "id": item.id, "name": item.name, "eTag": item.etag(),
            "size": self.size(item),
            "createdDateTime": iso(item.created), "lastModifiedDateTime": iso(item.modified),
            "webUrl": web,
            "createdBy": {"user": {"displayName": self.owner}},
            "lastModifiedBy": {"user": {"displayName": self.owner}},
            "parentReference": pref,
            "fileSystemInfo": {"createdDateTime": item.fs_created, "lastModifiedDateTime": item.fs_modified},
        }
        if (not item.folder or self.personal) and not (delta and not self.personal):
            out["cTag"] = item.ctag()
        if item.folder:
            out["folder"] = {"childCount": len(item.children)}
        else:
            mime = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
            out["file"] = {"mimeType": mime, "hashes": {"quickXorHash": item.qxh}}
        if item.parent_id is None:
            out["root"] = {}
        return out

    def delta_json(self, item_id: str) -> dict:
        item = self.items.get(item_id)
        if item is not None:
            return self.item_json(item, api_path=None, delta=True)
        parent_id, name = self.tombstones[item_id]
        out: dict = {"id": item_id, "deleted": {"state": "deleted"},
                     "parentReference": {"driveId": self.id, "driveType": self.drive_type, "id": parent_id}}
        if self.personal:  # Business omits cTag and name on deletes; consumer omits cTag and size
            out["name"] = name
        return out
