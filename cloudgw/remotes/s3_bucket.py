"""One S3 bucket through one boto3 client, with cloudgw's rules for every call.

- Every boto3 call runs in ``trio.to_thread.run_sync`` with a ``CapacityLimiter``
  (boto3 clients are thread-safe; the session is created once, here), is
  retried by ``with_retries`` (botocore's own retries are off) and raises only
  cloudgw errors (``s3_errors.map_boto_error``).
- Conditional headers (If-Match / If-None-Match) are sent where the server
  takes them.  ``conditional_writes`` None (auto) learns per operation from a
  501 answer.  Measured: moto 5.2 enforces them on PutObject and DeleteObject
  and ignores them on CopyObject (the destination's and CopySourceIfMatch) and
  If-Match on CompleteMultipartUpload (tests/servers/moto_atomic adds them); Swift's
  s3api (2.30) answers 501 to conditional PUTs, enforces conditions on
  CompleteMultipartUpload, DeleteObject and copies, but compares If-Match with
  its own ETag of a multipart object and so answers 412 to the right S3 ETag:
  a 412 is therefore confirmed by a HEAD, and if the object is as expected the
  request is repeated without the header.  Callers always HEAD-check first,
  so a server that ignores a header leaves the documented check-then-write
  window, never a wrong answer.
- Multipart uploads and copies: parts run ``parallelism`` at a time (memory:
  parallelism x part size); the first failure cancels the rest; any failure,
  ``SourceChanged`` or cancellation aborts the upload (shielded, bounded by
  the retry deadline); a crash leaves it for ``abort_stale_uploads``.
- A retried commit (PUT / CompleteMultipartUpload) whose first answer was lost
  fails its own precondition or finds its upload gone; we then compare the
  object's ETag with the one our request must have produced (MD5, or MD5 of
  the part MD5s + "-N") and report success if they match, not a conflict.
"""

from __future__ import annotations

import datetime
import functools
import gzip
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

import botocore.loaders
import botocore.session
import botocore.utils
import trio
import urllib3.exceptions
from botocore.exceptions import BotoCoreError, DataNotFoundError

from cloudgw.errors import (PreconditionFailed, RemoteError, RemoteNotFound, RemoteUnavailable, RemoteUnsupported,
                            TransientRemoteError, UserError)
from cloudgw.remotes.base import Expect
from cloudgw.remotes.retry import with_retries
from cloudgw.remotes.s3_errors import client_error_code, map_boto_error
from cloudgw.remotes.s3_layout import dt_to_ns, kept_headers, rev_of

log = logging.getLogger(__name__)

MiB = 1 << 20
MAX_PARTS = 10_000
# Merged server-side copy parts stay below this (S3 allows 5 GiB): one request must
# finish well within the retry deadline on a real service.
MAX_COPY_PART = 512 << 20
_loader: botocore.loaders.Loader | None = None  # shared by every session: the S3 model is parsed once

PartJob = Callable[[str, int, int, int], Awaitable[str]]  # (upload_id, number, offset, length) -> ETag
STREAM_PIECE = 1 << 20  # a streamed GET body is read (and handed on) this much at a time


@dataclass
class _Stream:
    """Where a streamed GET (``S3Bucket.get_into``) stands: resumed from ``pos``."""

    pos: int
    end: int
    done: bool = False


class _ServicesOnDemand(Sequence[str]):
    """What ``_Loader.list_available_services`` returns: membership checked per service.

    botocore asks ``service in list_available_services(type)`` before loading a
    model, and builds that list by listing every service directory of its data
    (~450 of them, once for the model and once for the endpoint rules): 30 ms
    with warm caches, 150 ms and more after ``drop_caches``, at every mount.
    ``in`` here looks at that one service's directory instead; anything else
    (iteration, ``len``, the message for an unknown service) gets the full list.
    """

    def __init__(self, loader: botocore.loaders.Loader, type_name: str) -> None:
        self._loader, self._type_name = loader, type_name

    def __contains__(self, service: object) -> bool:
        try:
            self._loader.list_api_versions(service, self._type_name)
        except DataNotFoundError:
            return False
        return True

    def __getitem__(self, index):  # noqa: ANN001, ANN204 (Sequence's int/slice overloads)
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def _all(self) -> list[str]:
        return botocore.loaders.Loader.list_available_services(self._loader, self._type_name)


