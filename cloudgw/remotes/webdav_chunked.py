"""Nextcloud's chunked upload v2 for the WebDAV remote (only where ``check()`` found a
Nextcloud-like server and an uploads URL is known).

Protocol (docs.nextcloud.com, client_apis/WebDAV/chunking.html): ``MKCOL
<uploads>/<transfer>`` with ``Destination: <target URL>``; ``PUT <uploads>/<transfer>/
00001`` … (chunks of ``chunk_size``, 5 MiB to 5 GiB, only the last smaller; each with
``Destination`` and ``OC-Total-Length``); then ``MOVE <uploads>/<transfer>/.file`` to the
target with ``Destination``, ``OC-Total-Length``, the conditions of a normal upload
(``Overwrite: F`` for "absent", a tagged ``If`` for a revision), ``X-OC-Mtime`` and
``OC-Checksum: SHA1:<hex>`` (hashed while the chunks streamed, in the worker threads
that read them; Nextcloud's desktop client sends it on this MOVE too).  The server
assembles the chunks and replaces the target in one step: the old object or the new
one, never a torn one.

The uploads URL: ``uploads_url`` (a URL on the same server, or a URL path), by
default ``/remote.php/dav/uploads/<user>`` for a root below
``/remote.php/dav/files/<user>/``; no uploads URL, no chunking.

Transfers are named ``cloudgw-<root tag>-<path tag>-<random>`` (tags: short SHA1s of
the remote's root and of the target path), so ``abort_incomplete_uploads`` finds the
ones of this root, and of given paths.  Crash behaviour: any failure, ``SourceChanged``
or cancellation deletes the transfer folder (shielded, bounded by the retry deadline);
a crash leaves it (chunks, never the target) until ``abort_incomplete_uploads`` or
Nextcloud's own expiry (24 h) removes it.  A MOVE whose reply was lost and whose retry
finds the transfer gone counts as done when the target has our size and checksum.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import urllib.parse
from typing import TYPE_CHECKING, Collection

import httpx
import trio

from cloudgw.errors import RemoteError, RemoteNotFound, UserError
from cloudgw.remotes.base import Expect, FileAttrs, UploadSource
from cloudgw.remotes.registry import Option
from cloudgw.remotes.webdav_http import status_error
from cloudgw.remotes.webdav_io import _chunk, _expectation, body, is_stale, parent_of, tmp_tag
from cloudgw.remotes.webdav_xml import PROPFIND_BODY, PROPFIND_HEADERS, Prop, parse_multistatus, rev_of

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

    from cloudgw.remotes.webdav import WebDavRemote

log = logging.getLogger(__name__)

MiB = 1 << 20
MIN_CHUNK = 5 * MiB  # Nextcloud: every chunk but the last at least this
MAX_CHUNK = 5 << 30
PREFIX = "cloudgw-"


OPTIONS = (
    Option("uploads_url", str, "Nextcloud: the user's chunked-upload URL (default: /remote.php/dav/uploads/USER"
           " for a URL below /remote.php/dav/files/USER/)"),
    Option("chunk_threshold", int, "Nextcloud: files larger than this many bytes are uploaded in chunks"
           " (default 64 MiB)"),
    Option("chunk_size", int, "Nextcloud: bytes per chunk, 5 MiB to 5 GiB (default 10 MiB)"),
)


def checked_size(chunk_size: int) -> int:
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise UserError(f"chunk_size {chunk_size}: Nextcloud takes chunks of 5 MiB to 5 GiB")
    return chunk_size


def uploads_path(base: str, root: str, option: str | None) -> str | None:
    """The URL path (unquoted, no trailing slash) of the user's uploads collection."""
    if option:
        parts = urllib.parse.urlsplit(option)
        if parts.scheme or parts.netloc:
            if f"{parts.scheme}://{parts.netloc}".lower() != base.lower():
                raise UserError(f"uploads_url {option!r}: must be on the same server as the files ({base})")
        path = urllib.parse.unquote(parts.path).rstrip("/")
        if not path.startswith("/"):
            raise UserError(f"uploads_url {option!r}: give a URL or an absolute path")
        return path
    found = re.match(r"^/?remote\.php/dav/files/([^/]+)(/|$)", root.lstrip("/"))
    return f"/remote.php/dav/uploads/{found.group(1)}" if found else None


def transfer_prefix(remote: WebDavRemote, path: str | None = None) -> str:
    """``cloudgw-<root tag>-`` and, given ``path``, its ``<path tag>-``."""
    prefix = f"{PREFIX}{tmp_tag(remote.http.root or '/')[:8]}-"
    return prefix if path is None else f"{prefix}{tmp_tag(path)}-"


def _url(remote: WebDavRemote, *names: str) -> str:
    full = "/".join([remote.uploads or "", *names])
    return remote.http.base + urllib.parse.quote(full.encode("utf-8", "surrogateescape"), safe="/")


