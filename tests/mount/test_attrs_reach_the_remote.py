"""chmod, chown, touch and ``rsync -a`` of files and directories already on the remote, through
the real mount: the remote (file://: the directory; S3: the object metadata) holds the new
attributes after ``sync``, a gateway with an empty cache shows them (file://; S3 listings
carry no metadata), and a kill -9 between the remote change and its commit loses nothing."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.mount.gateway import Gateway, run_cli
from tests.mount.test_crash_matrix import assert_fsck_clean, crash_at, settle_after_crash
from tests.mount.util import extra_gateway

pytestmark = pytest.mark.mount

T1, T2, T3 = 1_600_000_000_123_456_789, 1_500_000_000_000_000_001, 1_400_000_000_987_654_000
DIR_MARKER = "/"


def remote_attrs(gw: Gateway, path: str, *, directory: bool = False) -> tuple[int | None, ...]:
    """(mode, uid, gid, mtime_ns) of ``path`` as the remote holds them."""
    view = gw.backend.view  # type: ignore[attr-defined]
    if hasattr(view, "root"):
        st = os.lstat(view.root / path)
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns
    key = view._key(path) + (DIR_MARKER if directory else "")
    meta = view.client.head_object(Bucket=view.bucket, Key=key)["Metadata"]
    num = [meta.get(f"cloudgw-{n}") for n in ("mode", "uid", "gid", "mtime")]
    return tuple(None if v is None else int(v, 8 if i == 0 else 10) for i, v in enumerate(num))


def local_attrs(path: Path) -> tuple[int, int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns


def make_tree(root: Path) -> None:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "secret.txt").write_text("the password")
    (root / "docs" / "report.pdf").write_bytes(os.urandom(20_000))
    (root / "tool").write_bytes(b"\x7fELF" + os.urandom(100))


def test_chmod_chown_touch_reach_the_remote(gw: Gateway, tmp_path: Path):
    mnt = gw.mnt
    make_tree(mnt)
    gw.sync()
    os.chmod(mnt / "docs" / "secret.txt", 0o600)
    os.chown(mnt / "docs" / "report.pdf", 1000, 1001)
    os.utime(mnt / "docs" / "report.pdf", ns=(T1, T1))
    os.chown(mnt / "tool", 0, 50)
    os.chmod(mnt / "tool", 0o4755)  # set-user-ID: kept on the remote too (its owner is set first)
    subprocess.run(["touch", "-m", "-d", "2020-01-02 03:04:05.25 UTC", str(mnt / "tool")], check=True)
    os.chmod(mnt / "docs", 0o750)
    os.utime(mnt / "docs", ns=(T2, T2))  # last: the directory's own time, as rsync sets it
    gw.sync()
    assert remote_attrs(gw, "docs/secret.txt")[0] == 0o600
    assert remote_attrs(gw, "docs/report.pdf")[1:] == (1000, 1001, T1)
    assert remote_attrs(gw, "tool") == (0o4755, 0, 50, 1_577_934_245_250_000_000)
    assert remote_attrs(gw, "docs", directory=True)[0] == 0o750
    assert remote_attrs(gw, "docs", directory=True)[3] == T2
    gw.poll()  # our own changes are not taken for someone else's: same content, same attributes
    assert (mnt / "docs" / "secret.txt").read_text() == "the password"
    assert local_attrs(mnt / "docs" / "secret.txt")[0] == 0o600
    assert local_attrs(mnt / "tool")[0] == 0o4755
    assert gw.status()["conflicts"] == 0


def test_rsync_a_over_an_uploaded_tree_sets_times_and_modes_on_the_remote(gw: Gateway, tmp_path: Path):
    """rsync -a of the same content with other times and modes changes only attributes
    (``--size-only``: no file is rewritten): they reach the remote all the same."""
    src = tmp_path / "src"
    make_tree(src)
    subprocess.run(["rsync", "-a", f"{src}/", f"{gw.mnt}/backup/"], check=True)
    gw.sync()
    for p, mode, t in [("docs/secret.txt", 0o640, T1), ("docs/report.pdf", 0o444, T2), ("tool", 0o2755, T3),
                       ("docs", 0o700, T2)]:
        os.chmod(src / p, mode)
        os.utime(src / p, ns=(t, t))
    subprocess.run(["rsync", "-a", "--size-only", f"{src}/", f"{gw.mnt}/backup/"], check=True)
    gw.sync()
    for p in ("docs/secret.txt", "docs/report.pdf", "tool", "docs"):
        want = local_attrs(src / p)
        assert local_attrs(gw.mnt / "backup" / p) == want
        got = remote_attrs(gw, f"backup/{p}", directory=p == "docs")
        assert (got[0], got[3]) == (want[0], want[3]), p


@pytest.mark.parametrize("backend", ["file"], indirect=True)
def test_a_gateway_with_an_empty_cache_shows_the_new_attributes(gw: Gateway, tmp_path: Path):
    make_tree(gw.mnt)
    gw.sync()
    os.chmod(gw.mnt / "docs" / "secret.txt", 0o600)
    os.chown(gw.mnt / "docs" / "secret.txt", 1000, 1000)
    os.utime(gw.mnt / "tool", ns=(T1, T1))
    os.chmod(gw.mnt / "docs", 0o711)
    os.utime(gw.mnt / "docs", ns=(T2, T2))
    gw.sync()
    with extra_gateway(gw.backend, tmp_path) as fresh:  # type: ignore[attr-defined]
        for p in ("docs/secret.txt", "tool", "docs"):
            assert local_attrs(fresh.mnt / p) == local_attrs(gw.mnt / p), p
        assert (fresh.mnt / "docs" / "secret.txt").read_text() == "the password"


def test_kill_9_between_the_remote_change_and_its_commit_loses_nothing(gw: Gateway):
    make_tree(gw.mnt)
    report = (gw.mnt / "docs" / "report.pdf").read_bytes()
    gw.sync()
    gw.umount()
    crash_at(gw, "attrs-after-remote")
    os.chmod(gw.mnt / "docs" / "report.pdf", 0o600)
    os.utime(gw.mnt / "docs" / "report.pdf", ns=(T1, T1))
    run_cli("sync", str(gw.mnt), env=gw.env, check=False)  # the daemon dies at the point
    settle_after_crash(gw)
    assert remote_attrs(gw, "docs/report.pdf")[::3] == (0o600, T1)
    assert local_attrs(gw.mnt / "docs" / "report.pdf")[::3] == (0o600, T1)
    assert (gw.mnt / "docs" / "report.pdf").read_bytes() == report
    assert sorted(gw.backend.view.files()) == ["docs/report.pdf", "docs/secret.txt", "tool"]  # type: ignore
    assert gw.status()["conflicts"] == 0
    assert_fsck_clean(gw)
