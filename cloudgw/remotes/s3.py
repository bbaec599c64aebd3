"""S3 and S3-compatible stores: one file = one object, readable by any tool.

Layout under ``prefix`` (keys are ``prefix + path``; see ``s3_layout``):
- a file is the object ``path``; POSIX attributes live in user metadata
  (``x-amz-meta-cloudgw-mode`` in octal, ``-uid``, ``-gid``, ``-mtime`` in ns);
- a directory made by ``mkdir`` is a zero-byte marker ``path/``; directories are
  also implied by deeper keys (objects written by other tools), and an implied
  directory disappears with its last object, as on every S3 tool;
- a symlink is the object ``path.cloudgw-symlink`` whose body is the target
  (listings show it as ``Kind.SYMLINK`` named ``path``); names ending in that
  suffix are therefore reserved (``RemoteUnsupported``).
Listings cannot carry metadata: listed files have ``mtime = LastModified`` and
empty attrs; ``stat`` (HEAD) returns everything.  Revisions are ETags without
quotes.  S3 lets a file and a directory share a name: ``stat`` then reports
the file, ``list`` reports both.

Writes (crash behaviour): up to ``multipart_threshold`` one PUT of the bytes,
``source.check()`` right before it; above it a multipart upload (memory:
``upload_parallelism`` x ``part_size``) with ``source.check()`` and the
expectation checked again right before CompleteMultipartUpload.  Any failure,
``SourceChanged`` or cancellation aborts the upload; a crash leaves an
incomplete upload for ``abort_incomplete_uploads``.  The old object stays
until the new one is complete.

Delta writes: when the write replaces the very revision a ``DeltaSource``'s
unchanged ranges are based on, every part that lies wholly in an unchanged
range is an UploadPartCopy from the old object (from where the source says those
bytes are in it, ``DeltaSource.base_offset``; pinned to that revision with
CopySourceIfMatch where the server honours it, and guarded by the HEAD before
CompleteMultipartUpload where it does not); only the other parts are sent.

Conditional writes (concurrency): ``expect`` is always checked with a HEAD
first; that is check-then-write, and another client can write between the
HEAD and our PUT unless the server enforces the If-Match / If-None-Match
headers we also send (see ``s3_bucket``: moto enforces them on PUT, Swift only
on CompleteMultipartUpload and DELETE).  ``Capabilities.conditional_write`` is
True only when ``conditional_writes=True`` forces the headers.  ``copy`` takes the
same expectation for its destination, and pins its source (``S3Remote.copy``).

Attributes alone (``set_attrs``: a chmod, chown or touch of a file already there): the
object copied onto itself with new metadata (see ``S3Remote.set_attrs``).

rename = server-side copy (metadata kept; multipart UploadPartCopy above
``copy_threshold``) + DELETE of the source with If-Match; a crash in between
leaves both (a duplicate, never a loss).  Directories cannot be renamed here
(``RemoteUnsupported``): that is one copy per object, the caller's business.
"""

from __future__ import annotations

import errno
import time
import urllib.parse
from typing import Any, AsyncIterator, Callable, Collection

from cloudgw.errors import (
    PreconditionFailed,
    RemoteError,
    RemoteExists,
    RemoteNotEmpty,
    RemoteNotFound,
    RemoteUnsupported,
    SourceChanged,
)
from cloudgw.remotes.base import (Capabilities, delta_base, Expect, FileAttrs, Kind, RemoteEntry, StreamedReads,
                                  UploadSource)
from cloudgw.remotes import names
from cloudgw.remotes.registry import Common, Option, RemoteType, RemoteURL
from cloudgw.remotes.util import remote_error, split_path
from cloudgw.remotes.s3_bucket import MiB, S3Bucket
from cloudgw.remotes.s3_errors import check_error
from cloudgw.remotes.s3_layout import ListingWalker, attrs_to_meta, head_entry, kept_headers, meta_with_attrs, rev_of

