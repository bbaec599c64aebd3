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
