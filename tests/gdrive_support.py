"""Signing in to the fake Google OAuth + Drive server (tests/servers/gdrive) the way a user
does, the options a remote on it takes, and folders and files by path through its back
door (Drive itself knows files by id only).  Used by the contract, mount and CLI tests."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from cloudgw.remotes.gdrive_auth import DriveAuth

if TYPE_CHECKING:
    from tests.servers.gdrive.server import Backdoor, GDriveServer

FOLDER = "application/vnd.google-apps.folder"
AUTH_URL = re.compile(r"(http://\S+/auth\?\S+)")
CHUNK = 262_144  # Drive's resumable chunks: multiples of 256 KiB


def insecure_transport() -> None:
    """oauthlib refuses the fake's http:// endpoints without this (README of the fake)."""
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


def client_secrets(server: GDriveServer, path: Path) -> Path:
    """Google's "Desktop app" client JSON for the fake, mode 0600."""
    server.client_secrets_file(path)
    path.chmod(0o600)
    return path


def browser_redirect(url: str) -> str:
    """What a person's browser does with the sign-in page once the fake approves at once
    (``approve_next``): the address it is sent to (``http://localhost:PORT/?code=...``)."""
    with requests.Session() as browser:
        browser.trust_env = False
        answer = browser.get(url, allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text[:300]
    return answer.headers["Location"]


def sign_in(server: GDriveServer, token_file: Path, client_secret_file: Path) -> str:
    """A real installed-app sign-in (google-auth-oauthlib, the headless variant: the
    redirect address pasted back) against ``server``; writes ``token_file``."""
    insecure_transport()
    auth = DriveAuth(token_file=token_file, client_secret_file=client_secret_file, token_url=server.token_url)
    out = io.StringIO()
    server.approve_next()

    def paste() -> str:
        found = AUTH_URL.search(out.getvalue())
        assert found, out.getvalue()
        return browser_redirect(found.group(1))

    return auth.login(out, no_browser=True, read_line=paste)


def gdrive_options(server: GDriveServer, token_file: Path, **extra: Any) -> dict[str, Any]:
    """The ``[remotes.NAME]`` options of a remote on ``server`` (besides ``url``).  The
    session fixture gives the server a client secrets file (``server.client_secret_path``)."""
    options: dict[str, Any] = {"token_file": str(token_file), "api_url": server.api_url,
                               "token_url": server.token_url}
    secrets_file = getattr(server, "client_secret_path", None)
    if secrets_file is not None:
        options["client_secret_file"] = str(secrets_file)
    return {**options, **extra}


# -- by path, through the back door ------------------------------------------------------------


def _live(found: list[dict]) -> list[dict]:
    """Not trashed, oldest first (the one that keeps the plain name in the mount)."""
    return sorted((f for f in found if not f["trashed"]), key=lambda f: (f["createdTime"], f["id"]))


def lookup(backdoor: Backdoor, path: str, parent: str = "root") -> dict | None:
    """The file or folder at ``path`` (stored names, ``/``-separated) below ``parent``;
    of several with one name, the oldest (folders first for the inner parts)."""
    res: dict | None = backdoor.get(parent)
    for i, name in enumerate(part for part in path.split("/") if part):
        assert res is not None
        found = _live(backdoor.find(res["id"], name))
        if i < len(path.strip("/").split("/")) - 1:
            found = [f for f in found if f["mimeType"] == FOLDER]
        if not found:
            return None
        res = found[0]
    return res


def folder_id(backdoor: Backdoor, path: str, parent: str = "root", *, create: bool = True) -> str:
    """The id of the folder at ``path`` below ``parent`` (made with its parents if missing)."""
    current = backdoor.get(parent)
    assert current is not None, parent
    for name in (part for part in path.split("/") if part):
        found = [f for f in _live(backdoor.find(current["id"], name)) if f["mimeType"] == FOLDER]
        if found:
            current = found[0]
        elif create:
            current = backdoor.create_folder(current["id"], name)
        else:
            raise FileNotFoundError(path)
    return current["id"]


def put(backdoor: Backdoor, path: str, data: bytes, parent: str = "root") -> dict:
    """Create or update the file at ``path`` below ``parent`` (folders made as needed), as the
    web UI's "upload a new version" does for an existing name."""
    folder, _, name = path.strip("/").rpartition("/")
    pid = folder_id(backdoor, folder, parent)
    found = [f for f in _live(backdoor.find(pid, name)) if f["mimeType"] != FOLDER]
    if found:
        return backdoor.update(found[0]["id"], data)
    return backdoor.create_file(pid, name, data)
