"""OneDrive/SharePoint through the real mount, against the strict fake of Graph and the
identity platform (tests/servers/graph), beyond the core cases every remote runs
(test_basics.py, test_programs.py): what an administrator of a Microsoft 365 office
checks -- changes made in Office 365 appear after a poll (an idle poll is one request;
an expired cursor lists again), a rename made there keeps the inode and the cache, a
kill -9 in the middle of a large upload resumes where it stopped, a conflict keeps both
versions, a throttling storm pauses and loses nothing, and a revoked sign-in says
"login required" until ``cloudgw login`` (device code, through the CLI) resumes the
waiting uploads without a remount."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.graph_support import sign_in
from tests.mount.conftest import _gateway, make_graph_backend
from tests.mount.gateway import CLOUDGW, Gateway, run_cli
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount

FRAGMENT = 3 * 327680  # the backend's chunk_size


@pytest.fixture
def od(graph_server, tmp_path: Path) -> Iterator[Gateway]:  # noqa: ANN001
    """Polls only when asked (``gw.poll()``), so request counts are the test's own."""
    backend = make_graph_backend(graph_server, tmp_path)
    backend.args = (*backend.args, "--poll-interval", "86400")
    yield from _gateway(backend, tmp_path)


def test_changes_made_in_office365_appear_after_a_poll(od, graph_server):  # noqa: ANN001
    gw, view = od, od.backend.view
    (gw.mnt / "a.txt").write_text("ours")
    (gw.mnt / "docs").mkdir()
    gw.sync()
    gw.poll()  # the feed's cursor now covers our own uploads
    view.put("a.txt", b"edited in Word online")
    view.put("docs/new.txt", b"made on another PC")
    view.put("Projects/plan.txt", b"a folder made elsewhere")
    gw.poll()  # (the kernel's caches are invalidated right after: wait_for)
    wait_for(lambda: (gw.mnt / "a.txt").read_bytes() == b"edited in Word online")
    assert (gw.mnt / "docs" / "new.txt").read_bytes() == b"made on another PC"
    assert (gw.mnt / "Projects" / "plan.txt").read_bytes() == b"a folder made elsewhere"
    view.delete("docs/new.txt")
    gw.poll()
    wait_for(lambda: not (gw.mnt / "docs" / "new.txt").exists())

    graph_server.counters.reset()
    gw.poll()  # nothing changed: one delta request
    assert graph_server.counters.requests == {"delta": 1}

    graph_server.expire_delta_tokens()  # 410 resyncRequired: everything is listed again
    view.put("after-resync.txt", b"seen through the listing")
    gw.poll()
    wait_for(lambda: (gw.mnt / "after-resync.txt").exists())
    assert (gw.mnt / "after-resync.txt").read_bytes() == b"seen through the listing"
    assert sorted(os.listdir(gw.mnt)) == ["Projects", "a.txt", "after-resync.txt", "docs"]


def test_a_rename_made_elsewhere_keeps_the_inode_and_the_cache(od, graph_server):  # noqa: ANN001
    gw, view = od, od.backend.view
    data = os.urandom(3 << 20)
    (gw.mnt / "archive").mkdir()
    (gw.mnt / "report.bin").write_bytes(data)
    gw.sync()
    assert (gw.mnt / "report.bin").read_bytes() == data  # cached
    ino = os.stat(gw.mnt / "report.bin").st_ino
    gw.poll()
    view.move("report.bin", "archive/report-2026.bin")
    gw.poll()
    wait_for(lambda: not (gw.mnt / "report.bin").exists())
    assert os.stat(gw.mnt / "archive" / "report-2026.bin").st_ino == ino
    graph_server.counters.reset()
    assert (gw.mnt / "archive" / "report-2026.bin").read_bytes() == data
    assert graph_server.counters.get("download") == 0 and graph_server.counters.get("content") == 0


def _daemon_alive(gw: Gateway) -> bool:
    return subprocess.run(["pgrep", "-f", f"cloudgw mount .* {gw.mnt} "], capture_output=True).returncode == 0


