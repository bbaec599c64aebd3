"""POSIX ACLs through the mount with the real setfacl/getfacl: access is granted and refused
as the ACL says, chmod and the ACL's mask agree, default ACLs are inherited, everything is
kept across remounts, and rsync -A / tar --acls copy them out exactly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.mount.gateway import Gateway

pytestmark = pytest.mark.mount


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _acl(path: Path) -> str:
    """getfacl's answer without the header lines (file name, owner), which differ by path."""
    return "\n".join(line for line in _run("getfacl", "-cp", str(path)).splitlines() if line)


def _errno_as(uid: int, fn) -> int:  # noqa: ANN001
    """0, or the errno ``fn`` fails with, run as ``uid`` (a forked child: setuid is one-way).
    ``fn`` gets paths relative to the mount: the child starts there, since pytest's temporary
    directories above it are root's alone (0700)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(_mount_of_test)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            fn()
            os._exit(0)
        except OSError as exc:
            os._exit(exc.errno or 1)
        except BaseException:
            os._exit(255)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


_mount_of_test = Path("/")


@pytest.fixture(autouse=True)
def _relative_to(file_gw: Gateway):  # noqa: ANN201
    """The mount with ``--acl`` (and the directory a child acts in)."""
    global _mount_of_test
    _mount_of_test = file_gw.mnt
    file_gw.umount()
    file_gw.args = (*file_gw.args, "--acl")
    file_gw.mount()


def test_acls_grant_and_are_kept_across_remounts(file_gw: Gateway):
    m = file_gw.mnt
    secret = m / "secret.txt"
    rel = Path("secret.txt")
    secret.write_text("for 2000 only")
    os.chmod(secret, 0o600)
    assert _errno_as(2000, rel.read_text) == 13  # EACCES: mode 0600, owner root
    _run("setfacl", "-m", "u:2000:r", str(secret))
    assert oct(os.stat(secret).st_mode & 0o777) == oct(0o640)  # the group bits show the mask, as on ext4
    assert _errno_as(2000, rel.read_text) == 0
    assert _errno_as(3000, rel.read_text) == 13

    os.chmod(secret, 0o600)  # chmod narrows the mask: 2000 loses read
    assert "mask::---" in _acl(secret)
    assert _errno_as(2000, rel.read_text) == 13
    os.chmod(secret, 0o640)
    assert _errno_as(2000, rel.read_text) == 0

    share = m / "share"
    share.mkdir()
    _run("setfacl", "-d", "-m", "u:2000:rwx", str(share))
    (share / "new.txt").write_text("inherited")
    old_umask = os.umask(0)  # under a default ACL ext4 ignores the umask; FUSE (without
    try:  # FUSE_DONT_MASK, which pyfuse3 does not ask for) applies it first: see filesystem/acl.py
        (share / "sub").mkdir()
    finally:
        os.umask(old_umask)
    inherited = _acl(share / "new.txt")
    assert "user:2000:rwx" in inherited and "mask::r--" in inherited  # masked by the creator's 0644
    assert "default:user:2000:rwx" in _acl(share / "sub")  # directories keep it as their default
    assert _errno_as(2000, lambda: Path("share/sub/by-2000").write_text("x")) == 0

    before = {p: _acl(m / p) for p in ("secret.txt", "share", "share/new.txt", "share/sub")}
    file_gw.sync()
    file_gw.umount()
    file_gw.mount()
    assert {p: _acl(m / p) for p in before} == before
    assert _errno_as(2000, rel.read_text) == 0

    _run("setfacl", "-b", str(secret))  # removed: the mode alone again
    assert "user:2000" not in _acl(secret)
    assert _errno_as(2000, rel.read_text) == 13


def test_rsync_and_tar_carry_acls_out_and_back(file_gw: Gateway, tmp_path: Path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("x")
    _run("setfacl", "-m", "u:2000:rw,g:3000:r", str(src / "d" / "f"))
    _run("setfacl", "-d", "-m", "g:3000:rx", str(src / "d"))
    _run("rsync", "-aAX", f"{src}/", f"{file_gw.mnt}/in/")
    assert _acl(file_gw.mnt / "in" / "d" / "f") == _acl(src / "d" / "f")
    assert _acl(file_gw.mnt / "in" / "d") == _acl(src / "d")
    back = tmp_path / "back"
    _run("rsync", "-aAX", f"{file_gw.mnt}/in/", f"{back}/")
    changes = _run("rsync", "-naAXi", "--delete", f"{src}/", f"{back}/")
    assert changes.strip() == ""
    _run("tar", "--acls", "--xattrs", "-cf", str(tmp_path / "t.tar"), "-C", str(file_gw.mnt / "in"), ".")
    (tmp_path / "untar").mkdir()
    _run("tar", "--acls", "--xattrs", "-xf", str(tmp_path / "t.tar"), "-C", str(tmp_path / "untar"))
    assert _acl(tmp_path / "untar" / "d" / "f") == _acl(src / "d" / "f")


def test_without_the_acl_option_acls_are_refused_and_stored_ones_hidden(file_gw: Gateway):
    """ACLs the kernel would not enforce must not look as if they were."""
    f = file_gw.mnt / "f"
    f.write_text("x")
    _run("setfacl", "-m", "u:2000:r", str(f))
    file_gw.umount()
    file_gw.args = tuple(a for a in file_gw.args if a != "--acl")
    file_gw.mount()
    refused = subprocess.run(["setfacl", "-m", "u:3000:r", str(f)], capture_output=True, text=True)
    assert refused.returncode != 0 and "Operation not supported" in refused.stderr
    assert "user:2000" not in _acl(f) and os.listxattr(f) == []
    file_gw.umount()
    file_gw.args = (*file_gw.args, "--acl")
    file_gw.mount()
    assert "user:2000:r--" in _acl(f)  # kept meanwhile
