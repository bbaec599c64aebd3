"""Extended attributes through the mount beyond ``user.*``: what Samba and backup tools
running as root keep there (``security.NTACL`` from Samba's acl_xattr, ``trusted.*``)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from tests.mount.gateway import Gateway

NTACL = bytes(range(256)) * 3  # a binary blob, as Samba's NTACL is


def test_security_and_trusted_attributes_are_kept_and_copied_by_rsync(file_gw: Gateway, tmp_path: Path):
    gw = file_gw
    f, d = gw.mnt / "share.docx", gw.mnt / "folder"
    f.write_bytes(b"doc")
    d.mkdir()
    os.symlink("share.docx", gw.mnt / "link")
    os.setxattr(f, "security.NTACL", NTACL)
    os.setxattr(d, "trusted.backup", b"t")
    os.setxattr(gw.mnt / "link", "trusted.on-a-link", b"l", follow_symlinks=False)  # allowed on symlinks
    with pytest.raises(OSError) as refused:
        os.setxattr(f, "system.cloudgw-test", b"x")
    assert refused.value.errno == errno.EOPNOTSUPP
    gw.umount()
    gw.mount()  # kept across remounts
    assert os.getxattr(f, "security.NTACL") == NTACL
    assert os.listxattr(f) == ["security.NTACL"] and os.listxattr(d) == ["trusted.backup"]
    assert os.listxattr(gw.mnt / "link", follow_symlinks=False) == ["trusted.on-a-link"]
    with pytest.raises(OSError) as none:
        os.getxattr(gw.mnt / "folder", "security.capability")
    assert none.value.errno == errno.ENODATA
    out = tmp_path / "out"
    subprocess.run(["rsync", "-aX", f"{gw.mnt}/", f"{out}/"], check=True, capture_output=True)
    assert os.getxattr(out / "share.docx", "security.NTACL") == NTACL
    assert os.getxattr(out / "folder", "trusted.backup") == b"t"
    os.removexattr(f, "security.NTACL")
    assert os.listxattr(f) == []


def test_ls_asks_the_mount_once_for_labels_and_acls_not_once_per_entry(file_gw: Gateway, tmp_path: Path):
    """``ls -l`` asks every entry for its SELinux label and its POSIX ACL, and FUSE caches
    neither answer: "none" (ENODATA) would cost two GETXATTR round trips per entry.  The mount
    answers "not supported" for a label or ACL it does not have (ACLs: without --acl), after
    which coreutils stops asking for the whole filesystem; what the listing shows is unchanged.
    A label that is set is still kept, so a backup of an SELinux host keeps its labels."""
    gw = file_gw
    for d in range(3):
        (gw.mnt / f"dir{d}").mkdir()
        for i in range(100):
            (gw.mnt / f"dir{d}" / f"f{i}.txt").write_bytes(b"x")
    traced = subprocess.run(["strace", "-f", "-qq", "-e", "trace=getxattr,lgetxattr", "ls", "-lR", str(gw.mnt)],
                            capture_output=True, text=True)
    assert traced.returncode == 0, traced.stderr[-2000:]
    calls = [line for line in traced.stderr.splitlines() if "xattr(" in line]
    assert len(calls) <= 3, calls[:10]  # the label once, the ACL once (and a directory's default ACL)
    assert all("EOPNOTSUPP" in call for call in calls), calls
    entries = [line for line in traced.stdout.splitlines() if line.startswith("-rw")]
    assert len(entries) == 300 and not any(line.split()[0].endswith(("+", ".")) for line in entries)
    f = gw.mnt / "dir0" / "f0.txt"
    for refused in (lambda: os.getxattr(f, "security.selinux"), lambda: os.removexattr(f, "security.selinux"),
                    lambda: os.getxattr(f, "system.posix_acl_access"),
                    lambda: os.removexattr(f, "system.posix_acl_access")):  # (setfacl's refusal: test_acls.py)
        with pytest.raises(OSError) as error:
            refused()
        assert error.value.errno == errno.EOPNOTSUPP
    acl = subprocess.run(["getfacl", "-cp", str(f)], capture_output=True, text=True, check=True).stdout
    assert acl.split() == ["user::rw-", "group::r--", "other::r--"]  # the mode, as on any filesystem without ACLs

    label = b"system_u:object_r:user_home_t:s0"
    src = tmp_path / "selinux-host"
    src.mkdir()
    (src / "home.txt").write_bytes(b"labelled")
    os.setxattr(src / "home.txt", "security.selinux", label)
    subprocess.run(["rsync", "-aX", f"{src}/", f"{gw.mnt}/backup/"], check=True, capture_output=True)
    gw.umount()
    gw.mount()
    assert os.getxattr(gw.mnt / "backup" / "home.txt", "security.selinux") == label
    assert os.listxattr(gw.mnt / "backup" / "home.txt") == ["security.selinux"]
    back = tmp_path / "restored"
    subprocess.run(["rsync", "-aX", f"{gw.mnt}/backup/", f"{back}/"], check=True, capture_output=True)
    assert os.getxattr(back / "home.txt", "security.selinux") == label
