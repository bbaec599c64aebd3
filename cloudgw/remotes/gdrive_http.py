"""Requests to Google Drive for the Drive remotes: the API client, the media transfers, the
pause for the whole remote and the one map from Drive's errors to cloudgw errors.

Metadata calls (files.list/get/create/update/delete, changes, drives) go through
google-api-python-client built from its bundled static discovery document (no discovery
request at start-up).  The client is not thread-safe (its ``httplib2.Http`` is not), so
each worker thread has its own ``Http``; requests are built from one shared service
object (building is pure) and executed with the thread's ``Http``.  Calls run in worker
threads under the remote's limiter.  The bearer token comes from ``DriveAuth`` (in the
trio thread); a 401 drops it and the call is sent once more with a fresh one.

Media (``alt=media`` ranged reads, ``exportLinks`` downloads, resumable upload sessions)
go through one ``httpx.AsyncClient``: streamed, never whole files in memory.  Upload
session URIs carry no token and are never logged (they are credentials too).

Quotas: a 429, or a 403 with reason ``userRateLimitExceeded``/``rateLimitExceeded``,
pauses every request of the remote (``ThrottleGate``) for ``Retry-After`` or, without
one, an exponential backoff (1, 2, 4 ... 64 s, reset by a normal answer), as Google asks.
The daily upload cap (750 GB) answers an *upload* with 403 ``userRateLimitExceeded`` and
the message "User rate limit exceeded." (no reason of its own: rclone tells it apart the
same way): uploads alone pause for ``quota_pause`` seconds, shown as "upload quota
exceeded until ..." on the health board; the upload fails with ``RemoteUnavailable`` and
the file stays dirty (nothing dropped), reads go on.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, TypeVar

import httpx
import trio

from cloudgw.errors import (CursorExpired, RemoteError, RemoteNotFound, RemotePermissionDenied, RemoteUnavailable,
                            TransientRemoteError)
from cloudgw.remotes.gdrive_auth import DriveAuth
from cloudgw.remotes.health import HealthBoard
from cloudgw.remotes.retry import with_retries
from cloudgw.remotes.throttle import ThrottleGate
from cloudgw.remotes.util import remote_error, retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")
UPLOAD_QUOTA = "upload quota exceeded"  # the health board's state for the daily upload cap
RATE_REASONS = ("userRateLimitExceeded", "rateLimitExceeded")
UPLOAD_CAP_MESSAGE = "user rate limit exceeded."  # lower case; the daily cap's exact message
MAX_BACKOFF = 64.0

for _name in ("googleapiclient.discovery_cache", "googleapiclient.discovery", "httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# googleapiclient warns of every throttling answer itself ("Encountered 403 Forbidden with reason
# userRateLimitExceeded"), also with num_retries=0; the gate says it once a minute instead
logging.getLogger("googleapiclient.http").setLevel(logging.ERROR)


class DriveFailure(Exception):
    """An error answer, before it is mapped (status, Google's reason, message, Retry-After)."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None, location: str = "") -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.message, self.retry_after = status, reason, message, retry_after
        self.location = location  # the parameter Google names as the culprit (``pageToken``)


def failure_of(status: int, body: bytes | str, retry_after: str | None) -> DriveFailure:
    """Google's JSON error format (``{"error": {"code", "message", "errors": [{"reason"}]}}``)."""
    reason = message = location = ""
    try:
        error = json.loads(body or b"{}").get("error", {})
        if isinstance(error, dict):
            message = str(error.get("message", ""))
            first = (error.get("errors") or [{}])[0]
            reason = str(first.get("reason", "")) if isinstance(first, dict) else ""
            location = str(first.get("location", "")) if isinstance(first, dict) else ""
        else:  # the token endpoint's {"error": "invalid_grant"}
            reason = str(error)
    except (ValueError, AttributeError, TypeError):
        pass
    return DriveFailure(status, reason, message.splitlines()[0][:200] if message else "",
                        retry_after_seconds(retry_after), location)


def drive_error(failure: DriveFailure, what: str) -> RemoteError:
    """The cloudgw error for a Drive error answer to ``what``."""
    status, reason = failure.status, failure.reason
    message = f"{what}: {status} {reason or 'error'}" + (f" ({failure.message})" if failure.message else "")
    if status == 404:
        return RemoteNotFound(message)
    if status == 400 and failure.location == "pageToken":  # a changes token Drive no longer takes
        return CursorExpired(message)
    if reason == "storageQuotaExceeded":
        return remote_error(RemoteError, errno.ENOSPC, message + " (the drive is full)")
    if status == 429 or reason in RATE_REASONS or status >= 500 or status == 408:
        return TransientRemoteError(message, failure.retry_after)
    if status in (401, 403):
        return RemotePermissionDenied(message)
    return RemoteError(message)


class DriveHttp:
    """Requests to one Drive API endpoint for one account (see the module docstring)."""

    def __init__(self, api_url: str, auth: DriveAuth, *, retry_deadline: float, health: HealthBoard | None = None,
                 name: str = "", quota_pause: float = 3600.0, max_threads: int = 8,
                 read_timeout: float = 60.0) -> None:
        if not api_url.endswith("/"):
            api_url += "/"
        if not api_url.endswith("drive/v3/"):
            raise RemoteError(f"api_url {api_url!r}: expected the Drive v3 endpoint (…/drive/v3/)")
        self.api_url = api_url
        self.upload_url = api_url.removesuffix("drive/v3/") + "upload/drive/v3/files"
        self.auth = auth
        self.retry_deadline = retry_deadline
        self.health, self.name = health, name
        self.throttle = ThrottleGate(name, health, retry_deadline)
        self.quota_pause = quota_pause
        self.uploads_paused_until = 0.0  # wall clock
        self._streak = 0  # throttling answers in a row (the backoff without Retry-After)
        self._limiter = trio.CapacityLimiter(max_threads)
        self._local = threading.local()
        self._service: Any = None
        self._service_lock = threading.Lock()
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(read_timeout, connect=10.0), follow_redirects=True,
                                        headers={"Accept-Encoding": "identity"})

    # -- the API client (worker threads) ---------------------------------------------------

    def service(self) -> Any:
        with self._service_lock:
            if self._service is None:
                import httplib2
                from googleapiclient.discovery import build

                self._service = build("drive", "v3", static_discovery=True, http=httplib2.Http(),
                                      client_options={"api_endpoint": self.api_url}, cache_discovery=False)
            return self._service

    def _http(self) -> Any:
        http = getattr(self._local, "http", None)
        if http is None:
            import httplib2

            http = self._local.http = httplib2.Http(timeout=60)
        return http

    def _execute(self, build_request: Callable[[Any], Any], token: str) -> Any:
        """Build and send one request in this worker thread; ``DriveFailure`` on an error answer."""
        import httplib2
        from googleapiclient.errors import HttpError

        request = build_request(self.service())
        request.headers["authorization"] = f"Bearer {token}"
        try:
            return request.execute(http=self._http(), num_retries=0)
        except HttpError as exc:
            raise failure_of(exc.resp.status, exc.content, exc.resp.get("retry-after")) from None
        except (httplib2.HttpLib2Error, OSError) as exc:
            self._local.http = None  # a broken connection: the next call opens a new one
            raise TransientRemoteError(f"cannot reach Google Drive ({type(exc).__name__})") from None

    async def api(self, what: str, build_request: Callable[[Any], Any]) -> Any:
        """One API call (``build_request(service)`` -> an ``HttpRequest``), retried; the
        answer's JSON."""
        async def attempt() -> Any:
            refused = False
            while True:
                await self.throttle.wait()
                token = await self.auth.token(refresh=refused)
                try:
                    result = await trio.to_thread.run_sync(self._execute, build_request, token,
                                                           limiter=self._limiter)
                except DriveFailure as failure:
                    if failure.status == 401 and not refused:
                        refused = True  # expired or revoked early: once more with a fresh token
                        continue
                    raise self.failed(failure, what) from None
                self.answered()
                return result

        return await self.retried(what, attempt)

    async def retried(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(fn, what=what, deadline=self.retry_deadline)

    # -- quotas ----------------------------------------------------------------------------

    def failed(self, failure: DriveFailure, what: str, *, upload: bool = False) -> RemoteError:
        """Map ``failure``, pausing the remote (or its uploads) where Drive asks for it."""
        if upload and failure.status == 403 and failure.message.strip().lower() == UPLOAD_CAP_MESSAGE:
            self.pause_uploads()
            return RemoteUnavailable(f"{what}: {self._quota_text()}")
        if failure.status == 429 or (failure.status == 403 and failure.reason in RATE_REASONS):
            self._streak += 1
            pause = failure.retry_after
            if pause is None:
                pause = min(float(2 ** (self._streak - 1)), MAX_BACKOFF)
            self.throttle.pause(pause, f"{failure.status} {failure.reason or 'too many requests'}")
            return TransientRemoteError(f"{what}: throttled ({failure.status} {failure.reason})", pause)
        return drive_error(failure, what)

    def answered(self) -> None:
        self._streak = 0
        self.throttle.answered()

    def pause_uploads(self) -> None:
        self.uploads_paused_until = time.time() + self.quota_pause
        log.warning("remote %s: Google Drive's daily upload limit is reached: uploads pause until %s (files stay "
                    "in the cache, nothing is lost)", self.name or "(root)", self._until())
        if self.health is not None:
            self.health.report(self.name, UPLOAD_QUOTA, "Drive's daily upload limit (750 GB)",
                               until=self.uploads_paused_until)

    def upload_gate(self, what: str) -> None:
        """Raise ``RemoteUnavailable`` while uploads are paused by the daily cap."""
        if self.uploads_paused_until > time.time():
            raise RemoteUnavailable(f"{what}: {self._quota_text()}")
        if self.uploads_paused_until and self.health is not None:
            self.uploads_paused_until = 0.0
            self.health.clear(self.name, UPLOAD_QUOTA)

    def _until(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self.uploads_paused_until))

    def _quota_text(self) -> str:
        return f"{UPLOAD_QUOTA} until {self._until()} (uploads wait)"

    # -- media (trio) ------------------------------------------------------------------------

    async def send(self, what: str, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                   content: Any = None, json_body: Any = None, auth: bool = True, upload: bool = False
                   ) -> httpx.Response:
        """One attempt (after the gate) of a media or upload request; an error answer other
        than 308 raises the mapped error."""
        refused = False
        while True:
            await self.throttle.wait()
            sent = dict(headers or {})
            if auth:
                sent["Authorization"] = f"Bearer {await self.auth.token(refresh=refused)}"
            try:
                resp = await self.client.request(method, url, headers=sent, content=content, json=json_body)
            except httpx.HTTPError as exc:
                raise TransientRemoteError(f"{what}: {type(exc).__name__}") from exc
            if resp.status_code == 401 and auth and not refused:
                refused = True
                continue
            if resp.status_code < 400:
                self.answered()
                return resp
            raise self.failed(failure_of(resp.status_code, resp.content, resp.headers.get("retry-after")), what,
                              upload=upload)

    @asynccontextmanager
    async def stream(self, what: str, url: str, headers: Mapping[str, str]) -> AsyncIterator[httpx.Response]:
        """One authorized GET (after the gate) with the body still to read; an error answer
        (other than 416) raises the mapped error."""
        await self.throttle.wait()
        sent = {**headers, "Authorization": f"Bearer {await self.auth.token()}"}
        try:
            async with self.client.stream("GET", url, headers=sent) as resp:
                if resp.status_code >= 400 and resp.status_code != 416:
                    body = await resp.aread()
                    raise self.failed(failure_of(resp.status_code, body, resp.headers.get("retry-after")), what)
                self.answered()
                yield resp
        except httpx.HTTPError as exc:
            raise TransientRemoteError(f"{what}: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self.client.aclose()

