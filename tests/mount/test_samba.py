"""The mount re-exported over SMB: a private smbd (tests/servers/samba.py) shares the
real FUSE mount on a loopback port with the settings of contrib/samba/smb.conf.example,
and the real ``smbclient`` (and, for SMB2 FLUSH, which smbclient never sends, the
``smbprotocol`` client) does what an office PC does: copy big and many small files in
and out, make, rename and delete folders, overwrite, set DOS attributes (kept in the
``user.DOSATTRIB`` xattr, across a remount) and read them back with ``allinfo``.
Everything that reaches the share must reach the remote."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterator

import pytest

from tests.mount.gateway import Gateway
from tests.mount.util import wait_for
from tests.servers.samba import SambaServer, start_samba

pytestmark = pytest.mark.mount


@pytest.fixture
def smb(gw: Gateway) -> Iterator[SambaServer]:
    with start_samba(gw.mnt) as server:
        yield server


@pytest.fixture
def file_smb(file_gw: Gateway) -> Iterator[SambaServer]:
    with start_samba(file_gw.mnt) as server:
        yield server


@pytest.fixture
def s3_smb(s3_gw: Gateway) -> Iterator[SambaServer]:
    with start_samba(s3_gw.mnt) as server:
        yield server


def _view(gw: Gateway):  # noqa: ANN202
    return gw.backend.view  # type: ignore[attr-defined]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _allinfo(smb: SambaServer, name: str) -> dict[str, str]:
    """``allinfo NAME`` as a dict: attributes, times, the ``::$DATA`` stream size."""
    out = smb.smbclient(f'allinfo "{name}"')
    info = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("attributes", "create_time", "write_time", "change_time", "access_time"):
            info[key.strip()] = value.strip()
        m = re.match(r"stream: \[::\$DATA\], (\d+) bytes", line.strip())
        if m:
            info["size"] = m.group(1)
    return info


def _dos_letters(info: dict[str, str]) -> str:
    """The attribute letters of ``allinfo`` (e.g. ``RHA`` of ``attributes: RHA (23)``)."""
    return info["attributes"].split("(")[0].strip()


def test_large_file_put_and_get_reach_the_remote(gw: Gateway, smb: SambaServer, tmp_path: Path):
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    smb.smbclient(f'lcd "{tmp_path}"; put big.bin big.bin; get big.bin back.bin')
    digest = _sha256(src)
    assert _sha256(tmp_path / "back.bin") == digest
    assert _sha256(gw.mnt / "big.bin") == digest
    info = _allinfo(smb, "big.bin")
    assert info["size"] == str(64 << 20)
    gw.sync()
    assert hashlib.sha256(_view(gw).get("big.bin")).hexdigest() == digest


def test_many_small_files_in_and_out(file_gw: Gateway, file_smb: SambaServer, tmp_path: Path):
    gw, smb = file_gw, file_smb
    src = tmp_path / "small"
    src.mkdir()
    files = {f"f{i:03d}.txt": os.urandom(100 + 37 * i) for i in range(200)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    smb.smbclient(f'mkdir small; cd small; lcd "{src}"; prompt off; mput *')
    out = tmp_path / "out"
    out.mkdir()
    smb.smbclient(f'cd small; lcd "{out}"; prompt off; mget *')
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    assert {p.name: p.read_bytes() for p in (gw.mnt / "small").iterdir()} == files
    listing = smb.smbclient("cd small; ls")
    assert all(name in listing for name in files)
    gw.sync()
    assert _view(gw).files() == {f"small/{n}": len(d) for n, d in files.items()}
    assert _view(gw).get("small/f199.txt") == files["f199.txt"]


def test_mkdir_rename_delete(s3_gw: Gateway, s3_smb: SambaServer, tmp_path: Path):
    gw, smb = s3_gw, s3_smb
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "b.txt").write_bytes(b"beta")
    smb.smbclient(f'lcd "{tmp_path}"; mkdir docs; mkdir docs/sub; put a.txt docs/a.txt; put b.txt docs/sub/b.txt;'
                  ' put a.txt gone.txt')
    gw.sync()
    assert _view(gw).files() == {"docs/a.txt": 5, "docs/sub/b.txt": 4, "gone.txt": 5}
    smb.smbclient("rename docs archive; rename archive/a.txt archive/renamed.txt; del gone.txt;"
                  " mkdir empty; rmdir empty")
    assert sorted(p.relative_to(gw.mnt).as_posix() for p in gw.mnt.rglob("*")) == [
        "archive", "archive/renamed.txt", "archive/sub", "archive/sub/b.txt"]
    listing = smb.smbclient("ls")
    assert "archive" in listing and "docs" not in listing and "gone.txt" not in listing
    gw.sync()
    assert _view(gw).files() == {"archive/renamed.txt": 5, "archive/sub/b.txt": 4}
    assert _view(gw).get("archive/sub/b.txt") == b"beta"
    smb.smbclient("deltree archive")
    assert list(gw.mnt.iterdir()) == []
    gw.sync()
    assert _view(gw).files() == {}


def test_overwrite_with_a_shorter_and_a_longer_file(file_gw: Gateway, file_smb: SambaServer, tmp_path: Path):
    gw, smb = file_gw, file_smb
    versions = [os.urandom(3 << 20), os.urandom(200_000), os.urandom(5 << 20)]
    for i, data in enumerate(versions):
        (tmp_path / f"v{i}").write_bytes(data)
        smb.smbclient(f'lcd "{tmp_path}"; put v{i} doc.bin')
        assert (gw.mnt / "doc.bin").read_bytes() == data
        assert _allinfo(smb, "doc.bin")["size"] == str(len(data))
        if i == 1:  # an uploaded version is overwritten too
            gw.sync()
            assert _view(gw).get("doc.bin") == data
    smb.smbclient(f'lcd "{tmp_path}"; get doc.bin back')
    assert (tmp_path / "back").read_bytes() == versions[-1]
    gw.sync()
    assert _view(gw).get("doc.bin") == versions[-1]


def _dosattrib(path: Path) -> bytes:
    return os.getxattr(path, "user.DOSATTRIB")


def test_dos_attributes_are_kept_in_user_dosattrib_across_a_remount(file_gw: Gateway, tmp_path: Path):
    gw = file_gw
    (tmp_path / "f.txt").write_text("attributes")
    with start_samba(gw.mnt) as smb:
        smb.smbclient(f'lcd "{tmp_path}"; put f.txt f.txt; mkdir dir; put f.txt dir/plain.txt')
        smb.smbclient("setmode f.txt +h; setmode f.txt +r; setmode f.txt +a; setmode dir +h; setmode dir/plain.txt -a")
        assert set(_dos_letters(_allinfo(smb, "f.txt"))) == set("RHA")
        assert set(_dos_letters(_allinfo(smb, "dir"))) == set("DH")
        assert "A" not in _dos_letters(_allinfo(smb, "dir/plain.txt"))
        before = {n: _dosattrib(gw.mnt / n) for n in ("f.txt", "dir", "dir/plain.txt")}
        assert "user.DOSATTRIB" in os.listxattr(gw.mnt / "f.txt")
    gw.sync()
    gw.umount()
    gw.mount()
    assert {n: _dosattrib(gw.mnt / n) for n in before} == before
    with start_samba(gw.mnt) as smb:
        assert set(_dos_letters(_allinfo(smb, "f.txt"))) == set("RHA")
        assert set(_dos_letters(_allinfo(smb, "dir"))) == set("DH")
        smb.smbclient("setmode f.txt -rh")
        assert _dos_letters(_allinfo(smb, "f.txt")) == "A"
        assert (gw.mnt / "f.txt").read_text() == "attributes"


def test_allinfo_matches_the_mount(file_gw: Gateway, file_smb: SambaServer, tmp_path: Path):
    gw, smb = file_gw, file_smb
    (gw.mnt / "local.txt").write_bytes(b"x" * 12345)
    os.utime(gw.mnt / "local.txt", (1_600_000_000, 1_600_000_000))  # 2020-09-13 12:26:40 UTC
    info = _allinfo(smb, "local.txt")
    assert info["size"] == "12345"
    assert "Sep 13 12:26:40 2020" in info["write_time"]
    assert "D" not in _dos_letters(info)
    (gw.mnt / "folder").mkdir()
    assert "D" in _dos_letters(_allinfo(smb, "folder"))
    listing = smb.smbclient("ls local.txt")
    assert re.search(r"local\.txt\s+\w*\s+12345\s", listing), listing


def test_smb2_flush_is_an_fsync_into_the_cache_not_an_upload(file_gw: Gateway, file_smb: SambaServer):
    """``strict sync = yes``: an SMB2 FLUSH becomes fsync on the mount, which means "safe in
    the local cache": the file is dirty (not uploaded) while the handle stays open, and goes
    up after the close like any file."""
    from tests.servers.smb2 import smb2_create, smb2_tree, write_all

    gw = file_gw
    data = os.urandom(4 << 20)
    with smb2_tree(file_smb) as tree:
        with smb2_create(tree, "flushed.bin") as f:
            write_all(f, data)
            f.flush()
            assert os.getxattr(gw.mnt / "flushed.bin", "user.cloudgw.state") == b"dirty"
            assert (gw.mnt / "flushed.bin").read_bytes() == data
            assert "flushed.bin" not in _view(gw).files()
    wait_for(lambda: os.getxattr(gw.mnt / "flushed.bin", "user.cloudgw.state") == b"clean", timeout=60)
    assert _view(gw).get("flushed.bin") == data


def test_a_file_renamed_while_open_over_an_existing_one_like_office_saves(s3_gw: Gateway, s3_smb: SambaServer):
    """Office saves through a temporary file that it renames, still open, over the document
    (SET_INFO FileRenameInformation with replace), then writes on through the same handle."""
    from tests.servers.smb2 import rename_open, smb2_create, smb2_tree, write_all

    gw = s3_gw
    (gw.mnt / "report.docx").write_bytes(b"old version")
    gw.sync()
    first, second = os.urandom(3 << 20), os.urandom(1 << 20)
    with smb2_tree(s3_smb) as tree:
        with smb2_create(tree, "~WRL0001.tmp") as f:
            write_all(f, first)
            rename_open(f, "report.docx", replace=True)
            write_all(f, second, offset=len(first))
            f.flush()
    assert sorted(p.name for p in gw.mnt.iterdir()) == ["report.docx"]
    assert (gw.mnt / "report.docx").read_bytes() == first + second
    gw.sync()
    assert _view(gw).files() == {"report.docx": len(first) + len(second)}
    assert _view(gw).get("report.docx") == first + second
