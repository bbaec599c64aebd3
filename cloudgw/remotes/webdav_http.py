"""HTTP for the WebDAV remote: one ``httpx.AsyncClient`` (connection reuse, timeouts),
retries through ``with_retries``, and the one map from HTTP answers to cloudgw errors.

``httpx`` runs under trio through anyio.  Every request is sent by ``DavHttp.call``
(or ``stream`` for GET bodies): a connection error, a timeout, 5xx, 429 or 423
(Locked: another client's lock, usually brief) is a ``TransientRemoteError``
(``Retry-After`` honoured) and retried until ``retry_deadline``; other statuses map
to the errors of ``cloudgw.errors`` (``status_error``).  Credentials live in the
client's auth object only: never in a URL, a log line or an error message.
"""

from __future__ import annotations

import netrc
import os
import errno
import logging
import ssl
import urllib.parse
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Collection, Mapping, TypeVar

import httpx

from cloudgw.errors import (PreconditionFailed, UserError, RemoteError, RemoteNotFound, RemotePermissionDenied,
                            RemoteUnsupported, TransientRemoteError)
from cloudgw.remotes.registry import check_secret_file
from cloudgw.remotes.retry import with_retries
from cloudgw.remotes.util import remote_error, retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")

# httpx logs every request at INFO; the daemon's log is for cloudgw's own lines.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def status_error(status: int, what: str, headers: Mapping[str, str] | None = None) -> RemoteError:
    """The cloudgw error for an HTTP answer ``status`` to ``what``."""
    reason = httpx.codes.get_reason_phrase(status) or "error"
    message = f"{what}: {status} {reason}"
    if status == 404:
        return RemoteNotFound(message)
    if status == 412:
        return PreconditionFailed(message)
    if status in (401, 403):
        return RemotePermissionDenied(message)
    if status == 507:
        return remote_error(RemoteError, errno.ENOSPC, message + " (the server's storage is full)")
    if status == 413:
        return remote_error(RemoteError, errno.EFBIG, message)
    if status == 501:
        return RemoteUnsupported(message)
    if status >= 500 or status in (408, 423, 429):
        return TransientRemoteError(message, retry_after_seconds((headers or {}).get("retry-after")))
    return RemoteError(message)


def transport_error(exc: httpx.HTTPError, what: str) -> TransientRemoteError:
    kind = "cannot connect" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
    return TransientRemoteError(f"{what}: {kind}: {exc}")


class DavHttp:
    """One WebDAV server: the client, URLs below ``root`` and retried calls."""

    def __init__(self, base: str, root: str, *, auth: tuple[str, str] | None, ca_file: Path | None,
                 retry_deadline: float, connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 max_connections: int = 16) -> None:
        self.base = base.rstrip("/")  # scheme://host[:port]
        self.root = "/" + root.strip("/") if root.strip("/") else ""  # URL path of the remote's root, unquoted
        self.retry_deadline = retry_deadline
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self.client = httpx.AsyncClient(
            auth=httpx.BasicAuth(*auth) if auth else None,
            verify=verify,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            headers={"Accept-Encoding": "identity"},
        )

    def path_of(self, path: str, *, collection: bool = False) -> str:
        """The URL path (quoted) of contract path ``path``."""
        full = self.root + ("/" + path if path else "")
        quoted = urllib.parse.quote(full.encode("utf-8", "surrogateescape"), safe="/") or "/"
        return quoted + "/" if collection and not quoted.endswith("/") else quoted

    def url(self, path: str, *, collection: bool = False) -> str:
        return self.base + self.path_of(path, collection=collection)

    def display(self, path: str) -> str:
        """For messages: the URL without quoting (no credentials are ever in it)."""
        return f"{self.base}{self.root}/{path}" if path else f"{self.base}{self.root}/"

    def if_header(self, conditions: Collection[tuple[str, str]]) -> dict[str, str]:
        """An ``If`` header of tagged lists: (path, rev) each must hold.  Tags are
        absolute paths: wsgidav ignores tags that are full URLs."""
        if not conditions:
            return {}
        return {"If": " ".join(f'<{self.path_of(p)}> (["{rev}"])' for p, rev in conditions)}

    # -- requests ---------------------------------------------------------------

    async def once(self, what: str, method: str, url: str, *, ok: Collection[int] = (200, 201, 204, 207),
                   headers: Mapping[str, str] | None = None, content: Any = None) -> httpx.Response:
        """One attempt; a status outside ``ok`` raises the mapped error."""
        try:
            resp = await self.client.request(method, url, headers=headers, content=content)
        except httpx.HTTPError as exc:
            raise transport_error(exc, what) from exc
        if resp.status_code not in ok:
            raise status_error(resp.status_code, what, resp.headers)
        return resp

    async def call(self, what: str, method: str, url: str, *, ok: Collection[int] = (200, 201, 204, 207),
                   headers: Mapping[str, str] | None = None, content: Any = None) -> httpx.Response:
        """``once``, retried (``content`` must be bytes or None: a body that can be sent again)."""
        return await self.retried(what, lambda: self.once(what, method, url, ok=ok, headers=headers, content=content))

    async def retried(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(fn, what=what, deadline=self.retry_deadline)

    @asynccontextmanager
    async def stream(self, what: str, url: str, headers: Mapping[str, str]) -> AsyncIterator[httpx.Response]:
        """One GET attempt with the body still to read (any status: the caller decides)."""
        try:
            async with self.client.stream("GET", url, headers=headers) as resp:
                yield resp
        except httpx.HTTPError as exc:
            raise transport_error(exc, what) from exc

    async def aclose(self) -> None:
        await self.client.aclose()


def netrc_credentials(host: str, user: str | None) -> tuple[str, str] | None:
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not path.exists():
        return None
    check_secret_file(path, "netrc")
    try:
        found = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        raise UserError(f"netrc {path}: cannot parse it ({getattr(exc, 'msg', exc)})") from None
    if not found or (user is not None and found[0] != user):
        return None
    return found[0], found[2] or ""