def test_kill9_in_an_upload_session_resumes_without_resending_what_was_acknowledged(graph_server, tmp_path):  # noqa: ANN001
    backend = make_graph_backend(graph_server, tmp_path)
    view = backend.view
    acked_at_crash = 8 * FRAGMENT
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env={"CLOUDGW_CRASH_AT": "graph-fragment-acked-8"},
                 args=backend.args)
    data = os.urandom(20 << 20)
    try:
        gw.mount()
        (gw.mnt / "backup.tar").write_bytes(data)  # uploaded once closed: killed after 8 fragments
        wait_for(lambda: not _daemon_alive(gw), timeout=60)
        subprocess.run(["fusermount3", "-u", "-z", str(gw.mnt)], capture_output=True)
        wait_for(lambda: not os.path.ismount(gw.mnt), timeout=10)
        assert "backup.tar" not in view.files()  # nothing is visible before the last fragment
        graph_server.counters.reset()
        gw.env = {}
        gw.mount()
        gw.sync()
        assert view.sha256("backup.tar") == hashlib.sha256(data).hexdigest()
        sent = graph_server.counters.bytes_uploaded
        assert sent <= len(data) - acked_at_crash, (sent, len(data) - acked_at_crash)
        assert re.search(r"resuming an interrupted upload at byte \d+ of 20971520", gw.log())
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_a_file_changed_in_office365_while_edited_here_keeps_both(graph_server, tmp_path):  # noqa: ANN001
    backend = make_graph_backend(graph_server, tmp_path)
    view = backend.view
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", args=backend.args)
    gw.expected_warnings += [r"conflict: report.txt changed on the remote"]
    try:
        gw.mount()
        (gw.mnt / "report.txt").write_text("first")
        gw.sync()
        gw.umount()
        gw.mount("--write-back", "3600")
        (gw.mnt / "report.txt").write_text("ours")  # not uploaded yet ...
        view.put("report.txt", b"theirs, from Word online")  # ... when the cloud's copy changes
        gw.sync()
        assert view.get("report.txt") == b"ours"
        copies = [p for p in view.files() if re.fullmatch(r"report\.conflict-\d{8}-\d{6}(-\d+)?\.txt", p)]
        assert len(copies) == 1 and view.get(copies[0]) == b"theirs, from Word online"
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_a_throttling_storm_pauses_the_remote_and_loses_nothing(od, graph_server):  # noqa: ANN001
    gw, view = od, od.backend.view
    gw.expected_warnings += [r"throttled \(429\); pausing every request", r"upload .* failed", r"gave up after"]
    assert os.listdir(gw.mnt) == []  # (listed before the storm: a listing during one fails after the timeout)
    graph_server.throttle(10**6, retry_after=2)  # every Graph request: 429, Retry-After: 2
    files = {f"f{i}.txt": os.urandom(1000 + i) for i in range(5)}
    for name, body in files.items():
        (gw.mnt / name).write_bytes(body)
    status = wait_for(lambda: (s := gw.status()).get("remotes", {}).get("", {}).get("state") == "throttled" and s)
    assert status["remotes"][""]["until"] > status["time"]
    assert "remote (root): throttled until" in run_cli("status", str(gw.mnt)).stdout
    assert view.files() == {}
    graph_server.throttle(0)  # the storm is over
    gw.sync()
    assert {name: view.get(name) for name in files} == files
    assert gw.status()["remotes"] == {}


def _login(config: Path, name: str, server) -> subprocess.CompletedProcess:  # noqa: ANN001
    """``cloudgw login`` as an administrator runs it: read the code it prints, enter it on
    the sign-in page (another device), wait for the command to finish."""
    proc = subprocess.Popen([CLOUDGW, "login", "--config", str(config), name], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    found = re.search(r"open the page (\S+) and enter the code (\S+)", first)
    assert found, first + (proc.stderr.read() if proc.stderr else "")
    page, code = found.groups()
    with requests.Session() as browser:
        browser.trust_env = False
        assert browser.post(page, data={"user_code": code}, verify=str(server.ca_file)).status_code == 200
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, first + out, err)


