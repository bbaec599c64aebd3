"""HTTP for the Graph remotes: one ``httpx.AsyncClient``, the bearer token, the throttle
gate, retries and the one map from Graph's answers to cloudgw errors.

Throttling: a 429 or 503 with ``Retry-After`` pauses the *whole remote* until then
(``cloudgw.remotes.throttle``: every request waits at the gate, uploads and reads alike).  The request that was refused is retried by ``with_retries`` after at least
``Retry-After``.

Auth: ``Authorization: Bearer`` on Graph API requests only; the pre-authenticated URLs
(downloads, upload sessions) must not carry it (Graph: "including it may cause the
upload to fail").  A 401 drops the cached access token and the request is sent once more
with a fresh one.  Tokens never appear in logs or errors; nor do pre-authenticated URLs
(they are credentials too): messages name the operation and the remote path only.
"""

from __future__ import annotations

import errno
import logging
import ssl
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Collection, Mapping, TypeVar

import httpx

from cloudgw.errors import (CursorExpired, PreconditionFailed, RemoteError, RemoteExists, RemoteNotFound,
                            RemotePermissionDenied, TransientRemoteError)
from cloudgw.remotes.graph_auth import GraphAuth
from cloudgw.remotes.health import HealthBoard
from cloudgw.remotes.retry import with_retries
from cloudgw.remotes.throttle import ThrottleGate
from cloudgw.remotes.util import remote_error, retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")

for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def graph_error(resp: httpx.Response, what: str) -> RemoteError:
    """The cloudgw error for a Graph error answer to ``what``."""
    status = resp.status_code
    code = ""
    try:
        body = resp.json()
        code = str(body.get("error", {}).get("code", "")) if isinstance(body, dict) else ""
        detail = str(body.get("error", {}).get("message", "")).splitlines()[0] if code else ""
    except (ValueError, AttributeError, IndexError):
        detail = ""
    message = f"{what}: {status} {code or httpx.codes.get_reason_phrase(status)}" + (f" ({detail})" if detail else "")
    if status == 404:
        return RemoteNotFound(message)
    if status == 412:
        return PreconditionFailed(message)
    if status == 409:
        return RemoteExists(message)
    if status == 410:
        return CursorExpired(message)
    if status in (401, 403):
        return RemotePermissionDenied(message)
    if status == 507 or code in ("quotaLimitReached", "insufficientStorage"):
        return remote_error(RemoteError, errno.ENOSPC, message + " (the drive is full)")
    if status == 413:
        return remote_error(RemoteError, errno.EFBIG, message)
    if status >= 500 or status in (408, 423, 429):
        return TransientRemoteError(message, retry_after_seconds(resp.headers.get("retry-after")))
    return RemoteError(message)


class GraphHttp:
    """Requests to one Graph endpoint for one signed-in account."""

    def __init__(self, graph_url: str, auth: GraphAuth, *, ca_file: Path | None, retry_deadline: float,
                 health: HealthBoard | None = None, name: str = "", connect_timeout: float = 10.0,
                 read_timeout: float = 60.0, max_connections: int = 16) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.auth = auth
        self.retry_deadline = retry_deadline
        self.health, self.name = health, name
        self.throttle = ThrottleGate(name, health, retry_deadline)
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self.client = httpx.AsyncClient(
            verify=verify, timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False, headers={"Accept-Encoding": "identity"})

    def url(self, api_path: str) -> str:
        return api_path if api_path.startswith("https://") or api_path.startswith("http://") else self.graph_url + api_path

    async def gate(self) -> None:
        await self.throttle.wait()

    # -- requests -----------------------------------------------------------------------

    async def once(self, what: str, method: str, url: str, *, ok: Collection[int] = (200, 201, 202, 204),
                   headers: Mapping[str, str] | None = None, json: Any = None, content: Any = None,
                   auth: bool = True) -> httpx.Response:
        """One attempt (after the gate); a status outside ``ok`` raises the mapped error."""
        resp = await self._send(what, method, url, headers=headers, json=json, content=content, auth=auth)
        if resp.status_code not in ok:
            raise graph_error(resp, what)
        return resp

    async def _send(self, what: str, method: str, url: str, *, headers: Mapping[str, str] | None, json: Any,
                    content: Any, auth: bool) -> httpx.Response:
        refused: str | None = None
        for attempt in (1, 2):
            await self.gate()
            sent = dict(headers or {})
            token = ""
            if auth:  # after a 401: a new token, not msal's cached one (the server may have revoked it early)
                token = await self.auth.token(refresh_if=refused)
                sent["Authorization"] = f"Bearer {token}"
            try:
                resp = await self.client.request(method, self.url(url), headers=sent, json=json, content=content)
            except httpx.HTTPError as exc:
                kind = "cannot connect" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
                raise TransientRemoteError(f"{what}: {kind}") from exc
            if resp.status_code in (429, 503):
                self.throttle.pause(retry_after_seconds(resp.headers.get("retry-after")), str(resp.status_code))
            else:
                self.throttle.answered()
            if resp.status_code == 401 and auth and attempt == 1:
                refused = token  # expired or revoked early: one more try with a fresh one
                continue
            return resp
        return resp

    async def call(self, what: str, method: str, url: str, *, ok: Collection[int] = (200, 201, 202, 204),
                   headers: Mapping[str, str] | None = None, json: Any = None, content: Any = None,
                   auth: bool = True) -> httpx.Response:
        """``once``, retried (the body must be repeatable: bytes, JSON or None)."""
        return await self.retried(what, lambda: self.once(what, method, url, ok=ok, headers=headers, json=json,
                                                          content=content, auth=auth))

    async def get_json(self, what: str, url: str, *, headers: Mapping[str, str] | None = None) -> dict:
        return (await self.call(what, "GET", url, headers=headers, ok=(200,))).json()

    async def retried(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(fn, what=what, deadline=self.retry_deadline)

    async def pages(self, what: str, url: str) -> AsyncIterator[dict]:
        """The pages of a collection, following ``@odata.nextLink`` (absolute URLs)."""
        next_url: str | None = url
        while next_url is not None:
            page = await self.get_json(what, next_url)
            yield page
            next_url = page.get("@odata.nextLink")

    @asynccontextmanager
    async def stream(self, what: str, url: str, headers: Mapping[str, str], *,
                     auth: bool = False) -> AsyncIterator[httpx.Response]:
        """One GET attempt (after the gate) with the body still to read; any status."""
        await self.gate()
        sent = dict(headers)
        if auth:
            sent["Authorization"] = f"Bearer {await self.auth.token()}"
        try:
            async with self.client.stream("GET", self.url(url), headers=sent) as resp:
                if resp.status_code in (429, 503):
                    self.throttle.pause(retry_after_seconds(resp.headers.get("retry-after")), str(resp.status_code))
                yield resp
        except httpx.HTTPError as exc:
            raise TransientRemoteError(f"{what}: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self.client.aclose()
