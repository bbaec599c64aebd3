"""Real servers the tests start on 127.0.0.1 (no mocks): each ``start_*`` is a
context manager yielding an ``S3Server`` or a ``DavServer`` and stops the server
on exit."""

from __future__ import annotations

import socket
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class S3Server:
    """How to reach a running S3-compatible server."""

    name: str  # "moto" or "swift"
    endpoint_url: str  # e.g. http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """Environment for a cloudgw subprocess (boto3's standard chain)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self):  # -> botocore S3 client
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class DavServer:
    """How to reach a running WebDAV server (``tests/servers/apache.py``, ``wsgidav.py``).

    ``root`` is the directory on disk behind ``base_url`` (what the server holds);
    ``counts()`` is how many requests of each method it answered so far."""

    name: str  # "apache", "wsgidav" or "nextcloud"
    port: int
    path: str  # the URL path of the DAV tree, e.g. "/dav"
    root: Path
    user: str
    password: str
    counts: Callable[[], dict[str, int]]
    depth_infinity: bool = False  # PROPFIND Depth: infinity allowed

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def url(self, path: str = "") -> str:
        """The http URL of ``path`` (relative to the DAV tree), quoted."""
        return self.base_url + ("/" + urllib.parse.quote(path) if path else "")

    def remote_url(self, path: str = "") -> str:
        """The cloudgw remote URL of ``path``."""
        return f"webdav://127.0.0.1:{self.port}{self.path}" + ("/" + urllib.parse.quote(path) if path else "")

    def client(self) -> "httpx.Client":
        import httpx

        return httpx.Client(auth=(self.user, self.password), timeout=30)

    def write_netrc(self, path: Path) -> Path:
        """A netrc file (mode 0600) with this server's credentials."""
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(f"machine 127.0.0.1 login {self.user} password {self.password}\n")
        return path

    def mkcol(self, path: str) -> None:
        """Create the collection ``path`` and its parents (as another client would)."""
        with self.client() as c:
            parts = path.split("/")
            for i in range(1, len(parts) + 1):
                r = c.request("MKCOL", self.url("/".join(parts[:i])))
                assert r.status_code in (201, 405), (r.status_code, r.text)


def wait_for_port(port: int, alive: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port`` (``alive()`` False: it died)."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise RuntimeError(f"{what} exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s") from None
            time.sleep(0.05)