async def upload(remote: WebDavRemote, path: str, source: UploadSource, expect: Expect | str,
                 attrs: FileAttrs) -> Prop:
    """MKCOL + chunk PUTs + MOVE of ``.file`` (see the module docstring); the new object's properties."""
    http = remote.http
    what = f"PUT {http.display(path)} (chunked)"
    overwrite, conditions = await _expectation(remote, path, expect, what)
    parent = parent_of(path)
    if parent and parent not in remote.known_dirs:
        await remote.mkdir(parent)
    name = transfer_prefix(remote, path) + secrets.token_hex(6)
    dest = {"Destination": http.url(path), "OC-Total-Length": str(source.size)}
    remote.active_tmps.add("\0uploads/" + name)
    try:
        await http.call(f"MKCOL {_url(remote, name)}", "MKCOL", _url(remote, name), ok=(201, 405),
                        headers={"Destination": http.url(path)})
        digest = hashlib.sha1()
        for number, pos in enumerate(range(0, source.size, remote.chunk_size), 1):
            end = min(pos + remote.chunk_size, source.size)
            digest = await _put_chunk(remote, source, _url(remote, name, f"{number:05d}"), pos, end, digest, dest)
        await remote.thread(source.check)
        headers = {**dest, "Overwrite": "T" if overwrite else "F", **http.if_header(conditions),
                   "OC-Checksum": f"SHA1:{digest.hexdigest()}"}
        if attrs.mtime_ns is not None and attrs.mtime_ns >= 0:
            headers["X-OC-Mtime"] = str(attrs.mtime_ns // 1_000_000_000)
        resp = await _assemble(remote, path, _url(remote, name, ".file"), headers, source.size, digest.hexdigest())
        return await _result(remote, path, resp, source.size, attrs, digest.hexdigest())
    except BaseException:
        with trio.CancelScope(shield=True), trio.move_on_after(http.retry_deadline):
            try:
                await http.call(f"DELETE {_url(remote, name)}", "DELETE", _url(remote, name), ok=(200, 204, 404))
            except RemoteError as exc:
                log.info("%s: removing the upload folder failed (abort_incomplete_uploads will): %s", what, exc)
        raise
    finally:
        remote.active_tmps.discard("\0uploads/" + name)


async def _put_chunk(remote: WebDavRemote, source: UploadSource, url: str, pos: int, end: int, digest: Hash,
                     dest: dict[str, str]) -> Hash:
    """One chunk, retried whole (re-read from the source); the digest including it."""
    what = f"PUT {url}"

    async def attempt() -> Hash:
        mine = digest.copy()  # a retry hashes the chunk again from the state before it
        first = await _chunk(remote, source, pos, what, end, mine)
        await remote.http.once(what, "PUT", url, ok=(200, 201, 204),
                               headers={**dest, "Content-Length": str(end - pos)},
                               content=body(remote, source, first, what, pos, end, mine))
        return mine

    return await remote.http.retried(what, attempt)


async def _assemble(remote: WebDavRemote, path: str, url: str, headers: dict[str, str], size: int,
                    sha1: str) -> httpx.Response | None:
    """The MOVE of ``.file``; None when a retry found our own earlier MOVE done."""
    http = remote.http
    what = f"MOVE {url} -> {http.display(path)}"
    attempts = 0

    async def attempt() -> httpx.Response | None:
        nonlocal attempts
        attempts += 1
        for _ in range(2):
            resp = await http.once(what, "MOVE", url, ok=(201, 204, 404, 409), headers=headers)
            if resp.status_code == 409:  # the target's folder went away meanwhile
                await remote.mkdir(parent_of(path))
                continue
            if resp.status_code == 404:
                now = await remote.prop(path) if attempts > 1 else None
                if now is not None and now.size == size and now.sha1 == sha1:
                    return None
                raise RemoteNotFound(f"{what}: the upload folder is gone (expired or removed)")
            return resp
        raise status_error(409, what)

    return await http.retried(what, attempt)


async def _result(remote: WebDavRemote, path: str, resp: httpx.Response | None, size: int, attrs: FileAttrs,
                  sha1: str) -> Prop:
    """The new object's properties: the MOVE reply's ETag and file id where it sent them
    (a PROPFIND after it could see a later writer's version), the rest from a PROPFIND."""
    now = await remote.prop(path)
    etag = rev_of(resp.headers.get("oc-etag") or resp.headers.get("etag")) if resp is not None else None
    if now is not None and (etag is None or now.etag == etag):
        return now
    if etag is None:
        raise RemoteNotFound(f"PUT {remote.http.display(path)} (chunked): the new object vanished")
    mtime = attrs.mtime_ns // 1_000_000_000 * 1_000_000_000 if attrs.mtime_ns is not None else 0
    assert resp is not None
    return Prop(remote.http.root + "/" + path, False, size, mtime, etag, resp.headers.get("oc-fileid"), 200, sha1)


async def abort(remote: WebDavRemote, paths: Collection[str]) -> int:
    """Delete this root's transfer folders older than ``stale_upload_age`` and, whatever
    their age, those of uploads to ``paths``; never ours in flight."""
    if remote.uploads is None or not remote.capabilities.dir_revs_propagate:
        return 0
    http = remote.http
    what = f"PROPFIND {_url(remote)}"
    resp = await http.call(what, "PROPFIND", _url(remote) + "/", ok=(207, 404),
                           headers={"Depth": "1", **PROPFIND_HEADERS}, content=PROPFIND_BODY)
    if resp.status_code != 207:
        return 0
    mine = tuple(transfer_prefix(remote, p) for p in paths)
    removed = 0
    for prop in parse_multistatus(resp.content):
        name = prop.href_path.rsplit("/", 1)[-1]
        if (not prop.collection or not name.startswith(transfer_prefix(remote))
                or "\0uploads/" + name in remote.active_tmps):
            continue
        if is_stale(prop, remote.stale_upload_age) or name.startswith(mine):
            await http.call(f"DELETE {_url(remote, name)}", "DELETE", _url(remote, name), ok=(200, 204, 404))
            removed += 1
    return removed