class _FileLoader(botocore.loaders.JSONFileLoader):
    """botocore's JSON file loader, with ``endpoints.json`` decoded into plain dicts.

    botocore decodes every data file with ``object_pairs_hook=OrderedDict``.  For
    ``endpoints.json`` (1.2 MB: every service's regions, read at each mount to resolve
    S3's endpoint) that hook costs ~26 ms against ~7 ms for the plain decoder, on the
    way to the mount answering.  Plain dicts keep their order too, and the endpoint
    resolver only looks keys up and walks the partitions list.  The service models keep
    botocore's own decoding.
    """

    def load_file(self, file_path: str) -> Any:
        if os.path.basename(file_path) != "endpoints":
            return super().load_file(file_path)
        for ext, opener in ((".json", open), (".json.gz", gzip.open)):
            try:
                with opener(file_path + ext, "rb") as f:
                    return json.loads(f.read())
            except FileNotFoundError:
                continue
        return None


class _Loader(botocore.loaders.Loader):
    """botocore's data loader without the scan of all services (see ``_ServicesOnDemand``),
    and with ``endpoints.json`` decoded faster (``_FileLoader``)."""

    FILE_LOADER_CLASS = _FileLoader

    def list_available_services(self, type_name: str) -> Sequence[str]:
        return _ServicesOnDemand(self, type_name)


def _parse_timestamp(value: str | int | float) -> datetime.datetime:
    """botocore's timestamp parser with a fast path for ISO 8601 (every
    ``LastModified`` of a listing): botocore's dateutil parsing took ~15 % of the
    client's time per 1000-key page.  Other forms (HTTP dates in HEAD
    responses, epoch numbers, no time zone) go to botocore's parser."""
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return botocore.utils.parse_timestamp(value)


def _new_session(access_key: str | None, secret_key: str | None, region: str | None,
                 profile: str | None) -> botocore.session.Session:
    """A plain botocore session (what boto3's ``Session`` wraps): boto3 itself
    would only add its import time and its S3 transfer methods, unused here."""
    global _loader
    if _loader is None:
        _loader = _Loader()
    session = botocore.session.Session(profile=profile)
    session.register_component("data_loader", _loader)
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_parse_timestamp)
    if access_key or secret_key:
        session.set_credentials(access_key, secret_key)
    if region is not None:
        session.set_config_variable("region", region)
    return session


def _multipart_etag(etags: list[str]) -> str | None:
    try:
        digests = b"".join(bytes.fromhex(rev_of(e)) for e in etags)
    except ValueError:
        return None  # not MD5 part ETags (e.g. SSE-KMS): cannot predict
    return f"{hashlib.md5(digests).hexdigest()}-{len(etags)}"


def _misjudged(cond: dict[str, str], head: dict | None) -> bool:
    """Did the server answer 412 although the object is as the headers expect?"""
    if "IfMatch" in cond:
        return head is not None and rev_of(head["ETag"]) == rev_of(cond["IfMatch"])
    return "IfNoneMatch" in cond and head is None


def _starts_at(reply: dict[str, Any], offset: int) -> bool:
    """Whether a ranged GET's reply holds the object from ``offset`` (``bytes 5-9/10``; a
    whole-object reply without Content-Range only does for offset 0)."""
    content_range = reply.get("ContentRange")
    if not content_range:
        return offset == 0
    try:
        return int(content_range.split()[1].split("-")[0]) == offset
    except (IndexError, ValueError):
        return False


