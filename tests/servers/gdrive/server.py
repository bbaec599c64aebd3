"""``start_gdrive()``: the fake Google OAuth 2.0 + Drive v3 as one plain-HTTP werkzeug server
(threaded) in a daemon thread of the test process, with test hooks on the yielded
``GDriveServer`` and a ``Backdoor`` for changes made "elsewhere".  One lock guards everything."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

from tests.servers import free_port

from .api import DriveApi
from .counters import Counters
from .errors import DriveError
from .model import DOC_KINDS, FOLDER, SHORTCUT, Store, parse_rfc3339
from .oauth import OAuth


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:  # no per-request logging
        pass

    def connection_dropped(self, error: BaseException, environ=None) -> None:
        # A client that went away, or errors.DropConnection (fail_upload_chunks): close the socket
        # without a response.
        self.close_connection = True


class Backdoor:
    """Another user / the Drive web UI.  ``parent`` is a folder id ("root" = My Drive root; with
    ``drive=`` a shared drive id, "root" is that drive's root).  Changes go into the change log."""

    def __init__(self, server: "GDriveServer") -> None:
        self._s = server

    def _res(self, f) -> dict:
        return self._s.store.resource(f, self._s.root_url)

    def _parent(self, parent: str, drive: str | None) -> str:
        if drive is not None:
            if drive not in self._s.store.drives:
                raise KeyError(f"no shared drive {drive!r}")
            if parent == "root":
                return drive
        return parent

    def _file(self, file_id: str):
        f = self._s.store.files.get(self._s.store.resolve_id(file_id))
        if f is None:
            raise FileNotFoundError(file_id)
        return f

    def create_file(self, parent: str, name: str, data: bytes, *, mime: str = "application/octet-stream",
                    created: str | None = None, drive: str | None = None) -> dict:
        with self._s.lock:
            t = parse_rfc3339(created, "created") if created else None
            f = self._s.store.create(self._parent(parent, drive), name, mime, data=bytes(data), created=t,
                                     modified=t)
            return self._res(f)

    def create_folder(self, parent: str, name: str, *, drive: str | None = None) -> dict:
        with self._s.lock:
            return self._res(self._s.store.create(self._parent(parent, drive), name, FOLDER))

    def create_doc(self, parent: str, name: str, kind: str = "document", text: str = "") -> dict:
        if kind not in DOC_KINDS:
            raise ValueError(f"kind must be one of {DOC_KINDS}")
        with self._s.lock:
            return self._res(self._s.store.create(parent, name, "application/vnd.google-apps." + kind,
                                                  doc_text=text))

    def edit_doc(self, file_id: str, text: str) -> dict:
        with self._s.lock:
            f = self._file(file_id)
            if f.doc_kind is None:
                raise ValueError(f"{file_id} is not a Google Doc")
            self._s.store.edit_doc(f, text)
            return self._res(f)

    def create_shortcut(self, parent: str, name: str, target_id: str) -> dict:
        with self._s.lock:
            return self._res(self._s.store.create(parent, name, SHORTCUT, shortcut_target=target_id))

    def update(self, file_id: str, data: bytes) -> dict:
        with self._s.lock:
            f = self._file(file_id)
            self._s.store.set_content(f, bytes(data))
            return self._res(f)

    def rename(self, file_id: str, name: str) -> dict:
        with self._s.lock:
            f = self._file(file_id)
            f.name = name
            self._s.store.touch(f)
            return self._res(f)

    def move(self, file_id: str, new_parent: str) -> dict:
        with self._s.lock:
            f = self._file(file_id)
            self._s.store.move(f, new_parent)
            self._s.store.touch(f)
            return self._res(f)

    def trash(self, file_id: str) -> None:
        with self._s.lock:
            self._s.store.set_trashed(self._file(file_id), True)

    def delete(self, file_id: str) -> None:
        with self._s.lock:
            self._s.store.delete(self._file(file_id))

    def read(self, file_id: str) -> bytes:
        with self._s.lock:
            f = self._file(file_id)
            if f.data is None:
                raise IsADirectoryError(file_id) if f.mime == FOLDER else ValueError(f"{file_id}: no content")
            return f.data

    def get(self, file_id: str) -> dict | None:
        with self._s.lock:
            f = self._s.store.files.get(self._s.store.resolve_id(file_id))
            return self._res(f) if f else None

    def children(self, parent: str) -> list[dict]:
        with self._s.lock:
            s = self._s.store
            return [self._res(f) for f in s.children(s.resolve_id(parent)) if not s.is_trashed(f)]

    def find(self, parent: str, name: str) -> list[dict]:
        with self._s.lock:
            s = self._s.store
            return [self._res(f) for f in s.children(s.resolve_id(parent)) if f.name == name]

    def create_shared_drive(self, name: str) -> str:
        with self._s.lock:
            return self._s.store.create_shared_drive(name).id


class GDriveServer:
    """A running fake (see tests/servers/gdrive/README.md); everything here is thread-safe."""

    user = "alice@example.com"

    def __init__(self, *, port: int, page_size_cap: int, change_page_size: int, token_lifetime: int) -> None:
        self.lock = threading.RLock()
        self.port = port
        self.root_url = f"http://127.0.0.1:{port}/"
        # googleapiclient's client_options api_endpoint replaces rootUrl + servicePath ("drive/v3/")
        self.api_url = self.root_url + "drive/v3/"
        self.upload_url = self.root_url + "upload/drive/v3/files"
        self.token_url = self.root_url + "token"
        self.auth_url = self.root_url + "auth"
        self.counters = Counters()
        self.store = Store(self.user)
        self.oauth = OAuth(self.token_url, self.auth_url, self.user, token_lifetime, self.counters)
        self.client_id = self.oauth.client_id
        self.client_secret = self.oauth.client_secret
        self.api = DriveApi(store=self.store, oauth=self.oauth, counters=self.counters, root_url=self.root_url,
                            page_size_cap=page_size_cap, change_page_size=change_page_size)
        self.backdoor = Backdoor(self)

    @property
    def root_id(self) -> str:
        return self.store.root_id

    # -- files for the clients ---------------------------------------------------------------
    def client_secrets_file(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps({"installed": {
            "client_id": self.client_id, "client_secret": self.client_secret, "project_id": "fake-project",
            "auth_uri": self.auth_url, "token_uri": self.token_url, "redirect_uris": ["http://localhost"]}}))
        return path

    def service_account_file(self, path: Path, *, delegation: bool = True) -> Path:
        path = Path(path)
        with self.lock:
            info = self.oauth.service_account_key(delegation=delegation)
        path.touch(mode=0o600)
        path.write_text(json.dumps(info))
        return path

    def fix_media_uri(self, request):
        """googleapiclient keeps the discovery document's ``https`` scheme for media uploads when
        ``api_endpoint`` is overridden (it swaps only the host:port); point such an ``HttpRequest``
        at this plain-HTTP server.  Returns the request."""
        prefix = f"https://127.0.0.1:{self.port}/"
        if request.uri.startswith(prefix):
            request.uri = self.root_url + request.uri[len(prefix):]
        return request

    # -- identity hooks ----------------------------------------------------------------------
    def approve_next(self) -> None:
        with self.lock:
            self.oauth.approve_next = True

    def revoke(self) -> None:
        with self.lock:
            self.oauth.revoke()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.oauth.expire_access_tokens()

    def issue_tokens(self) -> dict:
        with self.lock:
            return self.oauth.issue_tokens()

    # -- Drive hooks -------------------------------------------------------------------------
    def rate_limit(self, count: int, *, reason: str = "userRateLimitExceeded", status: int = 403,
                   retry_after: int | None = None) -> None:
        with self.lock:
            self.api.rate = [count, reason, status, retry_after]

    def upload_quota_exceeded(self, on: bool) -> None:
        with self.lock:
            self.api.upload_quota = bool(on)

    def fail_upload_chunks(self, count: int) -> None:
        with self.lock:
            self.api.fail_chunks = count

    # -- WSGI --------------------------------------------------------------------------------
    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        request.max_content_length = None
        path = request.path
        request.get_data()  # read the body before taking the lock
        with self.lock:
            if path in ("/auth", "/token"):
                response = self.oauth.handle(request, path)
            elif path.startswith(("/drive/v3/", "/upload/drive/v3/", "/download/")):
                response = self.api.handle(request, path)
            else:
                response = DriveError(404, "notFound", f"Not Found: {path}",
                                      hint="the Drive API is under /drive/v3/ (api_url)").response()
        return response(environ, start_response)


@contextlib.contextmanager
def start_gdrive(*, page_size_cap: int = 1000, change_page_size: int = 100, token_lifetime: int = 3600,
                 port: int | None = None) -> Iterator[GDriveServer]:
    """Run the fake on 127.0.0.1 (plain HTTP) until the ``with`` block ends."""
    port = port or free_port()
    server = GDriveServer(port=port, page_size_cap=page_size_cap, change_page_size=change_page_size,
                          token_lifetime=token_lifetime)
    httpd = make_server("127.0.0.1", port, server.wsgi_app, threaded=True, request_handler=_QuietHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"gdrive-fake:{port}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
