"""A wsgidav filesystem provider that behaves like Nextcloud/ownCloud's WebDAV where
cloudgw can use it (Nextcloud itself needs PHP and a database: it does not run here).

Emulated, and nothing else:

- **Propagated folder ETags**: a collection has a ``getetag`` that changes whenever
  anything below it changes (a file written, added, removed or renamed at any depth).
  Nextcloud stores and propagates it on every change made through it; here it is a
  hash of the subtree's names, kinds, sizes, mtimes (ns) and inode numbers, taken when
  asked, so a change made on the disk behind the server's back shows too (on a real
  Nextcloud only after ``occ files:scan``).
- **``oc:fileid``** (``{http://owncloud.org/ns}fileid``): a number per file and folder,
  stable across MOVE (also of a whole folder) and across an overwriting PUT, new for
  COPY and for anything created; never reused.  Kept in the ``user.nc-fileid`` xattr
  of each file, so it travels with the inode; given on request only (not in allprop),
  as on Nextcloud.  A COPY's target gets a new id (wsgidav copies xattrs with
  ``shutil.copy2``: the copy's is replaced).
- **``X-OC-Mtime``**: a PUT with ``X-OC-Mtime: <seconds>`` stores that mtime and the
  response carries ``X-OC-MTime: accepted`` (wsgidav's ``honor_mtime_header`` does the
  storing; the header is added here).
- **Checksums** (``oc:checksums``): a PUT with ``OC-Checksum: SHA1:<hex>`` stores that
  value (the ``user.nc-checksum`` xattr: it travels with the file on MOVE, is copied by
  COPY, as Nextcloud's file cache row is) and PROPFIND reports it as
  ``<oc:checksums><oc:checksum>SHA1:<hex></oc:checksum></oc:checksums>`` (on request
  only).  A PUT without the header stores none (any earlier one is dropped), as
  Nextcloud: the property is then 404.  The value is verified against the bytes
  received: a mismatch answers 400 and the file is removed (Nextcloud discards its
  part file; wsgidav writes in place).  Other kinds than SHA1 are stored unverified.
- **Chunked upload v2** at ``/remote.php/dav/uploads/<user>/`` (``chunked_uploads``,
  WSGI middleware over a plain wsgidav provider of ``<root>/../uploads``), strictly:
  basic auth of the one user, others' folders 403; ``MKCOL <transfer>`` needs a
  ``Destination`` (400), stored with the folder; a chunk ``PUT`` needs a numeric name
  1..10000, a ``Destination`` equal to the MKCOL's and ``OC-Total-Length`` (400), at most
  5 GiB (413); a chunk cannot be read back (GET/HEAD 405); ``MOVE <transfer>/.file``
  needs ``Destination`` equal to the MKCOL's and ``OC-Total-Length`` equal to the sum of
  the chunks (400), every chunk but the last (by number) at least 5 MiB (400); it honours
  ``Overwrite: F`` and tagged ``If: <path> (["etag"])`` lists on the target (412), a
  missing parent folder (409), ``X-OC-Mtime`` (answer ``X-OC-MTime: accepted``) and
  ``OC-Checksum`` (verified, stored); the assembled file replaces the target in one
  ``rename`` and keeps the target's ``oc:fileid`` (a new one if there was none); the
  answer is 201/204 with ``ETag``, ``OC-ETag`` and ``OC-FileId``; the transfer folder is
  removed.  Not emulated: expiry after 24 h, ``Content-Length`` of ``.file``.
- File ETags stay wsgidav's (``inode-mtime-size``); Nextcloud's are random per change.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import re
import shutil
import threading
import urllib.parse
from typing import Any, Callable, Iterable

from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_NOT_FOUND, DAVError
from wsgidav.fs_dav_provider import FileResource, FilesystemProvider, FolderResource
from wsgidav.util import get_file_etag
from wsgidav.xml_tools import etree

OC_FILEID = "{http://owncloud.org/ns}fileid"
OC_CHECKSUMS = "{http://owncloud.org/ns}checksums"
_XATTR = "user.nc-fileid"
_SUMS = "user.nc-checksum"
_ids = itertools.count(int.from_bytes(os.urandom(2), "big") * 1000 + 1)
_ids_lock = threading.Lock()


def _fileid(path: str) -> str:
    """The id in ``path``'s xattr; a new one if it has none (or a copy's: see ``_fresh_id``)."""
    try:
        return os.getxattr(path, _XATTR, follow_symlinks=False).decode()
    except OSError:
        with _ids_lock:
            value = str(next(_ids))
            try:
                os.setxattr(path, _XATTR, value.encode(), follow_symlinks=False)
            except FileExistsError:  # another thread was first
                return os.getxattr(path, _XATTR, follow_symlinks=False).decode()
            return value


def _fresh_id(path: str) -> None:
    """Give ``path`` (just copied, xattrs included) an id of its own."""
    for dirpath, _dirs, files in os.walk(path) if os.path.isdir(path) else [(os.path.dirname(path), [], [os.path.basename(path)])]:
        targets = [dirpath] if os.path.isdir(path) else []
        for p in [*targets, *(os.path.join(dirpath, f) for f in files)]:
            try:
                os.removexattr(p, _XATTR, follow_symlinks=False)
            except OSError:
                pass
            _fileid(p)


def folder_etag(path: str) -> str:
    """A hash of everything below ``path``: changes whenever anything there changes."""
    h = hashlib.md5()
    for dirpath, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files) + [f"{d}/" for d in dirs]:
            try:
                st = os.lstat(os.path.join(dirpath, name.rstrip("/")))
            except FileNotFoundError:
                continue
            h.update(f"{os.path.relpath(dirpath, path)}/{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n"
                     .encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class _Ids:
    """The ``oc:fileid`` live property, for files and folders."""

    _file_path: str

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names = super().get_property_names(is_allprop=is_allprop)  # type: ignore[misc]
        return names if is_allprop else [*names, OC_FILEID]

    def get_property_value(self, name: str) -> Any:
        if name == OC_FILEID:
            return _fileid(self._file_path)
        return super().get_property_value(name)  # type: ignore[misc]

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        super().copy_move_single(dest_path, is_move=is_move)  # type: ignore[misc]
        if not is_move:
            _fresh_id(self.provider._loc_to_file_path(dest_path, self.environ))  # type: ignore[attr-defined]


def checksum_error(value: str, sha1: str) -> str | None:
    """Why an ``OC-Checksum`` value does not fit bytes of SHA1 ``sha1`` (None: it fits)."""
    kind, _, digest = value.strip().partition(":")
    if not kind or not digest:
        return f"malformed OC-Checksum {value!r}"
    if kind.upper() == "SHA1" and digest.lower() != sha1:
        return "The computed checksum does not match the one received from the client."
    return None


class _Hashing:
    """A PUT's file object that hashes what it writes."""

    def __init__(self, f: Any) -> None:
        self.f, self.sha1 = f, hashlib.sha1()

    def write(self, data: bytes) -> None:
        self.sha1.update(data)
        self.f.write(data)

    def close(self) -> None:
        self.f.close()


