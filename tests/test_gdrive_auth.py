"""Signing in to Google (cloudgw/remotes/gdrive_auth.py) against the fake OAuth server:
the installed-app flow for a headless NAS (URL printed, redirect address pasted back) and
with the flow's own local server, silent refresh, a revoked grant, service accounts."""

from __future__ import annotations

import io
import os
import re
import stat
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import trio

from cloudgw.errors import LoginRequired, UserError
from cloudgw.remotes.gdrive_auth import DriveAuth
from cloudgw.remotes.health import HealthBoard


@pytest.fixture(scope="module")
def gdrive() -> Iterator[Any]:
    from tests.servers.gdrive.server import start_gdrive

    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake's token endpoint is plain http
    with start_gdrive() as server:
        yield server


def browser_redirect(url: str) -> str:
    """What a person's browser does with the sign-in page: follow it to the redirect (the
    fake approves at once after ``approve_next``) and return the address it lands on."""
    with requests.Session() as browser:
        browser.trust_env = False
        answer = browser.get(url, allow_redirects=False)
    assert answer.status_code == 302, answer.text[:300]
    return answer.headers["Location"]


def sign_in_headless(gdrive: Any, tmp_path: Path, **kwargs: Any) -> DriveAuth:
    auth = DriveAuth(token_file=tmp_path / "drive.token", client_secret_file=gdrive.client_secrets_file(
        tmp_path / "client.json"), token_url=gdrive.token_url, **kwargs)
    out = io.StringIO()
    gdrive.approve_next()

    def paste() -> str:
        url = re.search(r"(http://\S+/auth\?\S+)", out.getvalue()).group(1)
        return browser_redirect(url)

    auth.login(out, no_browser=True, read_line=paste)
    assert "paste that whole address here" in out.getvalue()
    return auth


async def test_a_headless_sign_in_with_a_pasted_address(gdrive: Any, tmp_path: Path):
    auth = sign_in_headless(gdrive, tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "drive.token").st_mode) == 0o600
    token = await auth.token()
    assert token and await auth.token() == token  # cached: no second request
    gdrive.expire_access_tokens()
    auth._credentials.expiry = None
    auth._credentials.token = None  # (as after a restart with an old token)
    assert await auth.token() != token  # refreshed with the refresh token


async def test_a_sign_in_through_the_flows_own_local_server(gdrive: Any, tmp_path: Path):
    auth = DriveAuth(token_file=tmp_path / "drive.token", client_secret_file=gdrive.client_secrets_file(
        tmp_path / "client.json"), token_url=gdrive.token_url)
    out = io.StringIO()
    gdrive.approve_next()

    def person() -> None:  # a browser on the same machine: follows the redirect to the local server
        while not (found := re.search(r"(http://\S+/auth\?\S+)", out.getvalue())):
            threading.Event().wait(0.05)
        with requests.Session() as browser:
            browser.trust_env = False
            browser.get(found.group(1), timeout=10)

    helper = threading.Thread(target=person, daemon=True)
    helper.start()
    auth.login(out)
    helper.join(timeout=10)
    assert await auth.token()


@pytest.mark.allow_warnings("login required: invalid_grant")
async def test_a_revoked_grant_is_login_required_until_the_next_sign_in(gdrive: Any, tmp_path: Path):
    board = HealthBoard()
    auth = sign_in_headless(gdrive, tmp_path, health=board, name="drive", login_hint="cloudgw login --config C drive")
    await auth.token()
    gdrive.revoke()
    auth._credentials.expiry = None
    auth._credentials.token = None
    with pytest.raises(LoginRequired, match="run 'cloudgw login --config C drive'"):
        await auth.token()
    assert board.snapshot()["drive"]["state"] == "login required"
    again = sign_in_headless(gdrive, tmp_path)  # 'cloudgw login' rewrites the token file ...
    assert again.token_file == auth.token_file
    await trio.sleep(0)
    assert await auth.token()  # ... and the running remote reads it: no remount
    assert board.snapshot() == {}


async def test_service_accounts_with_and_without_delegation(gdrive: Any, tmp_path: Path):
    key = gdrive.service_account_file(tmp_path / "sa.json")
    auth = DriveAuth(service_account_file=key, impersonate=gdrive.user, token_url=gdrive.token_url)
    assert await auth.token()
    stranger = DriveAuth(service_account_file=key, impersonate="nobody@example.com", token_url=gdrive.token_url)
    with pytest.raises(LoginRequired, match="Invalid email"):
        await stranger.token()
    plain = gdrive.service_account_file(tmp_path / "sa2.json", delegation=False)
    auth = DriveAuth(service_account_file=plain, impersonate="bob@example.com", token_url=gdrive.token_url)
    with pytest.raises(LoginRequired, match="unauthorized_client"):
        await auth.token()
    with pytest.raises(UserError, match="no login needed"):
        auth.login(io.StringIO())


def test_mistakes_are_one_line_errors(gdrive: Any, tmp_path: Path):
    with pytest.raises(UserError, match="set token_file"):
        DriveAuth()
    with pytest.raises(UserError, match="client_secret_file is not set"):
        DriveAuth(token_file=tmp_path / "t").login(io.StringIO())
    auth = DriveAuth(token_file=tmp_path / "t", client_secret_file=gdrive.client_secrets_file(tmp_path / "c.json"))
    with pytest.raises(UserError, match="has no code"):
        auth.login(io.StringIO(), no_browser=True, read_line=lambda: "http://localhost:1/?state=x")
