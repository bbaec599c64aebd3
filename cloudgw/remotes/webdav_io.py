"""The WebDAV remote's transfers: streamed ranged GETs and uploads through a temp name.

Reads (``read_into``): one ``GET`` with ``Range`` whose body is handed to the sink in
pieces of at most ``PIECE`` bytes as it arrives.  The revision is checked on the
reply's own ``ETag`` (not with ``If-Match``: Apache answers 412 to any ``If-Match``
while the file's ETag is weak, i.e. for a second after every change); a server that
sends no ETag with a GET gets a PROPFIND first (check-then-read).  A body that breaks
is asked for again from where it broke, pinned to the ETag of the first reply, so
the sink never sees a byte twice, a gap, or bytes of two versions.

Writes: the bytes go to ``.cloudgw-tmp-<tag>-<random>`` in the target's folder (one
streamed PUT: ``source.read`` in a worker thread per ``CHUNK``, never the whole file
in memory; ``source.check()`` before the last chunk goes out and again after the
reply), then one ``MOVE`` puts it in place.  On a Nextcloud-like server
(``hash_kind == "sha1"``) the PUT carries ``OC-Checksum: SHA1:<hex>``: Nextcloud takes
that header on a PUT (and on the MOVE that assembles a chunked upload,
``webdav_chunked``), not on a plain MOVE, and a header goes before the body, so the
source is hashed in a first pass (read twice: at most ``chunk_threshold`` bytes, above
which uploads are chunked) and hashed again while it streams; a difference is
``SourceChanged``.  A PUT that reached the server cannot be
taken back, but it only ever wrote the temp name: a torn or abandoned upload never
replaces the object (Apache writes PUTs to its own temp file; wsgidav writes in
place, so without this a broken connection would leave half a file).  Any failure,
``SourceChanged`` or cancellation deletes the temp (shielded, bounded by the retry
deadline); a crash leaves it for ``abort_incomplete_uploads``.  The revision returned
is the temp's ETag, read before the MOVE: a rename keeps size, mtime and inode, which
is all Apache (``size-mtime``) and wsgidav (``inode-mtime-size``) build ETags from.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Callable

import trio

from cloudgw.errors import PreconditionFailed, RemoteError, RemoteExists, RemoteUnavailable, SourceChanged
from cloudgw.remotes.base import Expect, FileAttrs, UploadSource
from cloudgw.remotes.util import remote_error
from cloudgw.remotes.webdav_http import status_error
from cloudgw.remotes.webdav_xml import PROPPATCH_MTIME, Prop, http_date, proppatch_ok, rev_of

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

    from cloudgw.remotes.webdav import WebDavRemote

log = logging.getLogger(__name__)

TMP_PREFIX = ".cloudgw-tmp-"
CHUNK = 1 << 20  # an upload is read from the source this much at a time
PIECE = 1 << 20  # a GET body is handed to the sink in pieces of at most this


def movable(path: str) -> bool:
    """Whether ``path`` can be a MOVE/COPY Destination everywhere: wsgidav unquotes the
    Destination header and then splits it as a URL, so a last segment with ``;`` or
    ``?`` loses its tail there.  Such names are written with a direct conditional PUT
    (not atomic where the server writes PUT bodies in place, as wsgidav does)."""
    name = path.rsplit("/", 1)[-1]
    return ";" not in name and "?" not in name


def tmp_tag(name: str) -> str:
    """The part of a temp name that says which name it is an upload of."""
    return hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def tmp_name(name: str) -> str:
    return f"{TMP_PREFIX}{tmp_tag(name)}-{secrets.token_hex(6)}"


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


@dataclass
class _Stream:
    pos: int
    end: int
    pin: str | None  # the revision every stretch must come from (asked for, or the first reply's)
    done: bool = False


def _range_start(content_range: str | None) -> int | None:
    try:
        return int((content_range or "").split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


async def read_into(remote: WebDavRemote, path: str, offset: int, length: int, sink: Callable[[bytes], None],
                    rev: str | None) -> None:
    what = f"GET {remote.http.display(path)}"
    if length <= 0:
        if rev is not None:
            await remote.check_rev(path, rev, what)
        return
    state = _Stream(offset, offset + length, rev_of(rev))
    while not state.done:
        start = state.pos
        try:
            await remote.http.retried(what, lambda: _stretch(remote, path, state, sink, what))
        except RemoteUnavailable:
            if state.pos == start:
                raise  # no progress within the whole budget: the server is away


async def _stretch(remote: WebDavRemote, path: str, state: _Stream, sink: Callable[[bytes], None],
                   what: str) -> None:
    headers = {"Range": f"bytes={state.pos}-{state.end - 1}"}
    async with remote.http.stream(what, remote.http.url(path), headers) as resp:
        if resp.status_code == 416:  # at or past the end
            if state.pin is not None:
                await remote.check_rev(path, state.pin, what)
            state.done = True
            return
        if resp.status_code not in (200, 206):
            raise status_error(resp.status_code, what, resp.headers)
        etag = rev_of(resp.headers.get("etag"))
        if state.pin is None:
            state.pin = etag
        elif etag is None:
            await remote.check_rev(path, state.pin, what)
        elif etag != state.pin:
            raise PreconditionFailed(f"{what}: expected revision {state.pin}, found {etag}")
        start = 0 if resp.status_code == 200 else _range_start(resp.headers.get("content-range"))
        if start != state.pos:  # a server that ignored Range on a resume: never misplace bytes
            raise RemoteError(f"{what}: the server answered another range ({resp.headers.get('content-range')!r})"
                              f" than bytes {state.pos}-")
        async for chunk in resp.aiter_bytes(PIECE):
            piece = chunk[: state.end - state.pos]
            if piece:
                sink(piece)
                state.pos += len(piece)
            if state.pos >= state.end:
                break
        state.done = True


def _read(source: UploadSource, pos: int, n: int, digest: Hash | None) -> bytes:
    """One piece of the source, hashed in the same worker thread that read it."""
    data = source.read(pos, n)
    if digest is not None and len(data) == n:
        digest.update(data)
    return data


async def _chunk(remote: WebDavRemote, source: UploadSource, pos: int, what: str, end: int | None = None,
                 digest: Hash | None = None) -> bytes:
    """Bytes [pos, pos + CHUNK) of the source, clipped to ``end`` (default: its size)."""
    n = min(CHUNK, (source.size if end is None else end) - pos)
    data = await remote.thread(_read, source, pos, n, digest)
    if len(data) != n:
        raise SourceChanged(f"{what}: source returned {len(data)} bytes at {pos}, expected {n}")
    if pos + n >= source.size:
        await remote.thread(source.check)  # before the last chunk goes out
    return data


async def body(remote: WebDavRemote, source: UploadSource, first: bytes, what: str, start: int = 0,
               end: int | None = None, digest: Hash | None = None) -> AsyncIterator[bytes]:
    """The upload's bytes [start, end), read in worker threads; the first chunk was read (and for a
    one-chunk upload checked) before the request started, so a source that fails early
    never opens a request the server might still be acting on after our clean-up."""
    end = source.size if end is None else end
    yield first
    pos = start + len(first)
    while pos < end:
        data = await _chunk(remote, source, pos, what, end, digest)
        yield data
        pos += len(data)


def sha1_of(source: UploadSource) -> str:
    """The SHA1 of the whole source (a worker thread's first pass over it)."""
    digest = hashlib.sha1()
    for pos in range(0, source.size, CHUNK):
        digest.update(source.read(pos, min(CHUNK, source.size - pos)))
    return digest.hexdigest()


async def upload(remote: WebDavRemote, path: str, source: UploadSource, expect: Expect | str,
                 attrs: FileAttrs) -> Prop:
    """Temp PUT + MOVE (see the module docstring); the new object's properties."""
    http = remote.http
    what = f"PUT {http.display(path)}"
    overwrite, conditions = await _expectation(remote, path, expect, what)
    parent = parent_of(path)
    tmp = join(parent, tmp_name(path.rsplit("/", 1)[-1]))
    headers = {"Content-Length": str(source.size)}
    if attrs.mtime_ns is not None and attrs.mtime_ns >= 0:
        headers["X-OC-Mtime"] = str(attrs.mtime_ns // 1_000_000_000)
    expected = None
    if remote.capabilities.hash_kind == "sha1":  # Nextcloud: the header goes before the body
        expected = await remote.thread(sha1_of, source)
        headers["OC-Checksum"] = f"SHA1:{expected}"

    async def put() -> object:
        if source.size == 0:
            await remote.thread(source.check)
        for _ in range(2):
            digest = hashlib.sha1() if expected is not None else None
            first = await _chunk(remote, source, 0, what, digest=digest) if source.size else b""
            content = body(remote, source, first, what, digest=digest) if source.size else b""
            resp = await http.once(what, "PUT", http.url(tmp), ok=(200, 201, 204, 400, 409), headers=headers,
                                   content=content)
            if digest is not None and source.size and digest.hexdigest() != expected:
                raise SourceChanged(f"{what}: the source changed between hashing it and sending it")
            if resp.status_code == 400:
                raise status_error(400, what, resp.headers)
            if resp.status_code != 409:
                return resp
            await remote.mkdir(parent)  # the folder is missing (or was deleted meanwhile)
        raise status_error(409, what)

    if not movable(path):  # straight to the name, conditions on the PUT itself
        tmp = path
        headers.update({"If-None-Match": "*"} if expect is Expect.ABSENT else http.if_header(conditions))
    remote.active_tmps.add(tmp)
    try:
        if parent and parent not in remote.known_dirs:
            await remote.mkdir(parent)
        resp = await http.retried(what, put)
        await remote.thread(source.check)  # again: the file may have changed while the last chunk was sent
        if "X-OC-Mtime" in headers and getattr(resp, "headers", {}).get("x-oc-mtime", "").lower() != "accepted":
            await _set_mtime(remote, tmp, attrs.mtime_ns // 1_000_000_000)
        props = await remote.prop(tmp)
        if props is None:
            raise RemoteError(f"{what}: the uploaded temp file {tmp} vanished")
        if tmp != path:
            await remote.move(tmp, path, what, overwrite=overwrite, conditions=conditions)
        return props
    except BaseException:
        if tmp == path:
            raise
        with trio.CancelScope(shield=True), trio.move_on_after(http.retry_deadline):
            try:
                await http.call(f"DELETE {http.display(tmp)}", "DELETE", http.url(tmp), ok=(200, 204, 404))
            except RemoteError as exc:
                log.info("%s: removing the temp file failed (abort_incomplete_uploads will): %s", what, exc)
        raise
    finally:
        remote.active_tmps.discard(tmp)


async def _expectation(remote: WebDavRemote, path: str, expect: Expect | str,
                       what: str) -> tuple[bool, list[tuple[str, str]]]:
    """Check ``expect`` now (check-then-write) and return what makes the MOVE enforce it
    on the server: (Overwrite, If conditions)."""
    now = await remote.prop(path)
    if now is not None and now.collection:
        if expect is Expect.ANY:
            raise remote_error(RemoteExists, errno.EISDIR, f"{what}: a directory has that name")
        raise PreconditionFailed(f"{what}: a directory has that name")
    if expect is Expect.ANY:
        return True, []
    if expect is Expect.ABSENT:
        if now is not None:
            raise PreconditionFailed(f"{what}: already exists")
        return False, []
    if now is None:
        raise PreconditionFailed(f"{what}: expected revision {expect}, but it is gone")
    if now.etag != rev_of(expect):
        raise PreconditionFailed(f"{what}: expected revision {expect}, found {now.etag}")
    return True, [(path, now.etag)] if now.etag else []


async def _set_mtime(remote: WebDavRemote, path: str, seconds: int) -> None:
    """PROPPATCH getlastmodified where the server allows it (Apache does not: learned once)."""
    if remote.proppatch_mtime is False:
        return
    http = remote.http
    what = f"PROPPATCH {http.display(path)}"
    resp = await http.call(what, "PROPPATCH", http.url(path), ok=(200, 207, 403, 405, 409),
                           headers={"Content-Type": "application/xml; charset=utf-8"},
                           content=PROPPATCH_MTIME.format(http_date(seconds)).encode())
    ok = resp.status_code in (200, 207) and proppatch_ok(resp.content)
    if not ok and remote.proppatch_mtime is None:
        log.info("%s: getlastmodified is read-only here (PROPPATCH refused): mtimes are kept only if the server"
                 " honours X-OC-Mtime", http.base)
    remote.proppatch_mtime = ok


def is_stale(prop: Prop, older_than: float) -> bool:
    return older_than <= 0 or prop.mtime_ns < (time.time() - older_than) * 1e9

