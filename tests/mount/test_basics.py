"""A user's first minutes with the mount, on file://, S3 (moto) and WebDAV (Apache, wsgidav)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from tests.mount.conftest import CORE_BACKENDS, Backend, backend_for
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount


@pytest.fixture(params=CORE_BACKENDS)
def backend(request, tmp_path: Path) -> Backend:  # noqa: ANN001
    """The core cases run on WebDAV (Apache, wsgidav) too."""
    return backend_for(request, tmp_path)


def test_files_written_appear_on_remote(gw):
    view = gw.backend.view
    (gw.mnt / "docs").mkdir()
    (gw.mnt / "docs" / "hello.txt").write_text("hello")
    (gw.mnt / "empty").write_bytes(b"")
    assert (gw.mnt / "docs" / "hello.txt").read_text() == "hello"
    gw.sync()
    assert view.get("docs/hello.txt") == b"hello"
    assert view.files() == {"docs/hello.txt": 5, "empty": 0}
    assert os.getxattr(gw.mnt / "docs" / "hello.txt", "user.cloudgw.state") == b"clean"


def test_upload_happens_by_itself_after_write_back_delay(gw):
    (gw.mnt / "auto.txt").write_text("x" * 1000)
    wait_for(lambda: gw.backend.view.files().get("auto.txt") == 1000)


def test_rename_and_delete_including_dirty(gw):
    view = gw.backend.view
    (gw.mnt / "a").mkdir()
    (gw.mnt / "a" / "f1").write_text("one")
    (gw.mnt / "a" / "f2").write_text("two")
    gw.sync()
    os.rename(gw.mnt / "a", gw.mnt / "b")
    (gw.mnt / "b" / "f1").write_text("one-edited")
    os.rename(gw.mnt / "b" / "f2", gw.mnt / "top")
    (gw.mnt / "scratch").write_text("temporary")
    os.unlink(gw.mnt / "scratch")
    gw.sync()
    assert view.files() == {"b/f1": 10, "top": 3}
    assert view.get("b/f1") == b"one-edited"
    assert sorted(os.listdir(gw.mnt)) == ["b", "top"]


def test_outside_changes_appear_within_poll_interval(gw):
    view = gw.backend.view
    view.put("outside/new.txt", b"from elsewhere")
    wait_for(lambda: (gw.mnt / "outside" / "new.txt").exists(), timeout=10)
    assert (gw.mnt / "outside" / "new.txt").read_bytes() == b"from elsewhere"
    view.put("outside/new.txt", b"edited elsewhere, longer")
    wait_for(lambda: (gw.mnt / "outside" / "new.txt").read_bytes() == b"edited elsewhere, longer", timeout=10)
    view.delete("outside/new.txt")
    wait_for(lambda: not (gw.mnt / "outside" / "new.txt").exists(), timeout=10)


def test_a_name_looked_for_before_it_existed_appears_when_made_elsewhere(gw):
    """The kernel keeps "no such file" answers for the entry timeout (60 s): a name created on
    the remote must still show as soon as a poll finds it, not a minute later."""
    (gw.mnt / "shared").mkdir()
    (gw.mnt / "shared" / "old.txt").write_bytes(b"here first")
    gw.sync()
    for _ in range(3):  # as Samba or a build tool asks, again and again
        assert not (gw.mnt / "shared" / "report.txt").exists()
        assert not (gw.mnt / "later" / "deep.txt").exists()
    gw.backend.view.put("shared/report.txt", b"made elsewhere")
    gw.backend.view.put("later/deep.txt", b"in a new folder")
    gw.poll()
    # the invalidation follows the poll within milliseconds; a cached "no such file" would
    # last the whole entry timeout, three times this wait
    wait_for(lambda: (gw.mnt / "shared" / "report.txt").exists(), timeout=20)
    assert (gw.mnt / "shared" / "report.txt").read_bytes() == b"made elsewhere"
    wait_for(lambda: (gw.mnt / "later" / "deep.txt").exists(), timeout=20)
    assert (gw.mnt / "later" / "deep.txt").read_bytes() == b"in a new folder"
    (gw.mnt / "shared" / "report.txt").unlink()  # and names made here replace the kernel's "none" at once
    assert not (gw.mnt / "shared" / "report.txt").exists()
    (gw.mnt / "shared" / "report.txt").write_bytes(b"again, here")
    assert (gw.mnt / "shared" / "report.txt").read_bytes() == b"again, here"


def test_posix_attributes_symlinks_and_xattrs(gw):
    p = gw.mnt / "f"
    p.write_text("data")
    os.chmod(p, 0o600)
    os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    os.chown(p, 1234, 5678)
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime_ns == 1_600_000_000_000_000_000
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.symlink("f", gw.mnt / "link")
    assert os.readlink(gw.mnt / "link") == "f" and (gw.mnt / "link").read_text() == "data"
    os.setxattr(p, "user.color", b"blue")
    assert os.getxattr(p, "user.color") == b"blue"
    assert "user.color" in os.listxattr(p)
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.cloudgw.state", b"clean")
    assert e.value.errno == errno.EPERM
    with open(p, "r+b") as f:
        f.truncate(2)
    assert p.read_bytes() == b"da"
    assert os.statvfs(gw.mnt).f_bavail > 0


def test_inodes_modes_and_mtimes_survive_remount(gw):
    (gw.mnt / "d").mkdir()
    (gw.mnt / "d" / "f").write_text("x")
    os.chmod(gw.mnt / "d" / "f", 0o640)
    before = {n: os.stat(gw.mnt / n) for n in ("d", "d/f")}
    gw.umount()
    gw.mount()
    for name, st in before.items():
        now = os.stat(gw.mnt / name)
        assert (now.st_ino, now.st_mode, now.st_mtime_ns, now.st_uid) == (st.st_ino, st.st_mode, st.st_mtime_ns, st.st_uid)


def test_names_swapped_before_the_upload_reach_the_remote(gw):
    """``mv a t; mv b a; mv t b`` before the write-back: each remote object sits where the other
    must go (a ring).  One steps aside to a temporary name, and both arrive."""
    m, view = gw.mnt, gw.backend.view
    (m / "a").mkdir()
    (m / "a" / "x").write_text("was in a")
    (m / "b").mkdir()
    (m / "b" / "y").write_text("was in b")
    (m / "p.txt").write_text("was p")
    (m / "q.txt").write_text("was q!")
    gw.sync()
    gw.umount()
    gw.mount("--write-back", "3600")  # the renames below all happen before any upload
    for one, other in (("a", "b"), ("p.txt", "q.txt")):
        os.rename(m / one, m / "t")
        os.rename(m / other, m / one)
        os.rename(m / "t", m / other)
    gw.sync()
    assert view.files() == {"a/y": 8, "b/x": 8, "p.txt": 6, "q.txt": 5}
    assert view.get("a/y") == b"was in b" and view.get("p.txt") == b"was q!"
    assert gw.log().count("form a ring") >= 2
    gw.poll()
    assert (m / "b" / "x").read_text() == "was in a" and (m / "q.txt").read_text() == "was p"
    assert sorted(os.listdir(m)) == ["a", "b", "p.txt", "q.txt"]
