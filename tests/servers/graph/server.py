"""``start_graph()``: the fake identity platform + Graph drive API as one HTTPS
server (werkzeug, threaded) in a daemon thread of the test process, with test
hooks on the yielded ``GraphServer`` and a ``Backdoor`` for changes made
"elsewhere".  One lock guards the whole model (identity, drives, sessions)."""

from __future__ import annotations

import contextlib
import secrets
import ssl
import tempfile
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.servers import free_port

from .api import GraphApi, Site
from .certs import make_certs
from .counters import Counters
from .drive import Drive, GraphError, Item
from .identity import FAKE_CLIENT_ID, Identity


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:  # no per-request logging
        pass

    def connection_dropped(self, error: BaseException, environ=None) -> None:
        # A client that went away, or api.DropConnection (fail_upload_fragments): close the socket
        # without a response instead of waiting for another request on it.
        self.close_connection = True


class Backdoor:
    """Changes made "elsewhere" (Office 365, another PC); they go into the delta feed like API changes.

    Paths are relative to the drive root, "/"-separated; ``drive`` is a drive id or a SharePoint
    library name, and defaults to the user's drive (/me/drive)."""

    def __init__(self, server: "GraphServer") -> None:
        self._s = server

    def _drive(self, drive: str | None) -> Drive:
        s = self._s
        if drive is None:
            return s._drives[s.drive_id]
        if drive in s._drives:
            return s._drives[drive]
        if drive in s.library_drive_ids:
            return s._drives[s.library_drive_ids[drive]]
        raise KeyError(f"no drive {drive!r}")

    @staticmethod
    def _parts(path: str) -> list[str]:
        return [p for p in path.strip("/").split("/") if p]

    def _json(self, d: Drive, item: Item) -> dict:
        return d.item_json(item, api_path="/drive" if d.id == self._s.drive_id else f"/drives/{d.id}")

    def _find(self, d: Drive, path: str) -> Item:
        try:
            return d.resolve(d.root, self._parts(path))
        except GraphError:
            raise FileNotFoundError(path) from None

    def _mkdirs(self, d: Drive, parts: list[str]) -> Item:
        folder = d.root
        for name in parts:
            nxt = d.child(folder, name)
            if nxt is None:
                nxt = d.create(folder, name, folder=True)
            elif not nxt.folder:
                raise NotADirectoryError("/".join(d.names(nxt)))
            folder = nxt
        return folder

    def put(self, path: str, data: bytes, drive: str | None = None) -> dict:
        """Create or replace the file ``path`` (new eTag/cTag; missing parents are made)."""
        with self._s.lock:
            d = self._drive(drive)
            *dirs, name = self._parts(path)
            parent = self._mkdirs(d, dirs)
            existing = d.child(parent, name)
            if existing is not None and existing.folder:
                raise IsADirectoryError(path)
            item = d.write(existing, data) if existing else d.create(parent, name, folder=False, data=data)
            return self._json(d, item)

    def mkdir(self, path: str, drive: str | None = None) -> dict:
        with self._s.lock:
            d = self._drive(drive)
            return self._json(d, self._mkdirs(d, self._parts(path)))

    def read(self, path: str, drive: str | None = None) -> bytes:
        with self._s.lock:
            item = self._find(self._drive(drive), path)
            if item.folder:
                raise IsADirectoryError(path)
            return item.data

    def item(self, path: str, drive: str | None = None) -> dict | None:
        """The driveItem JSON as GET would return it (None if there is no such item)."""
        with self._s.lock:
            d = self._drive(drive)
            try:
                return self._json(d, self._find(d, path))
            except FileNotFoundError:
                return None

    def move(self, src: str, dst: str, drive: str | None = None) -> dict:
        """Rename and/or reparent ``src`` to the path ``dst`` (same id; parents of dst are made)."""
        with self._s.lock:
            d = self._drive(drive)
            item = self._find(d, src)
            *dirs, name = self._parts(dst)
            d.update(item, parent=self._mkdirs(d, dirs), name=name)
            return self._json(d, item)

    def delete(self, path: str, drive: str | None = None) -> None:
        """Delete ``path`` (folders recursively)."""
        with self._s.lock:
            d = self._drive(drive)
            d.delete(self._find(d, path))

    def list(self, path: str = "", drive: str | None = None) -> list[str]:
        """The names in the folder ``path``, sorted case-insensitively."""
        with self._s.lock:
            d = self._drive(drive)
            folder = self._find(d, path)
            if not folder.folder:
                raise NotADirectoryError(path)
            return sorted((d.items[c].name for c in folder.children.values()), key=str.lower)


