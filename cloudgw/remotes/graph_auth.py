"""Signing in to the Microsoft identity platform for the Graph remotes, with msal.

``cloudgw login`` runs msal's device-code flow (a headless NAS has no browser: the
administrator opens the printed URL on any device and types the code) and writes
msal's ``SerializableTokenCache`` to ``token_file`` (mode 0600, replaced atomically).
The daemon then gets access tokens with ``acquire_token_silent``: from the cache while
one is valid, else by redeeming the refresh token.  The identity platform rotates
refresh tokens, so every change of the cache is written back before the new access
token is used -- a crash can lose an access token, never the only valid refresh token.

A refresh token that no longer works (revoked, expired by inactivity, password reset)
makes every call raise ``LoginRequired`` at once (no retries: only a person can fix
it) and puts "login required" on the health board.  The daemon watches ``token_file``:
when ``cloudgw login`` rewrote it, the next call reloads it and the remote works again
without a remount (uploads that waited are retried: ``HealthBoard.on_recovered``).

Concurrency: msal is blocking; its calls run in a worker thread, one at a time (a
``trio.Lock``), so concurrent requests needing a refresh cause one refresh; requests
refused with 401 at once cause one refresh too (``refresh_if``).  The daemon's
read-refresh-write and ``cloudgw login``'s write take an ``flock`` on ``token_file.lock``,
and the daemon never writes over a file that changed since it read it: a new sign-in
always wins over a refresh of the old one.  The
access token is also kept in memory until 5 minutes before it expires, so the hot
path takes no thread hop.  Secrets never reach a log line or an error message.

TLS: msal uses ``requests``, which lets ``REQUESTS_CA_BUNDLE`` override ``verify``; with
``ca_file`` (a private CA: tests, a proxy) msal gets a session that ignores the
environment (``trust_env=False``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import trio

from cloudgw.errors import LoginRequired, RemoteError, TransientRemoteError, UserError
from cloudgw.remotes.health import LOGIN_REQUIRED, HealthBoard
from cloudgw.remotes.util import write_private_file

log = logging.getLogger(__name__)

# Delegated permissions the app registration must grant (README); msal adds offline_access,
# openid and profile itself and refuses them here.
SCOPES = ["Files.ReadWrite.All", "Sites.ReadWrite.All"]
EARLY_REFRESH = 300.0  # seconds before expiry an access token is no longer used (msal's own margin)

# Errors of a token request that mean the sign-in itself is gone (RFC 6749 5.2 and the
# identity platform's own): only a new login helps.
_SIGN_IN_GONE = {"invalid_grant", "interaction_required", "invalid_client", "unauthorized_client"}


class GraphAuth:
    """Access tokens for one remote's signed-in account."""

    def __init__(self, client_id: str, authority: str, token_file: Path, *, ca_file: Path | None = None,
                 health: HealthBoard | None = None, name: str = "", login_hint: str = "cloudgw login") -> None:
        self.client_id = client_id
        self.authority = authority.rstrip("/")  # https://login.microsoftonline.com/TENANT
        self.token_file = token_file
        self.ca_file = ca_file
        self.health, self.name, self.login_hint = health, name, login_hint
        self._app: Any = None
        self._cache: Any = None
        self._file_id: tuple[int, int, int] | None = None  # (ino, size, mtime_ns) of the token file we last read/wrote
        self._lock = trio.Lock()
        self._token: str | None = None
        self._token_expires = 0.0  # trio clock
        self._signed_in = False  # the last acquisition worked

    # -- msal ---------------------------------------------------------------------------

    def _http_client(self) -> Any:
        if self.ca_file is None:
            return None
        import requests

        session = requests.Session()
        session.verify = str(self.ca_file)
        session.trust_env = False  # else REQUESTS_CA_BUNDLE wins over verify
        return session

    def _application(self, cache: Any) -> Any:
        import msal

        try:
            return msal.PublicClientApplication(
                self.client_id, authority=self.authority, token_cache=cache, http_client=self._http_client(),
                instance_discovery=False)  # never ask login.microsoftonline.com about another host
        except ValueError as exc:  # the authority's OpenID configuration is unusable (unknown tenant, bad URL)
            raise UserError(f"sign-in authority {self.authority}: {exc}") from None

    def _load(self) -> None:
        """(Re)load the token cache from ``token_file`` (worker thread)."""
        import msal

        cache = msal.SerializableTokenCache()
        try:
            st = os.stat(self.token_file)
            if st.st_mode & 0o077:
                raise UserError(f"token_file {self.token_file} is readable by others (mode {st.st_mode & 0o777:04o}):"
                                f" chmod 600 {self.token_file}")
            cache.deserialize(self.token_file.read_text())
        except FileNotFoundError:
            st = None
        except (OSError, ValueError) as exc:
            raise RemoteError(f"token file {self.token_file}: cannot read it ({exc})") from None
        self._file_id = (st.st_ino, st.st_size, st.st_mtime_ns) if st is not None else None
        self._cache = cache
        if self._app is None:
            self._app = self._application(cache)
        else:
            self._app.token_cache = cache

    def _file_changed(self) -> bool:
        try:
            st = os.stat(self.token_file)
        except FileNotFoundError:
            return self._file_id is not None
        return (st.st_ino, st.st_size, st.st_mtime_ns) != self._file_id

    def _save(self) -> None:
        """Write msal's changes (a rotated refresh token) back -- unless ``cloudgw login``
        replaced the file meanwhile: its newer sign-in wins and is loaded next time."""
        if self._cache is not None and self._cache.has_state_changed and not self._file_changed():
            write_private_file(self.token_file, self._cache.serialize())
            st = os.stat(self.token_file)
            self._file_id = (st.st_ino, st.st_size, st.st_mtime_ns)
            self._cache.has_state_changed = False

    def _acquire(self, force_refresh: bool) -> dict[str, Any]:
        """One silent acquisition (worker thread), under the token file's lock; the result
        or an error dict."""
        with token_file_lock(self.token_file):
            return self._acquire_locked(force_refresh)

    def _acquire_locked(self, force_refresh: bool) -> dict[str, Any]:
        import msal
        import requests

        if self._app is None or self._file_changed():
            self._load()
        accounts = self._app.get_accounts()
        if not accounts:
            return {"error": "no_account", "error_description": f"not signed in (no account in {self.token_file})"}
        try:
            result = self._app.acquire_token_silent_with_error(SCOPES, account=accounts[0],
                                                               force_refresh=force_refresh)
        except (msal.exceptions.MsalServiceError, requests.RequestException) as exc:
            return {"error": "transient", "error_description": f"{type(exc).__name__}: {exc}"}
        finally:
            self._save()
        return result or {"error": "no_token", "error_description": "no token in the cache for these permissions"}

    async def token(self, *, refresh_if: str | None = None) -> str:
        """A valid access token; ``LoginRequired`` when only a new login can give one.
        ``refresh_if``: a token the server refused (401): if it is still the current one,
        msal is made to refresh (its cache would hand out the same token); if another
        request already got a new one meanwhile, that one is used (one refresh, not N)."""
        def cached() -> bool:
            return (self._token is not None and trio.current_time() < self._token_expires
                    and (refresh_if is None or self._token != refresh_if))

        if cached():
            assert self._token is not None
            return self._token
        async with self._lock:
            if cached():
                assert self._token is not None
                return self._token
            force_refresh = refresh_if is not None and self._token in (None, refresh_if)
            result = await trio.to_thread.run_sync(self._acquire, force_refresh)
            if "access_token" in result:
                self._token = result["access_token"]
                if not self._signed_in:
                    log.info("remote %s: signed in", self.name or "(root)")
                self._signed_in = True
                self._token_expires = trio.current_time() + max(0.0, float(result.get("expires_in", 0)) - EARLY_REFRESH)
                if self.health is not None:
                    self.health.clear(self.name, LOGIN_REQUIRED)
                return self._token
            self._token = None
            error = str(result.get("error"))
            why = str(result.get("error_description") or error).splitlines()[0]
            if error not in (*_SIGN_IN_GONE, "no_account", "no_token"):  # network, 5xx, 429: retried
                raise TransientRemoteError(f"sign-in {self.authority}: {why}")
            detail = f"{why}; run '{self.login_hint}'"
            message = f"{LOGIN_REQUIRED}: {detail}"
            if self.health is not None:
                self.health.report(self.name, LOGIN_REQUIRED, detail)
            if self._signed_in:  # said once, when a working sign-in stops working
                log.warning("remote %s: %s", self.name or "(root)", message)
            self._signed_in = False
            raise LoginRequired(message)

    # -- cloudgw login ------------------------------------------------------------------

    def device_login(self, out: TextIO, *, exit_condition: Callable[[dict], bool] | None = None) -> str:
        """The device-code flow (blocking): prints the URL and code to ``out``, waits for the
        person to sign in, writes a fresh token cache.  Returns the signed-in user's name."""
        import msal

        cache = msal.SerializableTokenCache()  # a new login replaces whatever was signed in before
        app = self._application(cache)
        flow = app.initiate_device_flow(scopes=SCOPES)
        if "user_code" not in flow:
            raise UserError(f"sign-in could not start: {_why(flow)}")
        print(flow["message"], file=out, flush=True)
        kwargs = {"exit_condition": exit_condition} if exit_condition is not None else {}
        result = app.acquire_token_by_device_flow(flow, **kwargs)
        if "access_token" not in result:
            raise UserError(f"sign-in failed: {_why(result)}")
        with token_file_lock(self.token_file):
            write_private_file(self.token_file, cache.serialize())
        claims = result.get("id_token_claims") or {}
        return str(claims.get("preferred_username") or claims.get("name") or "the account")


def _why(result: dict) -> str:
    text = str(result.get("error_description") or result.get("error") or "no answer").splitlines()[0]
    return f"{result.get('error', 'error')}: {text}" if result.get("error") and result.get("error") not in text else text


@contextlib.contextmanager
def token_file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``PATH.lock``: the daemon's refresh (read, refresh, write
    back) and ``cloudgw login``'s write never interleave, so a new sign-in is never
    overwritten by a refresh of the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def signed_in(token_file: Path) -> bool:
    """Whether ``token_file`` holds an account (for messages; no network)."""
    try:
        return bool(json.loads(token_file.read_text()).get("Account"))
    except (OSError, ValueError):
        return False
