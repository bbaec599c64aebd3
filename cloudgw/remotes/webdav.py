"""WebDAV (Apache mod_dav, a NAS, wsgidav, Nextcloud/ownCloud): one file = one file there.

URLs: ``webdav://HOST[:PORT]/PATH`` (http) and ``webdavs://HOST[:PORT]/PATH`` (https,
system CAs or ``ca_file``).  Credentials: ``user`` + ``password_file`` (0600), or, with
no ``user``, the ``machine HOST`` entry of ``$NETRC`` / ``~/.netrc`` (as curl reads it);
never from the URL or argv, never logged.  Transport, retries and the error map are in
``webdav_http``; reads and uploads in ``webdav_io``; XML in ``webdav_xml``.

Layout: files and folders as they are; a symlink is the small file
``NAME.cloudgw-symlink`` holding its target (``cloudgw.remotes.symlinks``, as on S3);
upload temps ``.cloudgw-tmp-*`` are hidden.  Revisions are ETags without quotes and
without the weak marker (Apache's weak and strong ETag of one content are equal).
``mtime`` is sent as ``X-OC-Mtime`` (whole seconds; kept where the server answers
``X-OC-MTime: accepted`` or honours it, e.g. wsgidav's ``honor_mtime_header``), else
set by PROPPATCH where allowed (Apache refuses: the server's time stays), so
``keeps_mtime`` is False; mode/uid/gid are not kept.  ``id`` is ``oc:fileid`` where the
server has it; such a server (Nextcloud/ownCloud) propagates folder ETags, found by
``check()``, and then a folder's ``rev`` is its ETag (``dir_revs_propagate``).

Conditions (concurrency): every expectation is checked with a PROPFIND first and then
enforced by the server on the one request that commits: ``Overwrite: F`` for
"absent", a tagged ``If: </path> (["etag"])`` for a revision (tags are absolute
paths; ``If-Match`` is not used because Apache refuses it while an ETag is weak).
Apache and wsgidav enforce both; wsgidav skips a tagged condition on a target that
no longer exists, so a write expecting a revision can recreate a file deleted after
our PROPFIND (a check-then-write window).  Writers of one path in this process are
serialised by a per-path lock.  ``rmdir`` checks emptiness with PROPFIND and deletes
pinned to the folder's ETag where it has one (Apache: changes with its entries); on
wsgidav (no folder ETags) an entry created between the two would be deleted with it.

Nextcloud-like servers also get ``oc:checksums``: an entry's ``hash`` is the SHA1 the
uploading client sent (``hash_kind="sha1"``; None where none was sent), and uploads
send one (``webdav_io``); above ``chunk_threshold`` they use chunked upload v2
(``webdav_chunked``).

Crash behaviour: see ``webdav_io`` and ``webdav_chunked`` (temp PUT + MOVE: the old object or the new one,
never a torn one; a crash leaves a temp for ``abort_incomplete_uploads``).  ``rename``
is one MOVE, also of a whole directory (``dir_rename``); ``copy`` is one COPY.
Listings: Depth 1 per folder, or one Depth infinity PROPFIND for a recursive listing
where the server allows it (Apache forbids it unless ``DavDepthInfinity on``: the
first 403 switches to walking with Depth 1).
"""

from __future__ import annotations

import dataclasses
import errno
import urllib.parse
from pathlib import Path
from typing import Any, AsyncContextManager, AsyncIterator, Callable, Collection

import httpx
import trio

from cloudgw.errors import (PreconditionFailed, RemoteError, RemoteExists, RemoteNotEmpty, RemoteNotFound,
                            RemoteUnsupported, TransientRemoteError, UserError)
from cloudgw.remotes import webdav_chunked, webdav_io, webdav_list, webdav_moves
from cloudgw.remotes.base import (BytesSource, Capabilities, Expect, FileAttrs, Kind, RemoteEntry, StreamedReads,
                                  UploadSource)
from cloudgw.remotes.registry import Common, Option, RemoteType, RemoteURL, bad_url, read_secret
from cloudgw.remotes.symlinks import decode_target, encode_target, is_link_object, link_name, link_object
from cloudgw.remotes.util import PathLocks, remote_error, split_path
from cloudgw.remotes.webdav_http import DavHttp, netrc_credentials, status_error
from cloudgw.remotes.webdav_io import TMP_PREFIX, is_stale, join, parent_of, tmp_tag
from cloudgw.remotes.webdav_xml import PROPFIND_BODY, PROPFIND_HEADERS, Prop, parse_multistatus, rev_of

