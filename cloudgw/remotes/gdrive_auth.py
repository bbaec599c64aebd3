"""Signing in to Google for the Drive remotes (google-auth, google-auth-oauthlib).

Two kinds of credentials:

- **A user's sign-in** (``client_secret_file`` + ``token_file``): ``login`` runs the OAuth
  flow for installed apps with PKCE and a loopback redirect.  On a machine with a browser
  the flow's own local server catches the redirect.  With ``no_browser`` (a headless NAS)
  it prints the sign-in URL; the person opens it on any device, signs in, and pastes back
  the address the browser was sent to (``http://localhost:PORT/?code=...``, a page that
  does not load there) -- Google retired the copy-the-code flow in 2022.  The token file
  holds google-auth's authorized-user JSON (refresh token, client id and secret), mode
  0600, replaced atomically under the same ``flock`` as the Graph token cache.
- **A service account** (``service_account_file``, optionally ``impersonate`` a Workspace
  user through domain-wide delegation): no login; google-auth signs a JWT for each token.

``token()`` hands out an access token, refreshing it (in a worker thread, one refresh at
a time) when it is about to expire, and re-reading ``token_file`` when ``cloudgw login``
replaced it.  A refresh refused with ``invalid_grant`` (revoked, expired, password
changed) raises ``LoginRequired`` at once and puts "login required" on the health board;
the next login clears it without a remount.  Tokens never appear in logs or errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any, Callable, TextIO

import trio

from cloudgw.errors import LoginRequired, RemoteError, TransientRemoteError, UserError
from cloudgw.remotes.graph_auth import token_file_lock
from cloudgw.remotes.health import LOGIN_REQUIRED, HealthBoard
from cloudgw.remotes.util import write_private_file

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/drive"]
EARLY_REFRESH = 300.0  # seconds before expiry a token is refreshed


class DriveAuth:
    """Access tokens for one Drive remote (a user's sign-in or a service account)."""

    def __init__(self, *, token_file: Path | None = None, client_secret_file: Path | None = None,
                 service_account_file: Path | None = None, impersonate: str | None = None,
                 token_url: str | None = None, health: HealthBoard | None = None, name: str = "",
                 login_hint: str = "cloudgw login") -> None:
        if service_account_file is None and token_file is None:
            raise UserError("set token_file (a user's sign-in, made by 'cloudgw login') or service_account_file")
        self.token_file, self.client_secret_file = token_file, client_secret_file
        self.service_account_file, self.impersonate = service_account_file, impersonate
        self.token_url = token_url
        self.health, self.name, self.login_hint = health, name, login_hint
        self._credentials: Any = None
        self._file_id: tuple[int, int, int] | None = None
        self._lock = trio.Lock()
        self._signed_in = False

    # -- credentials ----------------------------------------------------------------------

    def _load(self) -> Any:
        """The credentials from their file (worker thread)."""
        if self.service_account_file is not None:
            from google.oauth2 import service_account

            try:
                creds = service_account.Credentials.from_service_account_file(
                    str(self.service_account_file), scopes=SCOPES, subject=self.impersonate)
            except (OSError, ValueError, KeyError) as exc:
                raise UserError(f"service_account_file {self.service_account_file}: not a service account key "
                                f"({type(exc).__name__})") from None
            return creds.with_token_uri(self.token_url) if self.token_url else creds
        from google.oauth2.credentials import Credentials

        assert self.token_file is not None
        try:
            st = os.stat(self.token_file)
        except FileNotFoundError:
            self._file_id = None
            return None
        if st.st_mode & 0o077:
            raise UserError(f"token_file {self.token_file} is readable by others (mode {st.st_mode & 0o777:04o}):"
                            f" chmod 600 {self.token_file}")
        try:
            creds = Credentials.from_authorized_user_file(str(self.token_file), SCOPES)
        except (OSError, ValueError, KeyError) as exc:
            raise RemoteError(f"token file {self.token_file}: cannot read it ({type(exc).__name__})") from None
        if self.token_url:  # google-auth takes Google's token endpoint, whatever the file says
            creds = creds.with_token_uri(self.token_url)
        self._file_id = (st.st_ino, st.st_size, st.st_mtime_ns)
        return creds

    def _file_changed(self) -> bool:
        if self.token_file is None or self.service_account_file is not None:
            return False
        try:
            st = os.stat(self.token_file)
        except FileNotFoundError:
            return self._file_id is not None
        return (st.st_ino, st.st_size, st.st_mtime_ns) != self._file_id

    def _refresh(self) -> dict[str, str]:
        """Load or refresh the credentials (worker thread, under the token file's lock);
        ``{"token": ...}`` or ``{"error": ..., "why": ...}``."""
        import google.auth.exceptions
        import google.auth.transport.requests

        lock = token_file_lock(self.token_file) if self.token_file is not None else contextlib.nullcontext()
        with lock:
            if self._credentials is None or self._file_changed():
                self._credentials = self._load()
            creds = self._credentials
            if creds is None:
                return {"error": "no_account", "why": f"not signed in (no {self.token_file})"}
            if creds.valid and not _expiring(creds):
                return {"token": creds.token}
            try:
                creds.refresh(google.auth.transport.requests.Request())
            except google.auth.exceptions.RefreshError as exc:
                text = str(exc.args[0] if exc.args else exc)
                gone = "invalid_grant" in text or "unauthorized_client" in text or "invalid_client" in text
                return {"error": "gone" if gone else "transient", "why": text.splitlines()[0][:300]}
            except google.auth.exceptions.TransportError as exc:
                return {"error": "transient", "why": f"{type(exc).__name__}"}
            if self.token_file is not None and self.service_account_file is None and not self._file_changed():
                write_private_file(self.token_file, creds.to_json())
                st = os.stat(self.token_file)
                self._file_id = (st.st_ino, st.st_size, st.st_mtime_ns)
            return {"token": creds.token}

    async def token(self, *, refresh: bool = False) -> str:
        """A valid access token; ``LoginRequired`` when only a new sign-in can give one.
        ``refresh``: the server refused the current one (401): get another."""
        creds = self._credentials
        refused = creds.token if refresh and creds is not None else None
        if not refresh and creds is not None and creds.valid and not _expiring(creds) and not self._file_changed():
            return creds.token
        async with self._lock:
            creds = self._credentials
            if refused is not None and creds is not None and creds.token == refused:
                creds.token = None  # one refresh per refused token, however many callers saw it
            result = await trio.to_thread.run_sync(self._refresh)
        if "token" in result:
            if not self._signed_in:
                log.info("remote %s: signed in", self.name or "(root)")
            self._signed_in = True
            if self.health is not None:
                self.health.clear(self.name, LOGIN_REQUIRED)
            return result["token"]
        if result["error"] == "transient":
            raise TransientRemoteError(f"Google sign-in: {result['why']}")
        detail = f"{result['why']}; run '{self.login_hint}'"
        if self.health is not None:
            self.health.report(self.name, LOGIN_REQUIRED, detail)
        if self._signed_in:
            log.warning("remote %s: %s: %s", self.name or "(root)", LOGIN_REQUIRED, detail)
        self._signed_in = False
        raise LoginRequired(f"{LOGIN_REQUIRED}: {detail}")

    # -- cloudgw login ------------------------------------------------------------------

    def login(self, out: TextIO, *, no_browser: bool = False, read_line: Callable[[], str] = input,
              port: int = 0) -> str:
        """The installed-app flow (blocking); writes ``token_file``.  Returns who signed in
        (the granted scopes' account is not in the answer: the token file's path then)."""
        if self.service_account_file is not None:
            raise UserError("this remote signs in with its service account: no login needed")
        if self.client_secret_file is None:
            raise UserError("client_secret_file is not set: create an OAuth client of type 'Desktop app' "
                            "(README: Google Drive) and set client_secret_file")
        from google_auth_oauthlib.flow import InstalledAppFlow

        try:
            flow = InstalledAppFlow.from_client_secrets_file(str(self.client_secret_file), SCOPES)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"client_secret_file {self.client_secret_file}: not an OAuth client file "
                            f"({type(exc).__name__})") from None
        if self.token_url:
            flow.client_config["token_uri"] = self.token_url
        if no_browser:
            flow.redirect_uri = f"http://localhost:{port or 1}/"
            url, _ = flow.authorization_url(access_type="offline", prompt="consent")
            print("Open this page on any device, sign in and allow access:\n" + url, file=out, flush=True)
            print("Your browser then shows an address starting with http://localhost (the page does not load): "
                  "paste that whole address here:", file=out, flush=True)
            answer = read_line().strip()
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer).query)
            if "error" in query:
                raise UserError(f"sign-in refused: {query['error'][0]}")
            if "code" not in query:
                raise UserError("that is not the address the browser was sent to (it has no code=...)")
            try:
                # (the redirect never left the person's machine: oauthlib wants https, as the
                # library's own local server also pretends)
                flow.fetch_token(authorization_response=answer.replace("http://", "https://", 1))
            except Exception as exc:  # oauthlib's errors: a code used twice, expired, wrong client
                raise UserError(f"sign-in failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
            creds = flow.credentials
        else:
            with contextlib.redirect_stdout(out):  # (the library prints the URL itself)
                creds = flow.run_local_server(host="localhost", port=port, open_browser=False,
                                              authorization_prompt_message="Open this page in a browser on "
                                              "this machine, sign in and allow access:\n{url}",
                                              success_message="Signed in: you can close this window.",
                                              access_type="offline", prompt="consent")
        if not creds.refresh_token:
            raise UserError("Google sent no refresh token: remove the app's access in your Google account and "
                            "sign in again")
        assert self.token_file is not None
        with token_file_lock(self.token_file):
            write_private_file(self.token_file, creds.to_json())
        return str(self.token_file)


    def account(self, api_url: str) -> str:
        """Who is signed in (``about.user.emailAddress``), for ``cloudgw login``'s last line;
        the token file's path when Drive does not say (blocking)."""
        from google.auth.transport.requests import AuthorizedSession

        try:
            creds = self._load()
            with AuthorizedSession(creds) as session:
                answer = session.get(api_url.rstrip("/") + "/about", params={"fields": "user(emailAddress)"},
                                     timeout=30)
            return str(answer.json()["user"]["emailAddress"])
        except Exception:  # noqa: BLE001 -- only a courtesy: the sign-in itself is done
            return str(self.token_file)


def _expiring(creds: Any) -> bool:
    import datetime

    expiry = getattr(creds, "expiry", None)
    if expiry is None:
        return False
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)  # google-auth: naive UTC
    return (expiry - now).total_seconds() < EARLY_REFRESH
