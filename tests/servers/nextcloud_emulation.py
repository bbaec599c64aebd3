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
- File ETags stay wsgidav's (``inode-mtime-size``); Nextcloud's are random per change.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from typing import Any, Callable, Iterable

from wsgidav.fs_dav_provider import FileResource, FilesystemProvider, FolderResource

OC_FILEID = "{http://owncloud.org/ns}fileid"
_XATTR = "user.nc-fileid"
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


class NextcloudFile(_Ids, FileResource):
    pass


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
