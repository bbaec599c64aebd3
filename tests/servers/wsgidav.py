"""wsgidav (+ cheroot) on 127.0.0.1, in a subprocess: a second, independent WebDAV
server (Python, from PyPI), and with ``nextcloud=True`` the Nextcloud emulation of
``tests/servers/nextcloud_emulation.py`` (with chunked uploads at
``/remote.php/dav/uploads/<user>/``, kept in ``ROOT/../uploads``: ``NEXTCLOUD_UPLOADS``).

``start_wsgidav()`` runs ``python -m tests.servers.wsgidav ROOT PORT`` with the
password in a 0600 file, waits until it listens and yields a ``DavServer``.  The
tree is ``ROOT`` at URL path ``/dav``; basic auth (no digest) guards it;
``honor_mtime_header`` stores ``X-OC-Mtime`` of PUTs; PROPFIND Depth infinity is
allowed (wsgidav's default).  A counting middleware answers ``GET /_counts`` (outside
the DAV tree, no auth) with the number of requests per method so far.  The server
exits with its parent (it polls the parent pid), so a killed test run leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tests.servers import DavServer, free_port, wait_for_port

USER = "cloudgw"
NEXTCLOUD_UPLOADS = f"/remote.php/dav/uploads/{USER}"  # the emulation's uploads URL path
REPO = Path(__file__).resolve().parents[2]


def _counts(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_counts", timeout=10) as resp:
        return json.loads(resp.read())


@contextlib.contextmanager
def start_wsgidav(*, nextcloud: bool = False) -> Iterator[DavServer]:
    d = Path(tempfile.mkdtemp(prefix="cloudgw-wsgidav-"))
    proc: subprocess.Popen | None = None
    try:
        (d / "dav").mkdir()
        password = secrets.token_urlsafe(12)
        pw_file = d / "password"
        pw_file.touch(mode=0o600)
        pw_file.write_text(password)
        port = free_port()
        argv = [sys.executable, "-m", "tests.servers.wsgidav", str(d / "dav"), str(port), str(pw_file)]
        if nextcloud:
            argv.append("--nextcloud")
        with open(d / "server.log", "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                    start_new_session=True)
        try:
            wait_for_port(port, lambda: proc.poll() is None, "wsgidav")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {(d / 'server.log').read_text()[-2000:]}") from None
        yield DavServer("nextcloud" if nextcloud else "wsgidav", port, "/dav", d / "dav", USER, password,
                        lambda: _counts(port), depth_infinity=True)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def _counting(app: Callable) -> Callable:
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def wsgi(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/_counts":
            with lock:
                body = json.dumps(counts).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        with lock:
            counts[environ["REQUEST_METHOD"]] += 1
        return app(environ, start_response)

    return wsgi


def _exit_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str]) -> None:
    from cheroot import wsgi
    from wsgidav.fs_dav_provider import FilesystemProvider
    from wsgidav.wsgidav_app import WsgiDAVApp

    root, port, pw_file = argv[0], int(argv[1]), argv[2]
    nextcloud = "--nextcloud" in argv
    password = Path(pw_file).read_text()
    if nextcloud:
        from tests.servers.nextcloud_emulation import UPLOADS, NextcloudProvider, accept_mtime, chunked_uploads

        provider: Any = NextcloudProvider(root)
        uploads_root = Path(root).parent / "uploads"
        (uploads_root / USER).mkdir(parents=True, exist_ok=True)
        mapping = {"/dav": provider, UPLOADS.rstrip("/"): FilesystemProvider(str(uploads_root))}
    else:
        mapping = {"/dav": FilesystemProvider(root)}
    config = {
        "host": "127.0.0.1",
        "port": port,
        "provider_mapping": mapping,
        "simple_dc": {"user_mapping": {"*": {USER: {"password": password}}}},
        "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
        "honor_mtime_header": True,
        "dir_browser": {"enable": False},
        "property_manager": True,
        "lock_storage": True,
        "verbose": 1,
        "logging": {"enable": False},
    }
    app: Any = WsgiDAVApp(config)
    if nextcloud:
        app = chunked_uploads(accept_mtime(app), root, "/dav", str(uploads_root), USER, password)
    logging.getLogger("wsgidav").setLevel(logging.ERROR)
    _exit_with_parent()
    server = wsgi.Server(("127.0.0.1", port), _counting(app), numthreads=16)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.safe_start()


if __name__ == "__main__":
    main(sys.argv[1:])
