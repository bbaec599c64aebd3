"""Google Drive through the real mount, against the strict fake of Google OAuth and Drive v3
(tests/servers/gdrive), beyond the core cases every remote runs (test_basics.py,
test_programs.py): what someone who keeps a NAS folder in a Google Drive checks --
changes made on the web appear after a poll (a rename or move keeps the inode and the
cache; the trash makes a file vanish), files that share a name show with serial
suffixes that stay put and delete the right file, a Google Doc reads as a real .docx
and cannot be overwritten, a shortcut is a symlink, a kill -9 in the middle of a
resumable upload resumes where Drive stopped, a conflict keeps both versions, throttling
and the daily upload limit pause and lose nothing, and deletes go to the Drive trash
(or not, with ``trash = false``).

Every wait is for a condition with a deadline (``wait_for``); polls happen when the test
asks (``--poll-interval 86400`` and ``gw.poll()``) so request counts are the test's own."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.mount.conftest import GDRIVE_CHUNK, _gateway, make_gdrive_backend
from tests.mount.gateway import CLOUDGW, Gateway, run_cli
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def gd(gdrive_server, tmp_path: Path) -> Iterator[Gateway]:  # noqa: ANN001
    """Polls only when asked (``gw.poll()``)."""
    backend = make_gdrive_backend(gdrive_server, tmp_path)
    backend.args = (*backend.args, "--poll-interval", "86400")
    yield from _gateway(backend, tmp_path)


def _gateway_with(gdrive_server, tmp_path: Path, *options: str) -> Gateway:  # noqa: ANN001
    """A gateway (not mounted) on a fresh folder with extra remote options; polls when asked."""
    backend = make_gdrive_backend(gdrive_server, tmp_path, *options)
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", args=(*backend.args, "--poll-interval", "86400"))
    gw.backend = backend  # type: ignore[attr-defined]
    return gw


def _listing(gw: Gateway, sub: str = "") -> list[str]:
    return sorted(os.listdir(gw.mnt / sub if sub else gw.mnt))


def _at(minutes: int) -> str:
    """An RFC 3339 createdTime ``minutes`` into 2024."""
    return f"2024-01-01T{minutes // 60:02d}:{minutes % 60:02d}:00.000Z"


# -- changes made elsewhere -----------------------------------------------------------------------


def test_changes_made_on_the_web_appear_after_a_poll(gd, gdrive_server):  # noqa: ANN001
    gw, view = gd, gd.backend.view
    (gw.mnt / "a.txt").write_text("ours")
    (gw.mnt / "docs").mkdir()
    gw.sync()
    gw.poll()  # the feed's cursor now covers our own uploads
    view.put("a.txt", b"a new version uploaded on the web")
    view.put("docs/new.txt", b"made by a colleague")
    view.put("Projects/plan.txt", b"a folder made elsewhere")
    gw.poll()
    wait_for(lambda: (gw.mnt / "a.txt").read_bytes() == b"a new version uploaded on the web")
    assert (gw.mnt / "docs" / "new.txt").read_bytes() == b"made by a colleague"
    assert (gw.mnt / "Projects" / "plan.txt").read_bytes() == b"a folder made elsewhere"

    view.trash("docs/new.txt")  # the trash: gone from the mount (Drive keeps it 30 days)
    gw.poll()
    wait_for(lambda: not (gw.mnt / "docs" / "new.txt").exists())
    view.trash("Projects")  # a folder's whole subtree goes with it
    gw.poll()
    wait_for(lambda: not (gw.mnt / "Projects").exists())
    assert _listing(gw) == ["a.txt", "docs"]

    gdrive_server.counters.reset()
    gw.poll()  # nothing changed: one changes.list request
    assert gdrive_server.counters.requests == {"changes.list": 1}


def test_a_rename_or_move_made_elsewhere_keeps_the_inode_and_the_cache(gd, gdrive_server):  # noqa: ANN001
    gw, view = gd, gd.backend.view
    data = os.urandom(3 << 20)
    (gw.mnt / "inbox").mkdir()
    (gw.mnt / "archive").mkdir()
    (gw.mnt / "inbox" / "report.bin").write_bytes(data)
    gw.sync()
    assert (gw.mnt / "inbox" / "report.bin").read_bytes() == data  # cached
    ino = os.stat(gw.mnt / "inbox" / "report.bin").st_ino
    gw.poll()
    view.rename("inbox/report.bin", "report-2026.bin")
    gw.poll()
    wait_for(lambda: not (gw.mnt / "inbox" / "report.bin").exists())
    assert os.stat(gw.mnt / "inbox" / "report-2026.bin").st_ino == ino
    view.move("inbox/report-2026.bin", "archive")
    gw.poll()
    wait_for(lambda: not (gw.mnt / "inbox" / "report-2026.bin").exists())
    assert os.stat(gw.mnt / "archive" / "report-2026.bin").st_ino == ino
    gdrive_server.counters.reset()
    assert (gw.mnt / "archive" / "report-2026.bin").read_bytes() == data
    assert gdrive_server.counters.get("media") == 0  # from the cache


# -- names ----------------------------------------------------------------------------------------


def test_files_sharing_a_name_get_serial_suffixes_that_stay_put(gdrive_server, tmp_path):  # noqa: ANN001
    gw = _gateway_with(gdrive_server, tmp_path)
    view, backdoor = gw.backend.view, gdrive_server.backdoor
    # made in another order than their creation times: the names follow createdTime
    middle = backdoor.create_file(view.folder_id, "report.pdf", b"second", created=_at(2))
    newest = backdoor.create_file(view.folder_id, "report.pdf", b"third", created=_at(3))
    oldest = backdoor.create_file(view.folder_id, "report.pdf", b"first", created=_at(1))
    expected = {"report.pdf": b"first", "report (1).pdf": b"second", "report (2).pdf": b"third"}
    try:
        gw.mount()
        assert {n: (gw.mnt / n).read_bytes() for n in _listing(gw)} == expected
        gw.umount()
        gw.mount()  # the same names after a remount
        assert {n: (gw.mnt / n).read_bytes() for n in _listing(gw)} == expected

        os.unlink(gw.mnt / "report (1).pdf")
        gw.sync()
        assert backdoor.get(middle["id"])["trashed"]  # exactly that file
        assert not backdoor.get(oldest["id"])["trashed"] and not backdoor.get(newest["id"])["trashed"]
        assert sorted((gw.mnt / n).read_bytes() for n in _listing(gw)) == [b"first", b"third"]
        assert (gw.mnt / "report.pdf").read_bytes() == b"first"

        gw.poll()
        backdoor.trash(oldest["id"])  # on the web: the newest is the only one left
        gw.poll()
        wait_for(lambda: _listing(gw) == ["report.pdf"])
        wait_for(lambda: (gw.mnt / "report.pdf").read_bytes() == b"third")
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


@pytest.mark.parametrize("first_poll", ["feed", "listing"])
def test_numbered_duplicates_that_shift_keep_their_inodes_and_caches(gdrive_server, tmp_path, first_poll):  # noqa: ANN001
    """One leaves: the younger ones move up; an older one arrives: they move down.  Each
    stays the same file here (inode, cached data), whether the poll reads the feed or lists
    everything (the first poll after a mount)."""
    gw = _gateway_with(gdrive_server, tmp_path)
    view, backdoor = gw.backend.view, gdrive_server.backdoor
    made = {tag: backdoor.create_file(view.folder_id, "report.pdf", tag.encode(), created=_at(10 + i))
            for i, tag in enumerate("ABC")}
    elsewhere = backdoor.create_folder("root", f"elsewhere-{tmp_path.name}")
    older = backdoor.create_file(elsewhere["id"], "report.pdf", b"0", created=_at(1))
    try:
        gw.mount()
        ino = {(gw.mnt / n).read_bytes(): os.stat(gw.mnt / n).st_ino for n in _listing(gw)}  # cached, too
        if first_poll == "feed":
            gw.poll()  # the feed's starting point
        backdoor.trash(made["B"]["id"])
        gw.poll()
        wait_for(lambda: _listing(gw) == ["report (1).pdf", "report.pdf"])
        assert os.stat(gw.mnt / "report (1).pdf").st_ino == ino[b"C"]
        backdoor.move(older["id"], view.folder_id)  # older than all: takes the plain name
        gw.poll()
        wait_for(lambda: _listing(gw) == ["report (1).pdf", "report (2).pdf", "report.pdf"])
        now = {(gw.mnt / n).read_bytes(): os.stat(gw.mnt / n).st_ino for n in _listing(gw)}
        assert (now[b"A"], now[b"C"]) == (ino[b"A"], ino[b"C"])
        assert (gw.mnt / "report (1).pdf").read_bytes() == b"A" and (gw.mnt / "report.pdf").read_bytes() == b"0"
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_a_file_and_a_folder_of_one_name_both_appear(gd, gdrive_server):  # noqa: ANN001
    gw, view, backdoor = gd, gd.backend.view, gdrive_server.backdoor
    backdoor.create_file(view.folder_id, "Photos", b"an old file", created=_at(1))
    inner = backdoor.create_folder(view.folder_id, "Photos")
    backdoor.create_file(inner["id"], "cat.jpg", b"meow")
    backdoor.create_file(view.folder_id, "2024/25 budget.txt", b"a slash in a Drive name")
    gw.poll()
    wait_for(lambda: len(_listing(gw)) == 3)
    assert _listing(gw) == ["2024\u221525 budget.txt", "Photos", "Photos (1)"]
    assert (gw.mnt / "Photos").read_bytes() == b"an old file"  # the older keeps the name
    assert (gw.mnt / "Photos (1)" / "cat.jpg").read_bytes() == b"meow"
    assert (gw.mnt / "2024\u221525 budget.txt").read_bytes() == b"a slash in a Drive name"


# -- Google Docs, shortcuts -----------------------------------------------------------------------


def test_a_google_doc_reads_as_a_docx_and_refuses_writes(gd, gdrive_server):  # noqa: ANN001
    gw, view, backdoor = gd, gd.backend.view, gdrive_server.backdoor
    gw.expected_warnings += [r"Minutes\.docx: read-only \(an exported document"]  # said once, to the log
    doc = backdoor.create_doc(view.folder_id, "Minutes", text="Attendees: Ann, Bob\nDecided: ship it")
    backdoor.create_doc(view.folder_id, "Budget", kind="spreadsheet", text="rent,100")
    gw.poll()
    wait_for(lambda: (gw.mnt / "Minutes.docx").exists())
    assert _listing(gw) == ["Budget.xlsx", "Minutes.docx"]
    path = gw.mnt / "Minutes.docx"
    data = path.read_bytes()
    z = zipfile.ZipFile(io.BytesIO(data))  # a real Office document
    assert {"[Content_Types].xml", "word/document.xml"} <= set(z.namelist())
    assert "Decided: ship it" in z.read("word/document.xml").decode()
    assert os.stat(path).st_size == len(data) > 0  # ls -l shows the exported size
    listed = subprocess.run(["ls", "-l", str(path)], capture_output=True, text=True, check=True).stdout.split()
    assert int(listed[4]) == len(data)
    assert subprocess.run(["unzip", "-t", str(path)], capture_output=True).returncode == 0

    for mode in ("r+b", "wb", "ab"):  # Docs are edited in Docs: read-only here, nothing lost
        with pytest.raises(PermissionError) as err:
            with open(path, mode) as f:
                f.write(b"overwritten")
        assert err.value.errno == errno.EACCES
    with pytest.raises(PermissionError):
        os.truncate(path, 0)
    gw.sync()
    assert path.read_bytes() == data
    assert backdoor.get(doc["id"])["version"] == doc["version"]  # never touched

    backdoor.edit_doc(doc["id"], "Attendees: Ann, Bob, Cy\nDecided: ship it")  # edited in Docs
    gw.poll()
    wait_for(lambda: b"Cy" in zipfile.ZipFile(io.BytesIO(path.read_bytes())).read("word/document.xml"))
    assert os.stat(path).st_size == len(path.read_bytes())


def test_export_formats_choose_how_docs_show(gdrive_server, tmp_path):  # noqa: ANN001
    gw = _gateway_with(gdrive_server, tmp_path, "export_formats=drawing=pdf")
    view, backdoor = gw.backend.view, gdrive_server.backdoor
    backdoor.create_doc(view.folder_id, "Sketch", kind="drawing", text="a circle")
    backdoor.create_doc(view.folder_id, "Deck", kind="presentation", text="slide one")
    try:
        gw.mount()
        assert _listing(gw) == ["Deck.pptx", "Sketch.pdf"]  # the others keep their defaults
        assert b"a circle" in (gw.mnt / "Sketch.pdf").read_bytes()
        deck = zipfile.ZipFile(io.BytesIO((gw.mnt / "Deck.pptx").read_bytes()))
        assert "slide one" in deck.read("ppt/slides/slide1.xml").decode()
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_a_shared_drive_by_name(gdrive_server, tmp_path):  # noqa: ANN001
    from tests.gdrive_support import gdrive_options
    from tests.graph_support import signed_in_copy

    backdoor = gdrive_server.backdoor
    name = f"Team {tmp_path.name[-12:]}"
    drive = backdoor.create_shared_drive(name)
    folder = backdoor.create_folder("root", "Projects", drive=drive)
    backdoor.create_file(folder["id"], "plan.txt", b"made by a colleague", drive=drive)
    token = signed_in_copy(gdrive_server.token_template, tmp_path / "token.json")
    args = tuple(a for k, v in gdrive_options(gdrive_server, token).items() for a in ("--remote-option", f"{k}={v}"))
    gw = Gateway(f"gdrive://shared/{name}/Projects", tmp_path / "mnt", tmp_path / "cache", args=args)
    try:
        gw.mount()
        assert (gw.mnt / "plan.txt").read_bytes() == b"made by a colleague"
        (gw.mnt / "sub").mkdir()
        (gw.mnt / "sub" / "ours.txt").write_text("written through the mount")
        gw.sync()
        sub = [f for f in backdoor.children(folder["id"]) if f["name"] == "sub"]
        assert len(sub) == 1 and sub[0]["driveId"] == drive
        ours = backdoor.find(sub[0]["id"], "ours.txt")
        assert len(ours) == 1 and backdoor.read(ours[0]["id"]) == b"written through the mount"
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_a_shortcut_is_a_symlink_to_its_target(gd, gdrive_server):  # noqa: ANN001
    gw, view, backdoor = gd, gd.backend.view, gdrive_server.backdoor
    target = view.put("docs/plan.txt", b"the plan")
    backdoor.create_shortcut(view.folder_id, "plan shortcut", target["id"])
    gw.poll()
    link = gw.mnt / "plan shortcut"
    wait_for(lambda: link.is_symlink())
    assert link.read_bytes() == b"the plan"  # resolves inside the mount
    assert os.path.samefile(link, gw.mnt / "docs" / "plan.txt")


# -- uploads ----------------------------------------------------------------------------------------


def _daemon_alive(gw: Gateway) -> bool:
    return subprocess.run(["pgrep", "-f", f"cloudgw mount .* {gw.mnt} "], capture_output=True).returncode == 0


def test_kill9_in_a_resumable_upload_resumes_without_resending_what_was_acknowledged(gdrive_server, tmp_path):  # noqa: ANN001
    backend = make_gdrive_backend(gdrive_server, tmp_path)
    view = backend.view
    acked_at_crash = 4 * GDRIVE_CHUNK
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env={"CLOUDGW_CRASH_AT": "gdrive-chunk-acked-4"},
                 args=backend.args)
    data = os.urandom(10 << 20)
    try:
        gw.mount()
        (gw.mnt / "backup.tar").write_bytes(data)  # uploaded once closed: killed after 4 chunks
        wait_for(lambda: not _daemon_alive(gw), timeout=60)
        subprocess.run(["fusermount3", "-u", "-z", str(gw.mnt)], capture_output=True)
        wait_for(lambda: not os.path.ismount(gw.mnt), timeout=10)
        assert view.item("backup.tar") is None  # nothing is visible before the last chunk
        gdrive_server.counters.reset()
        gw.env = {}
        gw.mount()
        gw.sync()
        stored = view.item("backup.tar")
        assert stored is not None and stored["md5Checksum"] == hashlib.md5(data).hexdigest()
        sent = gdrive_server.counters.bytes_uploaded
        assert sent <= len(data) - acked_at_crash, (sent, len(data) - acked_at_crash)
        assert re.search(rf"resuming an interrupted upload at byte \d+ of {len(data)}", gw.log())
        assert len(view.backdoor.find(view.folder_id, "backup.tar")) == 1  # one file, no duplicate
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_a_file_changed_on_the_web_while_edited_here_keeps_both(gdrive_server, tmp_path):  # noqa: ANN001
    gw = _gateway_with(gdrive_server, tmp_path)
    view = gw.backend.view
    gw.expected_warnings += [r"conflict: report.txt changed on the remote"]
    try:
        gw.mount()
        (gw.mnt / "report.txt").write_text("first")
        gw.sync()
        gw.umount()
        gw.mount("--write-back", "3600")
        (gw.mnt / "report.txt").write_text("ours")  # not uploaded yet ...
        view.put("report.txt", b"theirs, a new version uploaded on the web")  # ... when Drive's copy changes
        gw.sync()
        assert view.get("report.txt") == b"ours"
        copies = [p for p in view.files() if re.fullmatch(r"report\.conflict-\d{8}-\d{6}(-\d+)?\.txt", p)]
        assert len(copies) == 1 and view.get(copies[0]) == b"theirs, a new version uploaded on the web"
        assert set(view.files()) == {"report.txt", copies[0]}
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


@pytest.mark.parametrize("status,reason", [(403, "userRateLimitExceeded"), (429, "rateLimitExceeded")])
def test_a_rate_limit_storm_pauses_the_remote_and_loses_nothing(gd, gdrive_server, status, reason):  # noqa: ANN001
    gw, view = gd, gd.backend.view
    gw.expected_warnings += [r"throttled \(", r"upload .* failed", r"gave up after"]
    assert _listing(gw) == []  # (listed before the storm)
    gdrive_server.rate_limit(10**6, status=status, reason=reason, retry_after=2)  # every Drive request
    files = {f"f{i}.txt": os.urandom(1000 + i) for i in range(5)}
    try:
        for name, body in files.items():
            (gw.mnt / name).write_bytes(body)
        status = wait_for(lambda: (s := gw.status()).get("remotes", {}).get("", {}).get("state") == "throttled" and s)
        assert status["remotes"][""]["until"] > status["time"]
        assert "remote (root): throttled until" in run_cli("status", str(gw.mnt)).stdout
        assert view.files() == {}
    finally:
        gdrive_server.rate_limit(0)  # the storm is over
    gw.sync()
    assert {name: view.get(name) for name in files} == files
    wait_for(lambda: gw.status()["remotes"] == {})


def test_the_daily_upload_limit_pauses_uploads_and_loses_nothing(gdrive_server, tmp_path):  # noqa: ANN001
    gw = _gateway_with(gdrive_server, tmp_path, "quota_pause=3")
    view = gw.backend.view
    gw.expected_warnings += [r"daily upload limit is reached", r"upload .* failed", r"upload quota exceeded"]
    view.put("old.txt", b"readable while uploads wait")
    try:
        gw.mount()
        gdrive_server.upload_quota_exceeded(True)
        (gw.mnt / "new.txt").write_text("waits for tomorrow")
        status = wait_for(lambda: (s := gw.status()).get("remotes", {}).get("", {}).get("state")
                          == "upload quota exceeded" and s, timeout=30)
        assert status["remotes"][""]["until"] > status["time"]
        assert "remote (root): upload quota exceeded until" in run_cli("status", str(gw.mnt)).stdout
        assert os.getxattr(gw.mnt / "new.txt", "user.cloudgw.state") == b"dirty"
        assert (gw.mnt / "old.txt").read_bytes() == b"readable while uploads wait"  # reads go on
        assert view.item("new.txt") is None
        gdrive_server.upload_quota_exceeded(False)  # the next day
        wait_for(lambda: view.item("new.txt") is not None, timeout=60)
        assert view.get("new.txt") == b"waits for tomorrow"
        wait_for(lambda: os.getxattr(gw.mnt / "new.txt", "user.cloudgw.state") == b"clean")
        wait_for(lambda: gw.status()["remotes"] == {})
        gw.umount()
    finally:
        gdrive_server.upload_quota_exceeded(False)
        gw.force_cleanup()
    assert not gw.bad_log_lines()


# -- deletes ----------------------------------------------------------------------------------------


def test_deletes_go_to_the_drive_trash(gd, gdrive_server):  # noqa: ANN001
    gw, view, backdoor = gd, gd.backend.view, gdrive_server.backdoor
    (gw.mnt / "d").mkdir()
    (gw.mnt / "d" / "inner.txt").write_text("in a folder")
    (gw.mnt / "notes.txt").write_text("keep me around")
    gw.sync()
    notes, folder = view.id("notes.txt"), view.id("d")
    os.unlink(gw.mnt / "notes.txt")
    (gw.mnt / "d" / "inner.txt").unlink()
    os.rmdir(gw.mnt / "d")
    gw.sync()
    assert backdoor.get(notes)["trashed"] and backdoor.read(notes) == b"keep me around"  # recoverable
    assert backdoor.get(folder)["trashed"]
    assert view.files() == {}


def test_with_trash_false_deletes_are_permanent(gdrive_server, tmp_path):  # noqa: ANN001
    gw = _gateway_with(gdrive_server, tmp_path, "trash=false")
    view, backdoor = gw.backend.view, gdrive_server.backdoor
    try:
        gw.mount()
        (gw.mnt / "scratch.txt").write_text("gone for good")
        gw.sync()
        fid = view.id("scratch.txt")
        os.unlink(gw.mnt / "scratch.txt")
        gw.sync()
        assert backdoor.get(fid) is None
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


# -- sign-in ------------------------------------------------------------------------------------------


def test_a_revoked_sign_in_waits_for_cloudgw_login_and_loses_nothing(gdrive_server, tmp_path):  # noqa: ANN001
    from tests.gdrive_support import AUTH_URL, browser_redirect, gdrive_options, sign_in

    gw = _gateway_with(gdrive_server, tmp_path)
    view, token = gw.backend.view, tmp_path / "gdrive-token.json"  # the file the backend's options name
    gw.expected_warnings += [r"login required", r"poll failed", r"upload .* failed"]
    try:
        gw.mount()
        (gw.mnt / "before.txt").write_text("uploaded while signed in")
        gw.sync()
        gdrive_server.revoke()  # the user removed the app's access, or changed the password
        gdrive_server.expire_access_tokens()
        (gw.mnt / "waiting.txt").write_text("written while nobody is signed in")
        status = wait_for(lambda: (s := gw.status()).get("remotes", {}).get("", {}).get("state") == "login required"
                          and s, timeout=30)
        assert "cloudgw login" in status["remotes"][""]["detail"]
        assert view.item("waiting.txt") is None

        config = tmp_path / "drive.toml"
        options = gdrive_options(gdrive_server, token)
        config.write_text("\n".join(["[remotes.drive]", f'url = "{gw.remote_url}"',
                                     *(f'{k} = "{v}"' for k, v in options.items())]) + "\n")
        proc = subprocess.Popen([CLOUDGW, "login", "--config", str(config), "--no-browser", "drive"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "OAUTHLIB_INSECURE_TRANSPORT": "1"})
        try:
            assert proc.stdout is not None and proc.stdin is not None
            while not (found := AUTH_URL.search(line := proc.stdout.readline())):
                assert line, "no sign-in URL"
            gdrive_server.approve_next()
            proc.stdin.write(browser_redirect(found.group(1)) + "\n")
            proc.stdin.close()
            assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            proc.kill()
        assert oct(os.stat(token).st_mode & 0o777) == "0o600"
        # no remount: the daemon reads the new sign-in at its next request and retries what waited
        wait_for(lambda: view.item("waiting.txt") is not None, timeout=60)
        assert view.get("waiting.txt") == b"written while nobody is signed in"
        wait_for(lambda: gw.status()["remotes"] == {})
        gw.umount()
    finally:
        gw.force_cleanup()
        sign_in(gdrive_server, gdrive_server.token_template, gdrive_server.client_secret_path)  # revoked too
    assert not gw.bad_log_lines()
    saved = json.loads(token.read_text())  # secrets never reach the (DEBUG) log
    assert saved["refresh_token"] not in gw.log() and "upload_id=" not in gw.log()
