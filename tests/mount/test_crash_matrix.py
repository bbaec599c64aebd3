"""The daemon killed (SIGKILL) at each step of the upload path and of applying a
remote change, at deterministic points (CLOUDGW_CRASH_AT, see cloudgw/crashpoints.py).
After a restart: no lost data, no duplicates (conflict copies), no resurrected
deletes, and fsck finds no error."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from tests.mount.gateway import run_cli
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount

UPLOAD_POINTS = ["upload-after-state", "upload-mid-transfer", "upload-after-remote-ack", "upload-after-commit"]
POLL_POINTS = ["poll-before-apply", "poll-mid-apply"]


def daemon_alive(gw) -> bool:  # noqa: ANN001
    return subprocess.run(["pgrep", "-f", f"cloudgw mount .* {gw.mnt} "], capture_output=True).returncode == 0


def crash_at(gw, point: str) -> None:  # noqa: ANN001
    gw.env["CLOUDGW_CRASH_AT"] = point
    try:
        gw.mount()
    finally:
        del gw.env["CLOUDGW_CRASH_AT"]


def settle_after_crash(gw) -> None:  # noqa: ANN001
    wait_for(lambda: not daemon_alive(gw), timeout=60)
    subprocess.run(["fusermount3", "-u", "-z", str(gw.mnt)], capture_output=True)
    wait_for(lambda: not os.path.ismount(gw.mnt), timeout=10)
    gw.mount()
    gw.sync()


def assert_fsck_clean(gw) -> None:  # noqa: ANN001
    gw.umount()
    proc = run_cli("fsck", str(gw.cache_dir), "--json", env=gw.env, check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["errors"] == 0, report
    gw.mount()


@pytest.mark.parametrize("point", UPLOAD_POINTS)
def test_crash_in_upload_path(gw, point: str):
    view = gw.backend.view
    (gw.mnt / "old.txt").write_text("to be deleted")
    gw.sync()
    gw.umount()
    big = os.urandom(20 * 1024 * 1024 + 5)  # multipart on S3
    crash_at(gw, point)
    (gw.mnt / "a.txt").write_text("small")
    (gw.mnt / "big.bin").write_bytes(big)
    os.unlink(gw.mnt / "old.txt")
    run_cli("sync", str(gw.mnt), env=gw.env, check=False)  # uploads start now; the daemon dies at the point
    settle_after_crash(gw)
    files = view.files()
    assert files == {"a.txt": 5, "big.bin": len(big)}, files  # no conflict copies, no resurrected delete
    assert view.get("a.txt") == b"small"
    assert hashlib.sha256(view.get("big.bin")).digest() == hashlib.sha256(big).digest()
    assert sorted(os.listdir(gw.mnt)) == ["a.txt", "big.bin"]
    assert gw.status()["conflicts"] == 0
    if hasattr(view, "client"):  # S3: the interrupted multipart upload was aborted, not orphaned
        uploads = view.client.list_multipart_uploads(Bucket=view.bucket).get("Uploads", [])
        assert uploads == [], uploads
    assert_fsck_clean(gw)


@pytest.mark.parametrize("point", POLL_POINTS)
def test_crash_while_applying_remote_changes(gw, point: str):
    view = gw.backend.view
    (gw.mnt / "seen.txt").write_text("v1")
    (gw.mnt / "gone.txt").write_text("bye")
    gw.sync()
    gw.umount()
    view.put("seen.txt", b"version two")
    view.delete("gone.txt")
    view.put("new.txt", b"new")
    crash_at(gw, point)
    settle_after_crash(gw)
    gw.poll()
    assert sorted(os.listdir(gw.mnt)) == ["new.txt", "seen.txt"]
    assert (gw.mnt / "seen.txt").read_bytes() == b"version two"
    assert view.files() == {"new.txt": 3, "seen.txt": 11}
    assert_fsck_clean(gw)


LINK_POINTS = ["link-before-remote", "link-after-remote", "link-after-commit"]


@pytest.mark.parametrize("point", LINK_POINTS)
def test_crash_while_placing_a_hard_link(gw, point: str):
    """A hard link's name is its own object on the remote (cloudgw/sync/hard_links.py): killed
    before, during (acknowledged, not committed) or after its placement, the restart ends with
    both names as one inode here and two equal objects there -- no conflict copy (the redo
    recognises its own object), fsck clean."""
    view = gw.backend.view
    (gw.mnt / "a.txt").write_text("linked")
    gw.sync()
    gw.umount()
    crash_at(gw, point)
    os.link(gw.mnt / "a.txt", gw.mnt / "b.txt")
    run_cli("sync", str(gw.mnt), env=gw.env, check=False)  # the link is placed now; the daemon dies at the point
    settle_after_crash(gw)
    assert view.files() == {"a.txt": 6, "b.txt": 6}
    assert view.get("b.txt") == b"linked"
    a, b = os.lstat(gw.mnt / "a.txt"), os.lstat(gw.mnt / "b.txt")
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert gw.status()["conflicts"] == 0
    assert_fsck_clean(gw)


def test_crash_while_swapped_names_step_aside(gw):
    """Killed right after the first remote move of a ring of renames (``mv a t; mv b a;
    mv t b``: one steps aside to a temporary name, see ``Uploader._step_aside``).  The redo
    adopts its own earlier move; nothing is lost and no temporary name is left."""
    view, m = gw.backend.view, gw.mnt
    for d, f, text in (("a", "x", "was in a"), ("b", "y", "was in b")):
        (m / d).mkdir()
        (m / d / f).write_text(text)
    (m / "p.txt").write_text("was p")
    (m / "q.txt").write_text("was q!")
    gw.sync()
    gw.umount()
    gw.env["CLOUDGW_CRASH_AT"] = "move-after-remote"
    try:
        gw.mount("--write-back", "3600")  # every rename below happens before any upload
        for one, other in (("a", "b"), ("p.txt", "q.txt")):
            os.rename(m / one, m / "t")
            os.rename(m / other, m / one)
            os.rename(m / "t", m / other)
        run_cli("sync", str(m), "--wait", "--timeout", "60", env=gw.env, check=False)  # dies in it
    finally:
        del gw.env["CLOUDGW_CRASH_AT"]
    wait_for(lambda: not daemon_alive(gw), timeout=60)
    subprocess.run(["fusermount3", "-u", "-z", str(m)], capture_output=True)
    wait_for(lambda: not os.path.ismount(m), timeout=10)
    gw.mount("--poll-interval", "3600")  # the redo first: a poll in between is the documented other case
    gw.sync()
    assert view.files() == {"a/y": 8, "b/x": 8, "p.txt": 6, "q.txt": 5}
    assert view.get("b/x") == b"was in a" and view.get("p.txt") == b"was q!"
    gw.poll()
    assert sorted(os.listdir(m)) == ["a", "b", "p.txt", "q.txt"]
    assert (m / "a" / "y").read_text() == "was in b" and (m / "q.txt").read_text() == "was p"
    assert_fsck_clean(gw)