class S3Bucket:
    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str | None,
        path_style: bool | None,
        access_key: str | None,
        secret_key: str | None,
        profile: str | None,
        conditional_writes: bool | None,
        part_size: int,
        parallelism: int,
        max_threads: int,
        retry_deadline: float,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        from botocore.config import Config

        if part_size < 5 * MiB:
            raise ValueError("S3 parts must be at least 5 MiB")
        self.name = bucket
        self.conditional_writes = conditional_writes
        on = conditional_writes is not False
        self._cond = {"put": on, "complete": on, "delete": on, "copy": on}
        self.part_size, self.parallelism = part_size, max(1, parallelism)
        self.retry_deadline = retry_deadline
        if path_style is None:  # custom endpoints (MinIO, Swift, moto) want path style
            path_style = bool(endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
        config = Config(
            s3={"addressing_style": "path" if path_style else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 1, "mode": "standard"},  # we retry ourselves
            max_pool_connections=max_threads,
        )
        self.session = _new_session(access_key, secret_key, region, profile)
        try:
            self.client = self.session.create_client("s3", endpoint_url=endpoint_url, config=config)
        except (BotoCoreError, ValueError) as exc:  # unknown profile, malformed region or endpoint URL
            raise UserError(f"cannot set up S3 for bucket {bucket}: {exc} (check --endpoint-url or AWS_ENDPOINT_URL,"
                            " --region or AWS_DEFAULT_REGION, and AWS_PROFILE)") from None
        self.endpoint: str = self.client.meta.endpoint_url
        self.limiter = trio.CapacityLimiter(max_threads)
        self.active_uploads: set[str] = set()  # ours in flight: never aborted as stale

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    # -- calls -----------------------------------------------------------------

    def _sync(self, what: str, op: str | Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        fn = getattr(self.client, op) if isinstance(op, str) else op
        try:
            return fn(Bucket=self.name, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise map_boto_error(exc, what) from exc
        except urllib3.exceptions.HTTPError as exc:  # a body read botocore does not wrap (TLS EOF)
            raise TransientRemoteError(f"{what}: {exc}") from exc

    async def once(self, what: str, op: str | Callable[..., Any], **kwargs: Any) -> Any:
        """One attempt of ``client.<op>(Bucket=..., **kwargs)`` in a worker thread."""
        return await trio.to_thread.run_sync(functools.partial(self._sync, what, op, kwargs), limiter=self.limiter)

    async def call(self, what: str, op: str | Callable[..., Any], **kwargs: Any) -> Any:
        return await with_retries(lambda: self.once(what, op, **kwargs), what=what, deadline=self.retry_deadline)

    async def thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking non-S3 function (an upload source's read/check) unmapped."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def get(self, what: str, **kwargs: Any) -> bytes:
        """GET with the body read in the same attempt (a broken stream is retried)."""
        return await self.call(what, lambda **kw: self.client.get_object(**kw)["Body"].read(), **kwargs)

    async def get_into(self, what: str, key: str, offset: int, length: int, sink: Callable[[bytes], None],
                       **cond: Any) -> None:
        """Ranged GET of ``length`` bytes at ``offset``, handed to ``sink`` in pieces as the
        body arrives (``Remote.read_into``).  A body that breaks is asked for again from
        where it broke; each stretch that made progress gets a fresh retry budget, so a
        long stream is not given up for the time its good part took.

        Concurrency: the body is read in worker threads one piece at a time; ``sink`` runs
        in the trio thread between them.  Cancellation waits for the piece in progress."""
        state = _Stream(offset, offset + length)
        while not state.done:
            start = state.pos
            try:
                await with_retries(lambda: self._get_stretch(what, key, state, sink, cond), what=what,
                                   deadline=self.retry_deadline)
            except RemoteUnavailable:
                if state.pos == start:
                    raise  # no progress within the whole budget: the remote is away

    async def _get_stretch(self, what: str, key: str, state: _Stream, sink: Callable[[bytes], None],
                           cond: dict[str, Any]) -> None:
        try:
            reply = await self.once(what, "get_object", Key=key, Range=f"bytes={state.pos}-{state.end - 1}", **cond)
        except RemoteError as exc:
            if getattr(exc, "code", "") != "InvalidRange":
                raise
            state.done = True  # at or past the end (servers evaluate If-Match first)
            return
        body = reply["Body"]
        if not _starts_at(reply, state.pos):  # a server that ignored Range: never misplace bytes
            body.close()
            raise RemoteError(f"{what}: the server answered another range ({reply.get('ContentRange')!r}) "
                              f"than bytes {state.pos}-")
        try:
            while state.pos < state.end:
                data = await self.once(what, lambda **_: body.read(min(STREAM_PIECE, state.end - state.pos)))
                if not data:
                    break  # the object ends before the range does
                sink(data)
                state.pos += len(data)
            state.done = True
        finally:
            body.close()

    async def head(self, key: str) -> dict | None:
        try:
            return await self.call(f"HEAD {self.url(key)}", "head_object", Key=key)
        except RemoteNotFound:
            return None

    async def check_expect(self, key: str, expect: Expect | str, what: str) -> dict | None:
        """The HEAD half of check-then-write."""
        if expect is Expect.ANY:
            return None
        head = await self.head(key)
        if expect is Expect.ABSENT:
            if head is not None:
                raise PreconditionFailed(f"{what}: already exists")
        elif head is None:
            raise PreconditionFailed(f"{what}: expected revision {expect}, but it is gone")
        elif rev_of(head["ETag"]) != rev_of(expect):
            raise PreconditionFailed(f"{what}: expected revision {expect}, found {rev_of(head['ETag'])}")
        return head

    def _cond_headers(self, op: str, expect: Expect | str | None) -> dict[str, str]:
        if not self._cond[op] or expect is None or expect is Expect.ANY:
            return {}
        return {"IfNoneMatch": "*"} if expect is Expect.ABSENT else {"IfMatch": f'"{rev_of(expect)}"'}

    async def conditional(
        self, what: str, op: str, fn: str, expect: Expect | str | None, key: str,
        expected_rev: Callable[[], str | None] | None, **kwargs: Any,
    ) -> Any:
        """``client.<fn>`` with the conditional headers of ``expect``, retried
        (``op`` is "put", "complete", "delete" or "copy": what auto mode learns)."""
        cond = self._cond_headers(op, expect)
        attempts = 0

        async def attempt() -> Any:
            nonlocal attempts, cond
            attempts += 1
            try:
                return await self.once(what, fn, **kwargs, **cond)
            except RemoteUnsupported:
                if not cond or self.conditional_writes is True:
                    raise
                log.info("%s: no conditional %s on this server; using check-then-write", self.endpoint, op)
                self._cond[op], cond = False, {}
                return await self.once(what, fn, **kwargs)
            except (PreconditionFailed, RemoteNotFound) as exc:
                head = await self.head(key)
                if attempts > 1 and expected_rev is not None and head is not None:
                    mine = await self.thread(expected_rev)
                    if mine is not None and rev_of(head["ETag"]) == mine:
                        return {"ETag": head["ETag"]}  # our earlier attempt landed
                if isinstance(exc, PreconditionFailed) and _misjudged(cond, head):
                    # Swift's s3api compares If-Match with the Swift ETag of a
                    # multipart object, not the S3 one: the HEAD just confirmed
                    # the expectation, so go on without the header.
                    log.debug("%s: server rejected a condition that holds; retrying without it", what)
                    return await self.once(what, fn, **kwargs)
                if isinstance(exc, RemoteNotFound) and getattr(exc, "code", "") == "NoSuchKey" and "IfMatch" in cond:
                    raise PreconditionFailed(f"{what}: the expected revision is gone") from exc
                raise

        return await with_retries(attempt, what=what, deadline=self.retry_deadline)

    # -- transfers ---------------------------------------------------------------

    async def put(self, key: str, data: bytes, meta: dict[str, str], expect: Expect | str, what: str) -> str:
        resp = await self.conditional(
            what, "put", "put_object", expect, key, lambda: hashlib.md5(data).hexdigest(),
            Key=key, Body=data, Metadata=meta,
        )
        return resp["ETag"]

    def part_layout(self, size: int) -> tuple[int, int]:
        part_size = max(self.part_size, math.ceil(size / MAX_PARTS))
        return part_size, max(1, math.ceil(size / part_size))

    def parts(self, size: int, copyable: Callable[[int, int], bool] | None = None) -> list[tuple[int, int]]:
        """(offset, length) of each part of a ``size``-byte upload.  With ``copyable``, runs
        of parts it accepts are merged into one (up to ``MAX_COPY_PART``): a server-side
        copy costs a request whatever its length (moto reads the source once per request)."""
        part_size, nparts = self.part_layout(size)
        out: list[tuple[int, int]] = []
        merging = False
        for i in range(nparts):
            off, length = i * part_size, min(part_size, size - i * part_size)
            can_copy = copyable is not None and copyable(off, length)
            if can_copy and merging and out[-1][1] + length <= MAX_COPY_PART:
                out[-1] = (out[-1][0], out[-1][1] + length)
            else:
                out.append((off, length))
            merging = can_copy
        return out

    async def multipart(
        self, key: str, what: str, size: int, meta: dict[str, str], part_job: PartJob,
        before_complete: Callable[[], Awaitable[None]], expect: Expect | str = Expect.ANY,
        layout: list[tuple[int, int]] | None = None, headers: dict[str, Any] | None = None,
    ) -> str:
        """Create (with user metadata ``meta`` and other ``headers``), run ``part_job`` for
        every part (``layout``, default: equal parts), ``before_complete()``, complete; abort
        on any failure or cancellation.  Returns the new ETag."""
        layout = layout if layout is not None else self.parts(size)
        nparts = len(layout)
        created = await self.call(f"{what} (start multipart)", "create_multipart_upload", Key=key, Metadata=meta,
                                  **(headers or {}))
        upload_id = created["UploadId"]
        self.active_uploads.add(upload_id)
        etags = [""] * nparts
        todo = iter(range(nparts))  # shared by the workers: each takes the next part
        failed: list[Exception] = []  # the first failure; the other workers get cancelled

        async def worker(scope: trio.CancelScope) -> None:
            try:
                for i in todo:
                    off, length = layout[i]
                    etags[i] = await part_job(upload_id, i + 1, off, length)
            except Exception as exc:
                failed.append(exc)
                scope.cancel()

        try:
            async with trio.open_nursery() as nursery:
                for _ in range(min(self.parallelism, nparts)):
                    nursery.start_soon(worker, nursery.cancel_scope)
            if failed:
                raise failed[0]
            await before_complete()
            parts = [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]
            resp = await self.conditional(
                f"{what} (complete multipart)", "complete", "complete_multipart_upload", expect, key,
                lambda: _multipart_etag(etags), Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts},
            )
            return resp["ETag"]
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(self.retry_deadline):
                try:
                    await self.call(f"{what} (abort multipart)", "abort_multipart_upload", Key=key, UploadId=upload_id)
                except RemoteError as exc:
                    log.info("%s: abort failed (abort_stale_uploads will retry): %s", what, exc)
            raise
        finally:
            self.active_uploads.discard(upload_id)

    async def _pinned_copy(self, what: str, op: str, src_key: str, etag: str, *, expect: Expect | str | None = None,
                           expected_rev: Callable[[], str | None] | None = None, **kwargs: Any) -> Any:
        """A copy request pinned to the source's revision (CopySourceIfMatch), and with
        ``expect`` (not None) conditional on the destination too (``conditional``).
        Swift's s3api answers 412 to the pin for multipart sources even when the
        ETag matches; a 412 with an unchanged source is retried unpinned (the
        HEADs around the copy still guard it).  A 412 of the destination's condition
        fails that retry as well."""

        async def request(**pin: str) -> Any:
            if expect is None:
                return await self.call(what, op, **pin, **kwargs)
            return await self.conditional(what, "copy", op, expect, kwargs["Key"], expected_rev, **pin, **kwargs)

        try:
            return await request(CopySourceIfMatch=etag)
        except PreconditionFailed:
            now = await self.head(src_key)
            if now is None or rev_of(now["ETag"]) != rev_of(etag):
                raise
            return await request()

    async def copy_part(self, what: str, src_key: str, rev: str, dst_key: str, upload_id: str, number: int,
                        off: int, length: int) -> str:
        """UploadPartCopy of bytes [off, off+length) of ``src_key`` at revision ``rev``
        (pinned) into part ``number`` of ``upload_id``.  Returns the part's ETag."""
        resp = await self._pinned_copy(
            what, "upload_part_copy", src_key, f'"{rev_of(rev)}"', Key=dst_key, UploadId=upload_id, PartNumber=number,
            CopySource={"Bucket": self.name, "Key": src_key}, CopySourceRange=f"bytes={off}-{off + length - 1}",
        )
        return resp["CopyPartResult"]["ETag"]

    async def copy(self, src_key: str, dst_key: str, head: dict, what: str, threshold: int,
                   meta: dict[str, str] | None = None, expect: Expect | str = Expect.ANY) -> str:
        """Server-side copy of the object ``head`` describes, metadata kept (``meta``: the
        copy's user metadata instead, MetadataDirective REPLACE, the other headers kept:
        ``s3_layout.kept_headers``); multipart (UploadPartCopy) above ``threshold``.  The
        source is pinned to ``head``'s ETag; ``expect`` is the destination's condition as in
        a write, sent on CopyObject or CompleteMultipartUpload (the caller HEAD-checks it
        first: servers that ignore it leave that check-then-copy window).  Returns the new ETag."""
        source = {"Bucket": self.name, "Key": src_key}
        etag = head["ETag"]
        if head["ContentLength"] <= threshold:
            replace = {} if meta is None else {"MetadataDirective": "REPLACE", "Metadata": meta, **kept_headers(head)}
            single = rev_of(etag) if "-" not in rev_of(etag) else None  # a one-part copy's ETag: the same MD5
            resp = await self._pinned_copy(what, "copy_object", src_key, etag, expect=expect,
                                           expected_rev=lambda: single, Key=dst_key, CopySource=source, **replace)
            return (resp.get("CopyObjectResult") or resp)["ETag"]  # (``conditional``'s answer to a lost reply)

        async def part(upload_id: str, number: int, off: int, length: int) -> str:
            return await self.copy_part(f"{what} (part {number})", src_key, etag, dst_key, upload_id, number, off,
                                        length)

        async def unchanged() -> None:
            now = await self.head(src_key)
            if now is None or rev_of(now["ETag"]) != rev_of(etag):
                raise PreconditionFailed(f"{what}: the source changed during the copy")
            await self.check_expect(dst_key, expect, what)  # again: the parts took a while

        return await self.multipart(dst_key, what, head["ContentLength"],
                                    head.get("Metadata") or {} if meta is None else meta, part, unchanged, expect,
                                    headers=kept_headers(head))

    async def abort_stale_uploads(self, prefix: str, older_than: float, keys: set[str] = frozenset()) -> int:
        """Abort multipart uploads under ``prefix`` started more than
        ``older_than`` seconds ago (any age if <= 0: server clocks and rounding
        differ) that are not ours in flight."""
        cutoff_ns = (time.time() - older_than) * 1e9
        kwargs: dict[str, Any] = {"Prefix": prefix}
        aborted = 0
        while True:
            page = await self.call(f"LIST uploads {self.url(prefix)}", "list_multipart_uploads", **kwargs)
            for up in page.get("Uploads") or []:
                if up["UploadId"] in self.active_uploads or not up["Key"].startswith(prefix):
                    continue
                if older_than > 0 and dt_to_ns(up["Initiated"]) > cutoff_ns and up["Key"] not in keys:
                    continue
                try:
                    await self.call(f"abort upload {self.url(up['Key'])}", "abort_multipart_upload",
                                    Key=up["Key"], UploadId=up["UploadId"])
                    aborted += 1
                except RemoteNotFound:
                    pass  # someone else aborted or completed it
            if not page.get("IsTruncated"):
                return aborted
            kwargs.update(KeyMarker=page.get("NextKeyMarker", ""), UploadIdMarker=page.get("NextUploadIdMarker", ""))

    # -- check ---------------------------------------------------------------------

    async def probe(self) -> tuple[Exception | None, str | None]:
        """HEAD the bucket once, unretried.  On failure also return the error
        code of a listing (HEAD answers 403 without a body; the listing's code
        tells a wrong key id from a wrong secret from a missing permission)."""
        from botocore.exceptions import BotoCoreError, ClientError

        def attempt(op: str, **kwargs: Any) -> Exception | None:
            try:
                getattr(self.client, op)(Bucket=self.name, **kwargs)
                return None
            except (BotoCoreError, ClientError) as exc:
                return exc

        exc = await self.thread(functools.partial(attempt, "head_bucket"))
        detail = None
        if isinstance(exc, ClientError) and client_error_code(exc)[1] == 403:
            again = await self.thread(functools.partial(attempt, "list_objects_v2", MaxKeys=1))
            detail = client_error_code(again)[0] if isinstance(again, ClientError) else None
        return exc, detail

    async def access_key(self) -> str | None:
        creds = await self.thread(self.session.get_credentials)
        return creds.access_key if creds else None

    async def aclose(self) -> None:
        await self.thread(self.client.close)