class NextcloudFile(_Ids, FileResource):
    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names = super().get_property_names(is_allprop=is_allprop)
        return names if is_allprop else [*names, OC_CHECKSUMS]

    def get_property_value(self, name: str) -> Any:
        if name != OC_CHECKSUMS:
            return super().get_property_value(name)
        try:
            value = os.getxattr(self._file_path, _SUMS, follow_symlinks=False).decode()
        except OSError:
            raise DAVError(HTTP_NOT_FOUND) from None
        element = etree.Element(OC_CHECKSUMS)
        etree.SubElement(element, "{http://owncloud.org/ns}checksum").text = value
        return element

    def begin_write(self, *, content_type: str | None = None) -> Any:
        self._writing = _Hashing(super().begin_write(content_type=content_type))
        try:
            os.removexattr(self._file_path, _SUMS, follow_symlinks=False)
        except OSError:
            pass
        return self._writing

    def end_write(self, *, with_errors: bool) -> None:
        value = self.environ.get("HTTP_OC_CHECKSUM")
        if with_errors or not value:
            return
        problem = checksum_error(value, self._writing.sha1.hexdigest())
        if problem:
            os.unlink(self._file_path)
            raise DAVError(HTTP_BAD_REQUEST, problem)
        os.setxattr(self._file_path, _SUMS, value.strip().encode(), follow_symlinks=False)


class NextcloudFolder(_Ids, FolderResource):
    def get_etag(self) -> str:
        return folder_etag(self._file_path)

    def support_etag(self) -> bool:
        return True


class NextcloudProvider(FilesystemProvider):
    """``FilesystemProvider`` with the behaviours listed in the module docstring."""

    def get_resource_inst(self, path: str, environ: dict) -> FileResource | None:
        res = super().get_resource_inst(path, environ)
        if res is None:
            return None
        cls = NextcloudFolder if isinstance(res, FolderResource) else NextcloudFile
        return cls(path, environ, res._file_path)