class WebDavRemote(StreamedReads):
    """A folder on a WebDAV server as a remote; see the module docstring."""

    def __init__(self, base: str, root: str, *, user: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, retry_deadline: float = 30.0, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0, stale_upload_age: float = 3600.0, max_threads: int = 8,
                 uploads_url: str | None = None, chunk_threshold: int = 64 << 20, chunk_size: int = 10 << 20) -> None:
        self.user = user
        self.http = DavHttp(base, root, auth=(user, password or "") if user else None, ca_file=ca_file,
                            retry_deadline=retry_deadline, connect_timeout=connect_timeout,
                            read_timeout=read_timeout)
        self.stale_upload_age = stale_upload_age
        self.uploads = webdav_chunked.uploads_path(self.http.base, self.http.root, uploads_url)  # None: no chunking
        self.chunk_threshold, self.chunk_size = chunk_threshold, webdav_chunked.checked_size(chunk_size)
        self.capabilities = Capabilities(
            hash_kind=None, conditional_write=True, server_side_copy=True, streaming_reads=True,
            native_symlinks=False, keeps_mode=False, keeps_mtime=False, dir_rename=True,
        )
        self.active_tmps: set[str] = set()  # temp files of our uploads in flight: never stale
        self.known_dirs: set[str] = {""}  # folders seen to exist (a hint: a PUT's 409 corrects it)
        self.proppatch_mtime: bool | None = None  # None: not tried yet
        self.depth_infinity: bool | None = None  # None: not tried yet
        self._limiter = trio.CapacityLimiter(max_threads)
        self._locks = PathLocks()

    def __repr__(self) -> str:
        return f"WebDavRemote({self.http.display('')!r})"

    # -- helpers -----------------------------------------------------------------

    async def thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def leaf(self, path: str, what: str) -> str:
        parts = split_path(path)
        if not parts:
            raise RemoteUnsupported(f"{what}: not possible on the root")
        if is_link_object(parts[-1]) or parts[-1].startswith(TMP_PREFIX):
            raise RemoteUnsupported(f"{what} {path!r}: names ending in .cloudgw-symlink or starting with"
                                    f" {TMP_PREFIX} are reserved")
        return path

    def locked(self, path: str) -> AsyncContextManager[None]:
        return self._locks.locked(path)

    def rel(self, href_path: str) -> str | None:
        """The contract path of a reply's href (None: not below our root)."""
        root = self.http.root or ""
        if href_path.rstrip("/") == root.rstrip("/") or (not root and href_path == "/"):
            return ""
        if root and not href_path.startswith(root + "/"):
            return None
        rel = href_path[len(root) + 1:]
        parts = rel.split("/")
        return rel if rel and all(p not in ("", ".", "..") for p in parts) else None

    def entry(self, path: str, prop: Prop) -> RemoteEntry:
        if prop.collection:
            rev = prop.etag if self.capabilities.dir_revs_propagate else None
            return RemoteEntry(path, Kind.DIR, 0, prop.mtime_ns, rev, id=prop.fileid)
        sha1 = prop.sha1 if self.capabilities.hash_kind == "sha1" else None
        name = path.rsplit("/", 1)[-1]
        if is_link_object(name):
            return RemoteEntry(join(parent_of(path), link_name(name)), Kind.SYMLINK, prop.size, prop.mtime_ns,
                               prop.etag, id=prop.fileid, hash=sha1)
        return RemoteEntry(path, Kind.FILE, prop.size, prop.mtime_ns, prop.etag, id=prop.fileid, hash=sha1)

    async def propfind(self, path: str, depth: str) -> list[Prop] | None:
        """A buffered PROPFIND (retried); None if nothing is at ``path``."""
        what = f"PROPFIND {self.http.display(path)}"
        # Apache answers 400 for a path below a file, wsgidav 404
        resp = await self.http.call(what, "PROPFIND", self.http.url(path), ok=(207, 400, 404, 409),
                                    headers={"Depth": depth, **PROPFIND_HEADERS}, content=PROPFIND_BODY)
        if resp.status_code != 207:
            return None
        return parse_multistatus(resp.content)

    async def prop(self, path: str) -> Prop | None:
        """What is at ``path`` (PROPFIND Depth 0), None if nothing."""
        props = await self.propfind(path, "0")
        return props[0] if props else None

    async def check_rev(self, path: str, rev: str, what: str) -> None:
        now = await self.prop(path)
        if now is None:
            raise RemoteNotFound(f"{what}: no such file")
        if now.etag != rev_of(rev):
            raise PreconditionFailed(f"{what}: expected revision {rev}, found {now.etag}")

    # -- reading -------------------------------------------------------------------

    async def check(self) -> None:
        http = self.http
        where = http.display("")
        try:
            resp = await http.client.request("PROPFIND", http.url(""), headers={"Depth": "0", **PROPFIND_HEADERS},
                                             content=PROPFIND_BODY)
        except httpx.ConnectError as exc:
            if "CERTIFICATE" in str(exc).upper() or "SSL" in str(exc).upper():
                raise UserError(f"WebDAV server {http.base}: TLS certificate not trusted ({exc}):"
                                " set ca_file to the server's CA") from None
            raise UserError(f"cannot reach WebDAV server {http.base} ({exc}): check the URL and that the server"
                            " is running") from None
        except httpx.HTTPError as exc:
            raise UserError(f"cannot reach WebDAV server {http.base} ({type(exc).__name__}: {exc})") from None
        status = resp.status_code
        if status == 401:
            who = f"user {self.user!r}" if self.user else "no credentials"
            raise UserError(f"WebDAV server {http.base} refused {who} (401 Unauthorized): check user and"
                            " password_file, or the machine entry in ~/.netrc ($NETRC)")
        if status == 403:
            raise UserError(f"{where}: access denied (403 Forbidden) for user {self.user!r}")
        if status in (404, 409):
            raise UserError(f"{where} does not exist on the server: create that folder first")
        if status != 207:
            raise UserError(f"{where}: the server answered PROPFIND with {status}: is this a WebDAV URL?")
        props = parse_multistatus(resp.content)
        if not props or not props[0].collection:
            raise UserError(f"{where} is not a folder")
        if props[0].fileid is not None:  # ownCloud/Nextcloud: folder ETags propagate, checksums kept
            self.capabilities = dataclasses.replace(self.capabilities, dir_revs_propagate=True, stable_ids=True,
                                                    hash_kind="sha1")

    async def stat(self, path: str) -> RemoteEntry:
        parts = split_path(path)
        what = f"stat {self.http.display(path)}: no such file or directory"
        if parts and (is_link_object(parts[-1]) or parts[-1].startswith(TMP_PREFIX)):
            raise RemoteNotFound(what)  # reserved names: never one of ours
        found = await self.object(path) if path else ("", await self.prop(""))
        if found is None or found[1] is None:
            raise RemoteNotFound(what)
        return self.entry(*found)

    def _walk(self, path: str, *, recursive: bool) -> AsyncIterator[tuple[str, Prop]]:
        return webdav_list.walk(self, path, recursive=recursive)

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        split_path(path)
        async for rel, prop in self._walk(path, recursive=recursive):
            if prop.collection:
                self.known_dirs.add(rel)
            elif rel.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                continue
            yield self.entry(rel, prop)

    async def read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                        rev: str | None = None) -> None:
        split_path(path)
        await webdav_io.read_into(self, path, offset, length, sink, rev)

    # -- writing -------------------------------------------------------------------

    async def write(self, path: str, source: UploadSource, *, expect: Expect | str = Expect.ANY,
                    attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        self.leaf(path, "write")
        chunked = (self.uploads is not None and self.capabilities.dir_revs_propagate
                   and source.size > self.chunk_threshold and webdav_io.movable(path))
        async with self.locked(path):
            prop = await (webdav_chunked if chunked else webdav_io).upload(self, path, source, expect, attrs)
        return self.entry(path, prop)

    async def move(self, src: str, dst: str, what: str, *, overwrite: bool,
                   conditions: Collection[tuple[str, str]] = (), method: str = "MOVE") -> None:
        """One MOVE (or COPY) of ``src`` to ``dst`` with the given conditions; parents of
        ``dst`` are created on a 409.  A retry whose source is gone after an attempt with
        no answer counts as done when ``dst`` exists (our own MOVE went through)."""
        http = self.http
        headers = {"Destination": http.url(dst), "Overwrite": "T" if overwrite else "F",
                   **http.if_header(conditions)}
        if method == "COPY":
            headers["Depth"] = "0"
        if parent_of(dst) not in self.known_dirs:  # Apache answers 500, not 409, for a missing parent
            await self.mkdir(parent_of(dst))
        attempts = 0

        async def attempt() -> None:
            nonlocal attempts
            attempts += 1
            for _ in range(2):
                resp = await http.once(what, method, http.url(src), ok=(201, 204, 404, 409), headers=headers)
                if resp.status_code == 409:
                    await self.mkdir(parent_of(dst))
                    continue
                if resp.status_code == 404:
                    if attempts > 1 and method == "MOVE" and await self.prop(dst) is not None:
                        return
                    raise RemoteNotFound(f"{what}: {http.display(src)}: no such file")
                return
            raise status_error(409, what)

        await http.retried(what, attempt)

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        if not path:
            return RemoteEntry("", Kind.DIR)
        self.leaf(path, "mkdir")
        http = self.http
        what = f"MKCOL {http.display(path)}"
        async with self.locked("\0mkdir " + path):  # one MKCOL per folder at a time from here
            # 403/405: something is there (Apache answers 403 to a MKCOL racing another
            # client's MKCOL of the same folder); the PROPFIND below tells what
            resp = await http.call(what, "MKCOL", http.url(path), ok=(201, 403, 405, 409))
            if resp.status_code == 409:  # a parent is missing
                await self.mkdir(parent_of(path))
                await http.call(what, "MKCOL", http.url(path), ok=(201, 403, 405))
            prop = await self.prop(path)
        if prop is None:
            raise status_error(resp.status_code, what)
        if not prop.collection:
            raise RemoteExists(f"mkdir {http.display(path)}: a file has that name")
        self.known_dirs.add(path)
        return self.entry(path, prop)

    async def rmdir(self, path: str) -> None:
        self.leaf(path, "rmdir")
        http = self.http
        props = await self.propfind(path, "1")
        if props is None:
            return
        if not props[0].collection:
            raise remote_error(RemoteError, errno.ENOTDIR, f"rmdir {http.display(path)}: not a directory")
        if any(self.rel(p.href_path) not in (None, path) for p in props):
            raise RemoteNotEmpty(f"rmdir {http.display(path)}: directory not empty")
        cond = [(path, props[0].etag)] if props[0].etag else []
        resp = await http.call(f"DELETE {http.display(path)}", "DELETE", http.url(path), ok=(200, 204, 404, 412),
                               headers=http.if_header(cond))
        if resp.status_code == 412:
            raise RemoteNotEmpty(f"rmdir {http.display(path)}: something was added meanwhile")
        self.known_dirs.discard(path)

    async def object(self, path: str) -> tuple[str, Prop] | None:
        """The file or symlink object of ``path`` (a folder too), or None."""
        if (prop := await self.prop(path)) is not None:
            return path, prop
        if (prop := await self.prop(link_object(path))) is not None:
            return link_object(path), prop
        return None

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        self.leaf(path, "delete")
        http = self.http
        for _ in range(5):  # a change between our PROPFIND and the DELETE: look again
            found = await self.object(path)
            if found is None:
                return  # already gone: fine
            target, prop = found
            what = f"DELETE {http.display(target)}"
            if prop.collection:
                raise remote_error(RemoteError, errno.EISDIR, f"{what}: is a directory")
            if expect is not None and prop.etag != rev_of(expect):
                raise PreconditionFailed(f"{what}: expected revision {expect}, found {prop.etag}")
            cond = [(target, prop.etag)] if prop.etag else []
            resp = await http.call(what, "DELETE", http.url(target), ok=(200, 204, 404, 412),
                                   headers=http.if_header(cond))
            if resp.status_code != 412:
                return
        raise TransientRemoteError(f"DELETE {http.display(path)}: it keeps changing")

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        return await webdav_moves.transfer(self, "MOVE", src, dst, expect)

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        return await webdav_moves.transfer(self, "COPY", src, dst, rev, expect)

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        self.leaf(path, "symlink")
        if await self.prop(path) is not None:
            raise RemoteExists(f"symlink {self.http.display(path)}: a file or directory has that name")
        async with self.locked(link_object(path)):
            try:
                prop = await webdav_io.upload(self, link_object(path), BytesSource(encode_target(target)),
                                              Expect.ABSENT, FileAttrs())
            except PreconditionFailed:
                raise RemoteExists(f"symlink {self.http.display(path)}: already exists") from None
        return dataclasses.replace(self.entry(link_object(path), prop), symlink_target=target)

    async def readlink(self, path: str) -> str:
        self.leaf(path, "readlink")
        try:
            body = await self.read(link_object(path), 0, 1 << 20)
        except RemoteNotFound:
            if await self.prop(path) is not None:
                raise remote_error(RemoteError, errno.EINVAL, f"readlink {self.http.display(path)}: not a symlink") from None
            raise
        return decode_target(body)

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        """Delete temps older than ``stale_upload_age`` (by the server's mtime) and,
        whatever their age, temps of uploads to ``paths``; never ours in flight.  The same
        for chunked-upload folders on Nextcloud (``webdav_chunked.abort``)."""
        mine = {(parent_of(p), tmp_tag(p.rsplit("/", 1)[-1])) for p in paths}
        removed = 0
        async for rel, prop in self._walk("", recursive=True):
            name = rel.rsplit("/", 1)[-1]
            if prop.collection or not name.startswith(TMP_PREFIX) or rel in self.active_tmps:
                continue
            tag = name[len(TMP_PREFIX):].split("-", 1)[0]
            if is_stale(prop, self.stale_upload_age) or (parent_of(rel), tag) in mine:
                await self.http.call(f"DELETE {self.http.display(rel)}", "DELETE", self.http.url(rel),
                                     ok=(200, 204, 404))
                removed += 1
        return removed + await webdav_chunked.abort(self, paths)

    async def aclose(self) -> None:
        await self.http.aclose()


# -- the registry's entry --------------------------------------------------------------


def _build(url: RemoteURL, options: dict[str, Any], common: Common) -> WebDavRemote:
    parts = urllib.parse.urlsplit(url.text)
    if parts.username is not None or parts.password is not None:
        raise bad_url(url.text.replace(parts.password or "\0", "***"),
                      "no credentials in the URL: use the user and password_file options or ~/.netrc")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise url.bad("invalid port") from None
    if not host:
        raise url.bad("missing host")
    root = urllib.parse.unquote(url.path).strip("/")
    if any(p in (".", "..") for p in root.split("/")) or "//" in root:
        raise url.bad("invalid path")
    scheme = "https" if url.scheme == "webdavs" else "http"
    netloc = f"[{host}]" if ":" in host else host
    base = f"{scheme}://{netloc}" + (f":{port}" if port else "")
    user, password = options.get("user"), None
    if options.get("password_file") is not None:
        if user is None:
            raise UserError("password_file is set but user is not: set user too")
        password = read_secret(options["password_file"], "password_file")
    else:
        found = netrc_credentials(host, user)
        if found is not None:
            user, password = found
        elif user is not None:
            raise UserError(f"user {user!r} has no password: set password_file, or add"
                            f" 'machine {host} login {user} password ...' to ~/.netrc")
    sizes = {k: options[k] for k in ("chunk_threshold", "chunk_size") if options.get(k) is not None}
    return WebDavRemote(base, root, user=user, password=password, ca_file=options.get("ca_file"),
                        retry_deadline=common.timeout, uploads_url=options.get("uploads_url"), **sizes)


REMOTE_TYPE = RemoteType(
    options=(
        Option("user", str, "the WebDAV user (default: the machine's entry in ~/.netrc or $NETRC)"),
        Option("password_file", Path, "a file (mode 600) whose first line is the password", secret_file=True),
        Option("ca_file", Path, "PEM file of the CA that signed the server's certificate (webdavs://, own CA)"),
        *webdav_chunked.OPTIONS,
    ),
    build=_build,
)