class GraphServer:
    """A running fake (see tests/servers/graph/README.md); everything here is thread-safe."""

    def __init__(self, *, port: int, ca_file: Path, drive_type: str, page_size: int, delta_page_size: int,
                 token_lifetime: int, client_id: str, tenant: str) -> None:
        if drive_type not in ("business", "personal"):
            raise ValueError(f"drive_type must be 'business' or 'personal', not {drive_type!r}")
        self.lock = threading.RLock()
        self.port = port
        self.authority_url = f"https://localhost:{port}"
        self.graph_url = self.authority_url + "/v1.0"
        self.ca_file = ca_file
        self.client_id = client_id
        self.tenant = tenant
        self.drive_type = drive_type
        self.counters = Counters()
        self._drives: dict[str, Drive] = {}
        me = Drive(secrets.token_hex(8) if drive_type == "personal" else "b!" + secrets.token_urlsafe(48),
                   drive_type, "OneDrive")
        self._drives[me.id] = me
        self.drive_id = me.id
        self.site_host = "contoso.sharepoint.com"
        self.site_path = "/sites/Team"
        self.library_drive_ids: dict[str, str] = {}
        for lib in ("Documents", "Archive"):
            d = Drive("b!" + secrets.token_urlsafe(48), "documentLibrary", lib,
                      web_url=f"https://{self.site_host}{self.site_path}/{'Shared Documents' if lib == 'Documents' else lib}")
            self._drives[d.id] = d
            self.library_drive_ids[lib] = d.id
        self.site_id = f"{self.site_host},{uuid.uuid4()},{uuid.uuid4()}"
        site = Site(self.site_id, self.site_host, self.site_path, "Team", dict(self.library_drive_ids))
        self.identity = Identity(authority_url=self.authority_url, client_id=client_id, tenant=tenant,
                                 token_lifetime=token_lifetime, counters=self.counters)
        self.api = GraphApi(base_url=self.authority_url, identity=self.identity, counters=self.counters,
                            drives=self._drives, me_drive_id=me.id, sites=[site], page_size=page_size,
                            delta_page_size=delta_page_size)
        self.backdoor = Backdoor(self)

    @property
    def authority(self) -> str:
        """The msal authority: ``f"{authority_url}/{tenant}"``."""
        return f"{self.authority_url}/{self.tenant}"

    @property
    def devicelogin_url(self) -> str:
        return f"{self.authority_url}/devicelogin"

    # -- identity hooks ----------------------------------------------------------------------
    def approve(self, user_code: str) -> None:
        """Approve a pending device code (KeyError if no such pending code)."""
        with self.lock:
            self.identity.approve(user_code)

    def deny(self, user_code: str) -> None:
        with self.lock:
            self.identity.deny(user_code)

    def pending_user_codes(self) -> list[str]:
        with self.lock:
            return self.identity.pending_user_codes()

    def expire_device_codes(self) -> None:
        """Every device code issued so far -> expired_token."""
        with self.lock:
            self.identity.expire_device_codes()

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.identity.revoke_refresh_tokens()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.identity.expire_access_tokens()

    def issue_tokens(self, scopes: list[str] | None = None) -> dict:
        """A token response as if a device flow had just succeeded (default scopes
        Files.ReadWrite.All User.Read)."""
        with self.lock:
            return self.identity.issue_tokens(scopes)

    # -- Graph hooks -------------------------------------------------------------------------
    def throttle(self, count: int, retry_after: int = 2, status: int = 429) -> None:
        """The next ``count`` Graph API requests (/v1.0, not /_pre) answer ``status`` + Retry-After."""
        with self.lock:
            self.api.throttles["graph"] = [count, retry_after, status]

    def throttle_pre(self, count: int, retry_after: int = 2, status: int = 429) -> None:
        """The next ``count`` requests to pre-authenticated URLs (downloads, uploadUrl) are throttled."""
        with self.lock:
            self.api.throttles["pre"] = [count, retry_after, status]

    def expire_delta_tokens(self) -> None:
        with self.lock:
            self.api.delta_tokens.clear()

    def fail_upload_fragments(self, count: int) -> None:
        with self.lock:
            self.api.fail_fragments = count

    def expire_upload_sessions(self) -> None:
        """Every upload session -> 404 itemNotFound (as after expirationDateTime)."""
        with self.lock:
            self.api.uploads.expire_all()

    def drive(self, name: str | None = None) -> Drive:
        """The model of a drive (None: /me/drive; else a drive id or library name); use under ``lock``."""
        return self.backdoor._drive(name)

    # -- WSGI --------------------------------------------------------------------------------
    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path
        if raw.startswith(("http://", "https://")):
            raw = urllib.parse.urlsplit(raw).path
        path = raw.split("?", 1)[0]
        if not path.isascii():
            return Response("non-ASCII request target", 400)(environ, start_response)
        request.get_data()  # read the body before taking the lock
        with self.lock:
            if path == "/v1.0" or path.startswith("/v1.0/"):
                response = self.api.handle_graph(request, path[len("/v1.0"):])
            elif path.startswith("/_pre/"):
                response = self.api.handle_pre(request, path[len("/_pre/"):].split("/"))
            else:
                parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
                response = self.identity.handle(request, parts)
        return response(environ, start_response)


@contextlib.contextmanager
def start_graph(*, drive_type: str = "business", page_size: int = 200, delta_page_size: int = 50,
                token_lifetime: int = 3600, client_id: str = FAKE_CLIENT_ID, tenant: str = "common",
                port: int | None = None, state_dir: Path | None = None) -> Iterator[GraphServer]:
    """Run the fake on 127.0.0.1 (URLs say ``localhost``) until the ``with`` block ends.

    ``state_dir``: where the test CA and server certificate go (default: a temp dir removed at exit)."""
    with contextlib.ExitStack() as stack:
        directory = Path(state_dir) if state_dir else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="graph-fake-")))
        certs = make_certs(directory)
        port = port or free_port()
        server = GraphServer(port=port, ca_file=certs.ca_file, drive_type=drive_type, page_size=page_size,
                             delta_page_size=delta_page_size, token_lifetime=token_lifetime,
                             client_id=client_id, tenant=tenant)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs.cert_file, certs.key_file)
        httpd = make_server("127.0.0.1", port, server.wsgi_app, threaded=True, ssl_context=ctx,
                            request_handler=_QuietHandler)
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                  name=f"graph-fake:{port}", daemon=True)
        thread.start()
        try:
            yield server
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