def accept_mtime(app: Callable) -> Callable:
    """WSGI middleware: a successful PUT that carried ``X-OC-Mtime`` answers
    ``X-OC-MTime: accepted``, as Nextcloud does."""

    def wsgi(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "PUT" or "HTTP_X_OC_MTIME" not in environ:
            return app(environ, start_response)

        def start(status: str, headers: list, exc_info: Any = None) -> Callable:
            if status.startswith("2"):
                headers = [*headers, ("X-OC-MTime", "accepted")]
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wsgi


# -- chunked upload v2 -------------------------------------------------------------

UPLOADS = "/remote.php/dav/uploads/"
_DEST = "user.nc-destination"
MIN_CHUNK, MAX_CHUNK = 5 << 20, 5 << 30


def _dest_path(value: str | None) -> str | None:
    """A Destination header as an unquoted URL path (None: none given)."""
    if not value:
        return None
    return urllib.parse.unquote(urllib.parse.urlsplit(value).path)


def chunked_uploads(app: Callable, files_root: str, files_prefix: str, uploads_root: str, user: str,
                    password: str) -> Callable:
    """WSGI middleware: Nextcloud's chunked upload v2 with the rules of the module docstring.
    ``app`` serves ``uploads_root`` at ``UPLOADS`` (MKCOL, PUT, PROPFIND, DELETE);
    the MOVE of ``.file`` is done here, into ``files_root`` (served at ``files_prefix``)."""
    lock = threading.Lock()
    expected_auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def answer(start_response: Callable, status: str, headers: list | None = None) -> list[bytes]:
        body = b"" if status.startswith("204") else status.encode()
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *(headers or [])])
        return [body]

    def wsgi(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(UPLOADS):
            return app(environ, start_response)
        if environ.get("HTTP_AUTHORIZATION") != expected_auth:
            return answer(start_response, "401 Unauthorized", [("WWW-Authenticate", 'Basic realm="nextcloud"')])
        parts = path[len(UPLOADS):].strip("/").split("/")
        method = environ["REQUEST_METHOD"]
        if parts[0] != user:
            return answer(start_response, "403 Forbidden")
        folder = os.path.join(uploads_root, *parts[:2])
        dest = _dest_path(environ.get("HTTP_DESTINATION"))
        if method == "MKCOL" and len(parts) == 2:
            if dest is None:
                return answer(start_response, "400 Bad Request")

            def made(status: str, headers: list, exc_info: Any = None) -> Callable:
                if status.startswith("201"):
                    os.setxattr(folder, _DEST, dest.encode("utf-8", "surrogateescape"))
                return start_response(status, headers, exc_info)

            return app(environ, made)
        if len(parts) == 3 and method in ("GET", "HEAD"):
            return answer(start_response, "405 Method Not Allowed")
        if len(parts) == 3 and method in ("PUT", "MOVE"):
            try:
                recorded = os.getxattr(folder, _DEST).decode("utf-8", "surrogateescape")
            except OSError:
                return answer(start_response, "404 Not Found")
            total = environ.get("HTTP_OC_TOTAL_LENGTH", "")
            if dest != recorded or not total.isdigit():
                return answer(start_response, "400 Bad Request")
            if method == "MOVE":
                if parts[2] != ".file":
                    return answer(start_response, "400 Bad Request")
                with lock:
                    return assemble(environ, start_response, folder, dest, int(total))
            if not (parts[2].isdigit() and 1 <= int(parts[2]) <= 10000):
                return answer(start_response, "400 Bad Request")
            if int(environ.get("CONTENT_LENGTH") or 0) > MAX_CHUNK:
                return answer(start_response, "413 Payload Too Large")
        return app(environ, start_response)

    def assemble(environ: dict, start_response: Callable, folder: str, dest: str, total: int) -> list[bytes]:
        chunks = sorted((int(n), os.path.join(folder, n)) for n in os.listdir(folder) if n.isdigit())
        sizes = [os.path.getsize(p) for _, p in chunks]
        if not chunks or sum(sizes) != total or any(not MIN_CHUNK <= s <= MAX_CHUNK for s in sizes[:-1]):
            return answer(start_response, "400 Bad Request")
        if not dest.startswith(files_prefix + "/"):
            return answer(start_response, "400 Bad Request")
        target = os.path.join(files_root, dest[len(files_prefix) + 1:])
        if not os.path.isdir(os.path.dirname(target)) or os.path.isdir(target):
            return answer(start_response, "409 Conflict")
        exists = os.path.exists(target)
        if exists and environ.get("HTTP_OVERWRITE", "T").upper() == "F":
            return answer(start_response, "412 Precondition Failed")
        for tag, etag in re.findall(r'<([^>]*)>\s*\(\s*\["([^"]*)"\]\s*\)', environ.get("HTTP_IF", "")):
            tagged = os.path.join(files_root, _dest_path(tag)[len(files_prefix) + 1:])  # type: ignore[index]
            if not os.path.isfile(tagged) or get_file_etag(tagged) != etag:
                return answer(start_response, "412 Precondition Failed")
        assembled = os.path.join(folder, ".file")
        sha1 = hashlib.sha1()
        with open(assembled, "wb") as out:
            for _, p in chunks:
                with open(p, "rb") as f:
                    while block := f.read(1 << 20):
                        sha1.update(block)
                        out.write(block)
        checksum = environ.get("HTTP_OC_CHECKSUM")
        if checksum and checksum_error(checksum, sha1.hexdigest()):
            return answer(start_response, "400 Bad Request")
        if checksum:
            os.setxattr(assembled, _SUMS, checksum.strip().encode())
        if exists:  # Nextcloud: overwriting keeps the target's file id
            os.setxattr(assembled, _XATTR, _fileid(target).encode())
        mtime = environ.get("HTTP_X_OC_MTIME", "")
        if mtime.isdigit():
            os.utime(assembled, (int(mtime), int(mtime)))
        os.replace(assembled, target)
        shutil.rmtree(folder)
        etag = f'"{get_file_etag(target)}"'
        headers = [("ETag", etag), ("OC-ETag", etag), ("OC-FileId", _fileid(target))]
        if mtime.isdigit():
            headers.append(("X-OC-MTime", "accepted"))
        return answer(start_response, "204 No Content" if exists else "201 Created", headers)

    return wsgi