SYMLINK_SUFFIX = ".cloudgw-symlink"
MAX_KEY_BYTES = 1024  # S3's limit; moto does not enforce it, real S3 answers KeyTooLongError
_KEY_EXTRA = {"write": 0, "mkdir": 1, "symlink": len(SYMLINK_SUFFIX)}  # bytes each adds to the key
META_TARGET = "cloudgw-symlink-target"  # the target again, URL-quoted, so stat can fill symlink_target


class S3Remote(StreamedReads):
    """A bucket (or a prefix of one) as a remote; see the module docstring."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        path_style: bool | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        profile: str | None = None,
        conditional_writes: bool | None = None,
        multipart_threshold: int = 16 * MiB,
        part_size: int = 8 * MiB,
        upload_parallelism: int = 4,
        copy_threshold: int = 5 * 1024 * MiB,
        max_threads: int = 16,
        retry_deadline: float = 30.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        stale_upload_age: float = 3600.0,
    ) -> None:
        """Credentials, region and endpoint come from boto3's standard chain
        (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
        AWS_ENDPOINT_URL, ~/.aws) unless given.  ``path_style`` None: path-style
        addressing exactly when a custom endpoint is configured.
        ``conditional_writes``: None = auto, True = always send the headers,
        False = never (check-then-write only)."""
        self.bucket = bucket
        clean = prefix.strip("/")
        self.prefix = "/".join(split_path(clean)) + "/" if clean else ""
        self.multipart_threshold = max(multipart_threshold, 1)
        self.copy_threshold = copy_threshold
        self.stale_upload_age = stale_upload_age
        self.s3 = S3Bucket(
            bucket,
            endpoint_url=endpoint_url,
            region=region,
            path_style=path_style,
            access_key=access_key,
            secret_key=secret_key,
            profile=profile,
            conditional_writes=conditional_writes,
            part_size=part_size,
            parallelism=upload_parallelism,
            max_threads=max_threads,
            retry_deadline=retry_deadline,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.endpoint = self.s3.endpoint
        self.capabilities = Capabilities(
            hash_kind=None,  # multipart ETags are not a content hash
            conditional_write=conditional_writes is True,
            server_side_copy=True,
            delta_writes=True,  # UploadPartCopy of unchanged parts (above multipart_threshold)
            streaming_reads=True,  # read_into: one GET streamed over a whole read-ahead run
            native_symlinks=False,
            keeps_mode=True,
            keeps_mtime=True,
        )

    def __repr__(self) -> str:
        return f"S3Remote({self.s3.url(self.prefix)!r}, endpoint={self.endpoint!r})"

    def _key(self, path: str, what: str = "", *, leaf: bool = False) -> str:
        """The object key of ``path``; ``leaf``: a name we may create or remove."""
        parts = split_path(path)
        if leaf:
            if not parts:
                raise RemoteUnsupported(f"{what}: not possible on the root")
            if parts[-1].endswith(SYMLINK_SUFFIX):
                raise RemoteUnsupported(f"{what} {path!r}: names ending in {SYMLINK_SUFFIX} are reserved")
        key = self.prefix + "/".join(parts)
        if leaf and what in _KEY_EXTRA and (n := len(key.encode()) + _KEY_EXTRA[what]) > MAX_KEY_BYTES:
            raise RemoteUnsupported(f"{what} {path[:60]!r}...: the S3 key would be {n} bytes, too long"
                                    f" (S3 allows {MAX_KEY_BYTES}); the file stays in the cache only")
        return key

    async def check(self) -> None:
        exc, detail = await self.s3.probe()
        if exc is not None:
            raise check_error(
                exc,
                bucket=self.bucket,
                endpoint=self.endpoint,
                region=self.s3.client.meta.region_name,
                access_key=await self.s3.access_key(),
                detail_code=detail,
            ) from None

    async def stat(self, path: str) -> RemoteEntry:
        if not path:
            return RemoteEntry("", Kind.DIR)
        key = self._key(path)
        if (head := await self.s3.head(key)) is not None:
            return head_entry(path, Kind.FILE, head)
        if (head := await self.s3.head(key + SYMLINK_SUFFIX)) is not None:
            target = (head.get("Metadata") or {}).get(META_TARGET)
            return head_entry(path, Kind.SYMLINK, head, urllib.parse.unquote(target) if target else None)
        found = await self.s3.call(f"LIST {self.s3.url(key + '/')}", "list_objects_v2", Prefix=key + "/", MaxKeys=1)
        contents = found.get("Contents") or []
        if not contents:
            raise RemoteNotFound(f"stat {self.s3.url(key)}: no such file or directory")
        if contents[0]["Key"] == key + "/" and (marker := await self.s3.head(key + "/")) is not None:
            return head_entry(path, Kind.DIR, marker)  # mkdir's attributes
        return RemoteEntry(path, Kind.DIR)

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        """One ListObjectsV2 page (<= 1000 keys) at a time; ``Delimiter="/"``
        unless recursive (see ``ListingWalker`` for implied directories)."""
        base = self._key(path) + "/" if path else self.prefix
        walker = ListingWalker(path, base, recursive=recursive, symlink_suffix=SYMLINK_SUFFIX)
        kwargs: dict[str, Any] = {"Prefix": base} if recursive else {"Prefix": base, "Delimiter": "/"}
        while True:
            page = await self.s3.call(f"LIST {self.s3.url(base)}", "list_objects_v2", **kwargs)
            for entry in walker.page(page):
                yield entry
            if not page.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
        if path and not walker.seen_any:
            raise RemoteNotFound(f"list {self.s3.url(base)}: no such directory")

    async def read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                        rev: str | None = None) -> None:
        """Every ranged GET goes here (``read`` too): one GET streamed into ``sink``, resumed
        where it breaks (``S3Bucket.get_into``)."""
        key = self._key(path)
        what = f"GET {self.s3.url(key)}"
        cond = {"IfMatch": f'"{rev_of(rev)}"'} if rev is not None else {}
        if length <= 0:  # nothing to read: the revision check alone
            await self.s3.call(what, "head_object", Key=key, **cond)
            return
        await self.s3.get_into(what, key, offset, length, sink, **cond)

    async def write(
        self,
        path: str,
        source: UploadSource,
        *,
        expect: Expect | str = Expect.ANY,
        attrs: FileAttrs = FileAttrs(),
    ) -> RemoteEntry:
        key = self._key(path, "write", leaf=True)
        what = f"PUT {self.s3.url(key)}"
        await self.s3.check_expect(key, expect, what)
        if attrs.mtime_ns is None:  # store the write time, so stat() answers what we return
            attrs = FileAttrs(attrs.mode, attrs.uid, attrs.gid, time.time_ns())
        meta = attrs_to_meta(attrs)
        if source.size <= self.multipart_threshold:
            data = await self.s3.thread(source.read, 0, source.size)
            if len(data) != source.size:
                raise SourceChanged(f"{what}: source returned {len(data)} bytes, expected {source.size}")
            await self.s3.thread(source.check)
            etag = await self.s3.put(key, data, meta, expect, what)
        else:
            delta = delta_base(source, expect)

            async def part(upload_id: str, number: int, off: int, length: int) -> str:
                if delta is not None and delta.unchanged(off, length):
                    etag = await self.s3.copy_part(f"{what} (part {number}, copied)", key, expect, key, upload_id,
                                                   number, delta.base_offset(off), length)
                    await self.s3.thread(delta.copied, off, length)
                    return etag
                data = await self.s3.thread(source.read, off, length)
                if len(data) != length:
                    raise SourceChanged(f"{what}: source returned {len(data)} bytes at {off}, expected {length}")
                resp = await self.s3.call(f"{what} (part {number})", "upload_part", Key=key, UploadId=upload_id,
                                          PartNumber=number, Body=data)
                return resp["ETag"]

            async def before_complete() -> None:
                await self.s3.thread(source.check)
                await self.s3.check_expect(key, expect, what)  # again: the parts took a while

            layout = self.s3.parts(source.size, delta.unchanged if delta is not None else None)
            etag = await self.s3.multipart(key, what, source.size, meta, part, before_complete, expect, layout)
        return RemoteEntry(path, Kind.FILE, source.size, attrs.mtime_ns or 0, rev_of(etag), attrs)

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        """Write the marker ``path/`` (parents stay implied by it)."""
        if not path:
            return RemoteEntry("", Kind.DIR)
        key = self._key(path, "mkdir", leaf=True)
        if await self.s3.head(key) is not None or await self.s3.head(key + SYMLINK_SUFFIX) is not None:
            raise RemoteExists(f"mkdir {self.s3.url(key)}: a file or symlink has that name")
        marker = await self.s3.head(key + "/")
        if marker is not None:
            existing = head_entry(path, Kind.DIR, marker)
            if attrs in (FileAttrs(), existing.attrs):
                return existing
        await self.s3.call(f"PUT {self.s3.url(key + '/')}", "put_object", Key=key + "/", Body=b"",
                           Metadata=attrs_to_meta(attrs))
        return RemoteEntry(path, Kind.DIR, 0, attrs.mtime_ns or time.time_ns(), None, attrs)

    async def set_attrs(self, path: str, attrs: FileAttrs, *, expect: str | None = None) -> RemoteEntry:
        """New attribute metadata for a file or directory (``base.Remote``'s optional part).

        A file: the object copied onto itself with MetadataDirective REPLACE (its other
        metadata and headers kept: ``s3_layout.meta_with_attrs``/``kept_headers``), after a
        HEAD that checks ``expect`` and pinned to that ETag (CopySourceIfMatch) where the
        server honours it -- moto does not: a check-then-copy window, as for writes; what it
        can do is re-label another client's new content, never lose it.  A single-part object
        keeps its ETag (the MD5 of the same bytes: another one means other content was copied,
        ``PreconditionFailed``; so does an SSE-KMS object's, whose ETag is no MD5 -- the caller
        then refetches it once); a multipart one gets a new ETag, returned.
        Above ``copy_threshold`` the copy is multipart (UploadPartCopy), checked again before
        it completes.  A directory: its marker written anew (an implied directory gets one).
        Metadata already as asked: nothing is sent.  An archived object (Glacier) cannot be
        copied: ``RemoteUnsupported`` (its attributes stay).  Crash: the copy either completed
        or not; an interrupted multipart copy is an incomplete upload (``abort_incomplete_uploads``).
        """
        key = self._key(path, "set_attrs", leaf=True)
        what = f"set_attrs {self.s3.url(key)}"
        head = await self.s3.head(key)
        if head is None:
            if expect is not None:
                raise PreconditionFailed(f"{what}: expected revision {expect}, but it is gone")
            return await self._set_dir_attrs(path, key, attrs, what)
        if expect is not None and rev_of(head["ETag"]) != rev_of(expect):
            raise PreconditionFailed(f"{what}: expected revision {expect}, found {rev_of(head['ETag'])}")
        old = head.get("Metadata") or {}
        meta = meta_with_attrs(old, attrs, head.get("LastModified"))
        if meta == old:
            return head_entry(path, Kind.FILE, head)
        if head.get("StorageClass") in ("GLACIER", "DEEP_ARCHIVE"):
            raise RemoteUnsupported(f"{what}: an archived object ({head['StorageClass']}) cannot be copied")
        etag = await self.s3.copy(key, key, head, what, self.copy_threshold, meta=meta)
        single = head["ContentLength"] <= self.copy_threshold and "-" not in rev_of(head["ETag"])
        if single and rev_of(etag) != rev_of(head["ETag"]):
            # The same bytes give the same MD5 ETag: other content was copied (a server that
            # ignores the pin).  Its new metadata stays on it; the poll takes it as theirs.
            raise PreconditionFailed(f"{what}: the object changed while its metadata was replaced")
        return head_entry(path, Kind.FILE, {**head, "ETag": etag, "Metadata": meta})

    async def _set_dir_attrs(self, path: str, key: str, attrs: FileAttrs, what: str) -> RemoteEntry:
        marker = await self.s3.head(key + "/")
        if marker is None:
            if await self.s3.head(key + SYMLINK_SUFFIX) is not None:
                raise RemoteUnsupported(f"{what}: a symlink keeps no attributes here")
            found = await self.s3.call(f"LIST {self.s3.url(key + '/')}", "list_objects_v2", Prefix=key + "/",
                                       MaxKeys=1)
            if not found.get("Contents"):
                raise RemoteNotFound(f"{what}: no such file or directory")
        old = (marker or {}).get("Metadata") or {}
        meta = meta_with_attrs(old, attrs, (marker or {}).get("LastModified"))
        if marker is not None and meta == old:
            return head_entry(path, Kind.DIR, marker)
        await self.s3.call(f"PUT {self.s3.url(key + '/')}", "put_object", Key=key + "/", Body=b"", Metadata=meta,
                           **kept_headers(marker or {}))
        return head_entry(path, Kind.DIR, {"Metadata": meta})

    async def rmdir(self, path: str) -> None:
        key = self._key(path, "rmdir", leaf=True)
        found = await self.s3.call(f"LIST {self.s3.url(key + '/')}", "list_objects_v2", Prefix=key + "/", MaxKeys=2)
        keys = [c["Key"] for c in found.get("Contents") or []]
        if any(k != key + "/" for k in keys):
            raise RemoteNotEmpty(f"rmdir {self.s3.url(key)}: directory not empty")
        if keys:
            await self.s3.call(f"DELETE {self.s3.url(key + '/')}", "delete_object", Key=key + "/")

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        key = self._key(path, "delete", leaf=True)
        what = f"DELETE {self.s3.url(key)}"
        if expect is None:
            for k in (key, key + SYMLINK_SUFFIX):  # one of them, whichever kind it is
                await self.s3.call(what, "delete_object", Key=k)
            return
        target, head = key, await self.s3.head(key)
        if head is None:
            target, head = key + SYMLINK_SUFFIX, await self.s3.head(key + SYMLINK_SUFFIX)
        if head is None:
            return  # already gone: fine
        if rev_of(head["ETag"]) != rev_of(expect):
            raise PreconditionFailed(f"{what}: expected revision {expect}, found {rev_of(head['ETag'])}")
        try:
            await self.s3.conditional(what, "delete", "delete_object", expect, target, None, Key=target)
        except PreconditionFailed:
            if await self.s3.head(target) is not None:
                raise  # changed between our HEAD and the DELETE
            # deleted by someone else meanwhile: that is what we wanted

    async def _source(self, src: str, what: str) -> tuple[str, Kind, dict]:
        key = self._key(src, what, leaf=True)
        if (head := await self.s3.head(key)) is not None:
            return key, Kind.FILE, head
        if (head := await self.s3.head(key + SYMLINK_SUFFIX)) is not None:
            return key + SYMLINK_SUFFIX, Kind.SYMLINK, head
        try:
            await self.stat(src)
        except RemoteNotFound:
            raise RemoteNotFound(f"{what} {self.s3.url(key)}: no such file") from None
        raise RemoteUnsupported(f"{what} {self.s3.url(key)}: directories cannot be renamed or copied on S3")

    async def _copy(self, src: str, dst: str, what: str, rev: str | None,
                    expect: Expect | str = Expect.ANY) -> tuple[str, dict, RemoteEntry]:
        """Copy ``src`` (at ``rev``, if given) to ``dst`` (as ``expect`` says); the object of the
        other kind at ``dst`` (``NAME`` vs ``NAME.cloudgw-symlink``) is removed afterwards."""
        skey, kind, head = await self._source(src, what)
        if rev is not None and rev_of(head["ETag"]) != rev_of(rev):
            raise PreconditionFailed(
                f"{what} {self.s3.url(skey)}: expected revision {rev}, found {rev_of(head['ETag'])}")
        dkey = self._key(dst, what, leaf=True)
        target, other = (dkey, dkey + SYMLINK_SUFFIX) if kind is Kind.FILE else (dkey + SYMLINK_SUFFIX, dkey)
        what = f"{what} {self.s3.url(skey)} -> {self.s3.url(target)}"
        await self.s3.check_expect(target, expect, what)
        if expect is Expect.ABSENT:
            await self.s3.check_expect(other, expect, what)  # the name is taken by the other kind
        etag = await self.s3.copy(skey, target, head, what, self.copy_threshold, expect=expect)
        await self.s3.call(f"DELETE {self.s3.url(other)}", "delete_object", Key=other)  # dst of the other kind
        target_text = (head.get("Metadata") or {}).get(META_TARGET)
        entry = head_entry(dst, kind, {**head, "ETag": etag}, urllib.parse.unquote(target_text) if target_text else None)
        return skey, head, entry

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        skey, head, entry = await self._copy(src, dst, "rename", expect)
        try:
            await self.s3.conditional(f"DELETE {self.s3.url(skey)}", "delete", "delete_object",
                                      rev_of(head["ETag"]), skey, None, Key=skey)
        except PreconditionFailed:
            pass  # changed by someone else after our copy: their version stays at src, nothing lost
        return entry

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        """Server-side copy: the source pinned to ``rev`` (CopySourceIfMatch), the destination
        conditional as in ``write`` (HEAD-checked, then IfMatch/IfNoneMatch on CopyObject or,
        above ``copy_threshold``, on CompleteMultipartUpload).  Where the server ignores those
        headers (auto mode learns a 501; moto 5.2 without tests/servers/moto_atomic) another client
        can write ``dst`` between our HEAD and the copy, which then replaces it: the same window
        as ``write``'s.  ``PreconditionFailed`` leaves ``dst`` as it was."""
        return (await self._copy(src, dst, "copy", rev, expect))[2]

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        key = self._key(path, "symlink", leaf=True)
        link = key + SYMLINK_SUFFIX
        what = f"PUT {self.s3.url(link)}"
        if await self.s3.head(key) is not None:
            raise RemoteExists(f"symlink {self.s3.url(key)}: a file has that name")
        body = target.encode("utf-8", "surrogateescape")
        quoted = urllib.parse.quote(target, safe="/")
        meta = {META_TARGET: quoted} if len(quoted) <= 1024 else {}
        try:
            await self.s3.check_expect(link, Expect.ABSENT, what)
            etag = await self.s3.put(link, body, meta, Expect.ABSENT, what)
        except PreconditionFailed:
            raise RemoteExists(f"symlink {self.s3.url(key)}: already exists") from None
        return RemoteEntry(path, Kind.SYMLINK, len(body), time.time_ns(), rev_of(etag), FileAttrs(), target)

    async def readlink(self, path: str) -> str:
        key = self._key(path, "readlink", leaf=True)
        try:
            body = await self.s3.get(f"GET {self.s3.url(key + SYMLINK_SUFFIX)}", Key=key + SYMLINK_SUFFIX)
        except RemoteNotFound:
            if await self.s3.head(key) is not None:
                raise remote_error(RemoteError, errno.EINVAL, f"readlink {self.s3.url(key)}: not a symlink") from None
            raise
        return body.decode("utf-8", "surrogateescape")

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        """Abort multipart uploads under the prefix older than
        ``stale_upload_age`` and not ours in flight (the age spares another
        client writing the same bucket right now)."""
        keys = {self._key(p) for p in paths}
        return await self.s3.abort_stale_uploads(self.prefix, self.stale_upload_age, keys=keys)

    async def aclose(self) -> None:
        await self.s3.aclose()


def _build(url: RemoteURL, options: dict[str, Any], common: Common) -> S3Remote:
    bucket = url.netloc
    if not bucket or any(c in bucket for c in " @:"):
        raise url.bad("missing or invalid bucket name")
    prefix = urllib.parse.unquote(url.path).strip("/")
    if any(p in (".", "..") for p in prefix.split("/")) or "//" in prefix:
        raise url.bad("invalid prefix")
    return S3Remote(bucket, prefix, retry_deadline=common.timeout, **options)


REMOTE_TYPE = RemoteType(
    options=(
        Option("endpoint_url", str, "the S3 endpoint, e.g. http://192.168.1.20:9000 (default: AWS_ENDPOINT_URL or AWS)"),
        Option("region", str, "the bucket's region (default: AWS_DEFAULT_REGION or the profile's)"),
        Option("path_style", bool, "path-style addressing (default: on exactly when endpoint_url is set)"),
        Option("profile", str, "a profile of ~/.aws/credentials"),
    ),
    build=_build,
    names=names.S3,  # identity: S3 holds any UTF-8 key; the 1024-byte limit (with the prefix) is checked here
)