def _config(tmp_path: Path, server, folder: str, token: Path) -> Path:  # noqa: ANN001
    from tests.graph_support import graph_options

    options = graph_options(server, token)
    lines = ["[remotes.docs]", f'url = "onedrive://me/{folder}"'] + [f'{k} = "{v}"' for k, v in options.items()]
    config = tmp_path / "office.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def test_a_revoked_sign_in_waits_for_cloudgw_login_and_loses_nothing(graph_server, tmp_path):  # noqa: ANN001
    backend = make_graph_backend(graph_server, tmp_path)
    view, token = backend.view, tmp_path / "onedrive-token.json"  # the file the backend's options name
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", args=backend.args)
    gw.expected_warnings += [r"login required", r"poll failed", r"upload .* failed"]
    try:
        gw.mount()
        (gw.mnt / "before.txt").write_text("uploaded while signed in")
        gw.sync()
        graph_server.revoke_refresh_tokens()  # the administrator revoked the sessions, or 90 days passed
        graph_server.expire_access_tokens()
        (gw.mnt / "waiting.txt").write_text("written while nobody is signed in")
        status = wait_for(lambda: (s := gw.status()).get("remotes", {}).get("", {}).get("state") == "login required"
                          and s, timeout=30)
        assert "cloudgw login" in status["remotes"][""]["detail"]
        assert "waiting.txt" not in view.files() and (gw.mnt / "waiting.txt").read_text() != ""

        config = _config(tmp_path, graph_server, backend.url.removeprefix("onedrive://me/"), token)
        done = _login(config, "docs", graph_server)
        assert done.returncode == 0, done.stderr
        assert "signed in as" in done.stdout and oct(os.stat(token).st_mode & 0o777) == "0o600"
        # no remount: the daemon reads the new sign-in at its next request and retries what waited
        wait_for(lambda: "waiting.txt" in view.files(), timeout=60)
        assert view.get("waiting.txt") == b"written while nobody is signed in"
        assert gw.status()["remotes"] == {}
        gw.umount()
    finally:
        gw.force_cleanup()
        sign_in(graph_server, graph_server.token_template)  # the revocation took the session's sign-in too
    assert not gw.bad_log_lines()
    cache = json.loads(token.read_text())  # secrets never reach the (DEBUG) log: tokens, pre-authenticated URLs
    secrets = [v["secret"] for kind in ("AccessToken", "RefreshToken") for v in cache[kind].values()]
    assert secrets and not any(secret in gw.log() for secret in secrets) and "/_pre/" not in gw.log()


def test_login_mistakes_are_one_line_errors(graph_server, tmp_path):  # noqa: ANN001
    config = _config(tmp_path, graph_server, "Documents", tmp_path / "t.json")
    for args, message in [(("--config", str(config), "photos"), "has no [remotes.photos]"),
                          (("--config", str(tmp_path / "missing.toml")), "does not exist"),
                          ((), "say which remote"),
                          (("onedrive://me", "--remote-option", "token_file=/x"), "client_id is not set")]:
        proc = run_cli("login", *args, check=False)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    s3 = tmp_path / "s3.toml"
    s3.write_text('[remotes.b]\nurl = "s3://bucket"\n')
    proc = run_cli("login", "--config", str(s3), check=False)
    assert proc.returncode == 2 and "needs no login" in proc.stderr


def test_a_folder_moved_in_from_outside_the_mount_shows_its_content(od, graph_server):  # noqa: ANN001
    gw, view = od, od.backend.view
    outside = f"outside-{view.folder}"
    graph_server.backdoor.put(f"{outside}/sub/x.txt", b"made before it was moved in")
    gw.poll()
    assert os.listdir(gw.mnt) == []  # elsewhere in the drive: not ours
    graph_server.backdoor.move(outside, f"{view.folder}/moved-in")
    gw.poll()
    wait_for(lambda: (gw.mnt / "moved-in").exists())
    assert (gw.mnt / "moved-in" / "sub" / "x.txt").read_bytes() == b"made before it was moved in"


def test_names_onedrive_cannot_hold_are_mapped_or_refused(od):  # noqa: ANN001
    gw, view = od, od.backend.view
    odd = ["Q3: plan?.txt", "desktop.ini", "trailing dot.", "~$lock.docx", "CON"]
    for name in odd:
        (gw.mnt / name).write_text(name)
    (gw.mnt / "Report.txt").write_text("one")
    with pytest.raises(FileExistsError):
        (gw.mnt / "report.txt").write_text("a case-only twin")  # the same name for OneDrive
    with pytest.raises(OSError) as err:
        (gw.mnt / ("d" * 200) / ("e" * 210)).mkdir(parents=True)  # over 400 characters as a path
    assert err.value.errno == 36  # ENAMETOOLONG
    gw.sync()
    stored = set(view.files())
    assert len(stored) == len(odd) + 1 and not stored & set(odd)  # each under a name OneDrive takes
    assert sorted(os.listdir(gw.mnt)) == sorted([*odd, "Report.txt"] + ["d" * 200])
    for name in odd:
        assert (gw.mnt / name).read_text() == name
