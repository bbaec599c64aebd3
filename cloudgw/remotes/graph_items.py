"""Graph driveItems as cloudgw sees them: addressing by path below the mounted folder,
``RemoteEntry`` from the JSON, and times.

Addressing: every call names an item relative to the mounted folder's id
(``/drives/D/items/ROOT:/a/b%20c:/content``), so renames of folders above the mount do
not matter and nothing keeps a path->id map.  Segments are percent-encoded once each
(``#``, ``%`` and spaces included).

Revisions: a file's ``rev`` is its ``cTag``, which changes with the content only -- a
rename or move made elsewhere keeps it, so the cache survives (the ``eTag`` changes on
any property).  ``If-Match`` takes either tag.  Where Graph leaves the cTag out (OneDrive
for Business does in some create answers), the item is read again to get it.  ``hash``
is the quickXorHash as lower-case hex (Graph gives base64).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import time
import urllib.parse

from cloudgw.remotes.base import Kind, RemoteEntry
from cloudgw.remotes.symlinks import is_link_object, link_name

SELECT = "id,name,eTag,cTag,size,file,folder,package,fileSystemInfo,lastModifiedDateTime,parentReference,deleted,root"


def quote_path(path: str) -> str:
    return "/".join(urllib.parse.quote(seg.encode("utf-8", "surrogateescape"), safe="") for seg in path.split("/"))


def item_url(drive: str, root_id: str, path: str, nav: str = "") -> str:
    """The API path of ``path`` (below the mounted folder ``root_id`` of drive URL ``drive``),
    with an optional navigation (``content``, ``children``, ``createUploadSession``)."""
    if not path:
        return f"{drive}/items/{root_id}" + (f"/{nav}" if nav else "")
    return f"{drive}/items/{root_id}:/{quote_path(path)}" + (f":/{nav}" if nav else ":")


def parse_time(text: str | None) -> int:
    """ISO 8601 UTC (``2026-12-05T16:11:06.1234567Z``) -> ns since the epoch; 0 if absent."""
    if not text:
        return 0
    text = text.rstrip("Z")
    whole, _, frac = text.partition(".")
    try:
        seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0
    digits = "".join(c for c in frac if c.isdigit())[:9]
    return seconds * 1_000_000_000 + (int(digits.ljust(9, "0")) if digits else 0)


def format_time(ns: int) -> str:
    """ns since the epoch -> what ``fileSystemInfo`` takes (100 ns steps, as NTFS keeps)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 100:07d}Z"


def hex_hash(item: dict) -> str | None:
    b64 = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
    if not b64:
        return None
    try:
        return base64.b64decode(b64).hex()
    except (binascii.Error, ValueError):
        return None


def mtime_of(item: dict) -> int:
    return parse_time((item.get("fileSystemInfo") or {}).get("lastModifiedDateTime") or item.get("lastModifiedDateTime"))


def entry_of(path: str, item: dict) -> RemoteEntry | None:
    """The entry for ``item`` found at ``path``; None for what the mount does not show
    (OneNote notebooks and other packages, remote items shared from other drives, folders
    named like symlink objects)."""
    name = path.rsplit("/", 1)[-1]
    if "folder" in item:
        if is_link_object(name):
            return None  # a folder under a reserved name: not ours, not shown (stat says ENOENT too)
        return RemoteEntry(path, Kind.DIR, 0, mtime_of(item), None, id=item.get("id"))
    if "file" not in item:
        return None
    kind = Kind.SYMLINK if is_link_object(name) else Kind.FILE
    if kind is Kind.SYMLINK:
        path = path[: len(path) - len(name)] + link_name(name)
    return RemoteEntry(path, kind, int(item.get("size") or 0), mtime_of(item), item.get("cTag"),
                       id=item.get("id"), hash=hex_hash(item))
