"""How cloudgw's tree is laid out in S3 keys and metadata (see ``s3.py``):
revisions from ETags, POSIX attributes in user metadata, listings to entries."""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from typing import Any, Iterator

from cloudgw.remotes.base import FileAttrs, Kind, RemoteEntry

log = logging.getLogger(__name__)

META_MODE, META_UID, META_GID, META_MTIME = "cloudgw-mode", "cloudgw-uid", "cloudgw-gid", "cloudgw-mtime"


def rev_of(etag: str) -> str:
    """An ETag as a revision: without quotes or weak marker, so revs from HEAD,
    PUT, copy and listings compare equal whatever each response quoted."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def dt_to_ns(value: dt.datetime) -> int:
    return calendar.timegm(value.utctimetuple()) * 1_000_000_000 + value.microsecond * 1000


def attrs_to_meta(attrs: FileAttrs) -> dict[str, str]:
    meta = {}
    if attrs.mode is not None:
        meta[META_MODE] = format(attrs.mode & 0o7777, "o")
    if attrs.uid is not None:
        meta[META_UID] = str(attrs.uid)
    if attrs.gid is not None:
        meta[META_GID] = str(attrs.gid)
    if attrs.mtime_ns is not None:
        meta[META_MTIME] = str(attrs.mtime_ns)
    return meta


def meta_with_attrs(old: dict[str, str], attrs: FileAttrs, last_modified: dt.datetime | None) -> dict[str, str]:
    """An object's user metadata ``old`` with ``attrs`` set (None fields stay as they are; other
    keys -- a symlink's target, another tool's -- are kept).  An object that had no mtime of
    ours (written by another tool: shown at its LastModified) keeps showing that time, although
    the copy that stores the new metadata moves LastModified."""
    meta = {**old, **attrs_to_meta(attrs)}
    if meta != old and META_MTIME not in meta and last_modified is not None:
        meta[META_MTIME] = str(dt_to_ns(last_modified))
    return meta


# What a copy with MetadataDirective=REPLACE would otherwise drop or change (S3 resets the
# headers with the metadata, and gives the copy the STANDARD class and the bucket's default
# encryption unless told): taken from the source's HEAD.
_KEPT_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl",
                 "WebsiteRedirectLocation", "StorageClass")


def kept_headers(head: dict[str, Any]) -> dict[str, Any]:
    """The headers of the object ``head`` describes that a copy of it must repeat (see above);
    KMS encryption with its key (SSE-S3 is every bucket's default)."""
    kept = {name: head[name] for name in _KEPT_HEADERS if head.get(name)}
    if str(head.get("ServerSideEncryption", "")).startswith("aws:kms") and head.get("SSEKMSKeyId"):
        kept.update(ServerSideEncryption=head["ServerSideEncryption"], SSEKMSKeyId=head["SSEKMSKeyId"])
    return kept


def meta_to_attrs(meta: dict[str, str]) -> FileAttrs:
    """Attributes from user metadata; values another tool mangled are ignored."""

    def num(name: str, base: int = 10) -> int | None:
        try:
            return int(meta[name], base)
        except (KeyError, ValueError, TypeError):
            return None

    mode = num(META_MODE, 8)
    return FileAttrs(None if mode is None else mode & 0o7777, num(META_UID), num(META_GID), num(META_MTIME))


def head_entry(path: str, kind: Kind, head: dict[str, Any], target: str | None = None) -> RemoteEntry:
    """The full entry from a HEAD (or copy) response."""
    attrs = meta_to_attrs(head.get("Metadata") or {})
    last = head.get("LastModified")
    mtime = attrs.mtime_ns if attrs.mtime_ns is not None else (dt_to_ns(last) if last else 0)
    if kind is Kind.DIR:
        return RemoteEntry(path, kind, 0, mtime, None, attrs)
    return RemoteEntry(path, kind, int(head.get("ContentLength", 0)), mtime, rev_of(head["ETag"]), attrs, target)


def _valid(parts: list[str]) -> bool:
    return all(p not in ("", ".", "..") for p in parts)


class ListingWalker:
    """Turns ListObjectsV2 pages below ``base`` (the key prefix of directory
    ``path``) into entries, page by page.

    Recursive mode has no delimiter, so directories must be derived from keys;
    every directory is yielded exactly once with memory O(depth): all keys under
    one directory prefix are contiguous in S3's lexicographic order, so a
    directory is new exactly when it is not on the previous key's chain.
    Keys that cannot be names (``a//b``, ``.``, ``..``) are skipped.
    """

    def __init__(self, path: str, base: str, *, recursive: bool, symlink_suffix: str) -> None:
        self.path, self.base, self.recursive, self.suffix = path, base, recursive, symlink_suffix
        self.seen_any = False  # anything at all below base: the directory exists
        self._chain: list[str] = []  # directories of the previous key, outermost first

    def _join(self, rel: str) -> str:
        return f"{self.path}/{rel}" if self.path else rel

    def page(self, page: dict[str, Any]) -> Iterator[RemoteEntry]:
        for cp in page.get("CommonPrefixes") or []:
            self.seen_any = True
            name = cp["Prefix"][len(self.base) :].rstrip("/")
            if _valid([name]):
                yield RemoteEntry(self._join(name), Kind.DIR)
        for obj in page.get("Contents") or []:
            self.seen_any = True
            key: str = obj["Key"]
            if not key.startswith(self.base) or key == self.base:
                continue  # the directory's own marker
            yield from self._object(key[len(self.base) :], obj)

    def _object(self, rel: str, obj: dict[str, Any]) -> Iterator[RemoteEntry]:
        marker = rel.endswith("/")
        parts = rel[:-1].split("/") if marker else rel.split("/")
        if not marker and parts[-1].endswith(self.suffix):
            parts[-1] = parts[-1][: -len(self.suffix)]
            kind = Kind.SYMLINK
        else:
            kind = Kind.FILE
        if not _valid(parts):
            log.debug("skipping S3 key %r: not a valid path", self.base + rel)
            return
        dirs = parts if marker else parts[:-1]
        if self.recursive:
            chain = ["/".join(dirs[: i + 1]) for i in range(len(dirs))]
            for depth, d in enumerate(chain):
                if depth >= len(self._chain) or self._chain[depth] != d:
                    yield RemoteEntry(self._join(d), Kind.DIR)
            self._chain = chain
        if marker:
            return
        yield RemoteEntry(
            self._join("/".join(parts)),
            kind,
            int(obj.get("Size", 0)),
            dt_to_ns(obj["LastModified"]) if obj.get("LastModified") else 0,
            rev_of(obj.get("ETag", "")),
        )
