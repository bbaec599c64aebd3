"""``cloudgw login`` for a Google Drive remote, through the CLI as a subprocess, against the
fake Google OAuth server: the loopback flow (a browser on this machine follows the printed
URL; the command's own local server catches the redirect) and ``--no-browser`` (a headless
NAS: the person pastes back the address the browser was sent to).  Mistakes are one-line
errors."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import requests

from tests.gdrive_support import AUTH_URL, browser_redirect, gdrive_options
from tests.mount.gateway import CLOUDGW, run_cli

ENV = {"OAUTHLIB_INSECURE_TRANSPORT": "1"}  # the fake's endpoints are plain http


def _config(tmp_path: Path, server, token: Path, **options: str) -> Path:  # noqa: ANN001
    values = {**gdrive_options(server, token), **options}
    lines = ["[remotes.drive]", 'url = "gdrive://my-drive/"'] + [f'{k} = "{v}"' for k, v in values.items()]
    config = tmp_path / "drive.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([CLOUDGW, "login", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})


def _sign_in_url(proc: subprocess.Popen) -> tuple[str, str]:
    """Read the command's output up to the sign-in URL: (the URL, what was read)."""
    assert proc.stdout is not None
    seen = ""
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"no sign-in URL in {seen!r}; stderr: {proc.stderr.read() if proc.stderr else ''}")
        seen += line
        found = AUTH_URL.search(line)
        if found:
            return found.group(1), seen


def _finish(proc: subprocess.Popen, answer: str = "") -> tuple[str, str]:
    """Give the command ``answer`` on its standard input, wait for it: (the rest of stdout, stderr).
    (Not ``communicate``: it reads the pipe's descriptor, past what ``readline`` buffered.)"""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(answer)
    proc.stdin.close()
    proc.wait(timeout=60)
    return proc.stdout.read(), proc.stderr.read()


def _signed_in(token: Path) -> None:
    assert stat.S_IMODE(os.stat(token).st_mode) == 0o600
    saved = json.loads(token.read_text())
    assert saved["refresh_token"] and saved["client_id"]


def test_login_with_a_browser_on_this_machine(gdrive_server, tmp_path: Path):  # noqa: ANN001
    token = tmp_path / "drive.token"
    proc = _start("--config", str(_config(tmp_path, gdrive_server, token)), "drive")
    try:
        url, seen = _sign_in_url(proc)
        gdrive_server.approve_next()  # the person clicks "Allow"
        with requests.Session() as browser:  # the browser follows the redirect to the command's local server
            browser.trust_env = False
            assert browser.get(url, timeout=30).status_code == 200
        out, err = _finish(proc)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"signed in as {gdrive_server.user}" in out and str(token) in out
    _signed_in(token)


def test_login_without_a_browser_reads_the_pasted_address(gdrive_server, tmp_path: Path):  # noqa: ANN001
    token = tmp_path / "drive.token"
    proc = _start("--config", str(_config(tmp_path, gdrive_server, token)), "--no-browser", "drive")
    try:
        url, seen = _sign_in_url(proc)
        gdrive_server.approve_next()
        address = browser_redirect(url)  # on another device: a page that does not load there
        assert address.startswith("http://localhost")
        out, err = _finish(proc, address + "\n")
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "paste that whole address here" in seen + out and "signed in" in out
    _signed_in(token)


def test_login_mistakes_are_one_line_errors(gdrive_server, tmp_path: Path):  # noqa: ANN001
    token = tmp_path / "drive.token"
    no_client = tmp_path / "no-client.toml"
    no_client.write_text(f'[remotes.drive]\nurl = "gdrive://my-drive/"\ntoken_file = "{token}"\n'
                         f'api_url = "{gdrive_server.api_url}"\ntoken_url = "{gdrive_server.token_url}"\n')
    proc = run_cli("login", "--config", str(no_client), env=ENV, check=False)
    assert proc.returncode != 0 and "client_secret_file is not set" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not token.exists()

    # --no-browser, and something else than the redirect address is pasted
    config = _config(tmp_path, gdrive_server, token)
    proc = subprocess.run([CLOUDGW, "login", "--config", str(config), "--no-browser"], input="no idea\n",
                          capture_output=True, text=True, timeout=60, env={**os.environ, **ENV})
    assert proc.returncode != 0 and re.search(r"has no code", proc.stderr), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not token.exists()
