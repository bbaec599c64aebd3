"""The mount as a backup target, as a NAS administrator uses it: a system-like tree with
FIFOs, device nodes, sockets, symlinks, hard-link groups, ACLs, xattrs and odd modes goes in
with ``rsync -aHAX``, survives a kill -9 of the daemon and a remount with an empty cache, and
comes back out equal (``rsync -n --itemize-changes`` finds nothing); ``tar --xattrs
--acls`` round-trips the same tree.  Link groups are kept by the gateway's metadata store,
so they are compared (``-H``) wherever the cache is the same, not after an empty cache."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.mount.gateway import Gateway

pytestmark = pytest.mark.mount

RSYNC = ["rsync", "-aHAX", "--numeric-ids"]  # with the same cache: link groups (-H) too
RSYNC_NO_LINKS = ["rsync", "-aAX", "--numeric-ids"]  # an empty cache: each name a file of its own (Phase 2)


def _run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
    return proc.stdout


def make_system_tree(root: Path) -> None:
    (root / "etc" / "ssl").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("nas\n")
    (root / "etc" / "ssl" / "key.pem").write_bytes(os.urandom(3000))
    os.chmod(root / "etc" / "ssl" / "key.pem", 0o600)
    os.chown(root / "etc" / "ssl" / "key.pem", 0, 101)
    os.symlink("ssl/key.pem", root / "etc" / "key-link")
    (root / "dev").mkdir()
    os.mknod(root / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "dev" / "sda", stat.S_IFBLK | 0o660, os.makedev(8, 0))
    os.chmod(root / "dev" / "null", 0o666)
    os.chmod(root / "dev" / "sda", 0o660)
    os.chown(root / "dev" / "sda", 0, 6)
    os.mkfifo(root / "dev" / "initctl", 0o600)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(root / "dev" / "log"))
    s.close()
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "sudo").write_bytes(b"\x7fELF" + os.urandom(500))
    os.chmod(root / "usr" / "bin" / "sudo", 0o4755)
    perl = root / "usr" / "bin" / "perl"  # hard links: two names in one directory ...
    perl.write_bytes(b"\x7fELF" + os.urandom(700))
    os.chmod(perl, 0o755)
    os.link(perl, root / "usr" / "bin" / "perl5.36.0")
    zone = root / "usr" / "share" / "zoneinfo"  # ... and three in two directories
    (zone / "Etc").mkdir(parents=True)
    (zone / "Etc" / "UTC").write_bytes(b"TZif2" + os.urandom(100))
    os.link(zone / "Etc" / "UTC", zone / "UTC")
    os.link(zone / "UTC", zone / "Zulu")
    os.utime(zone / "Zulu", ns=(1_650_000_000_111_111_111, 1_650_000_000_222_222_222))
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "home" / "alice").mkdir(parents=True)
    (root / "home" / "alice" / "notes.txt").write_text("private")
    os.chown(root / "home" / "alice", 1000, 1000)
    os.chown(root / "home" / "alice" / "notes.txt", 1000, 1000)
    os.setxattr(root / "home" / "alice" / "notes.txt", "user.mime_type", b"text/plain")
    os.setxattr(root / "home" / "alice" / "notes.txt", "security.NTACL", b"\x01\x02\x03")
    _run("setfacl", "-m", "u:2000:r", str(root / "home" / "alice" / "notes.txt"))
    _run("setfacl", "-d", "-m", "g:100:rwx", str(root / "home" / "alice"))
    os.utime(root / "etc" / "hostname", ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))


def differences(src: Path, dst: Path, *exclude: str, options: tuple[str, ...] = tuple(RSYNC)) -> list[str]:
    """What ``rsync -n -i`` would still change to make ``dst`` equal ``src`` (empty: equal)."""
    out = _run(*options, "-n", "-i", "--delete", *(f"--exclude={e}" for e in exclude), f"{src}/", f"{dst}/")
    return [line for line in out.splitlines() if line.strip()]


# What a gateway with an empty cache gets back from each remote (README, "What each remote
# keeps"): ACLs, extended attributes and hard-link groups (each name is an object of its own)
# live in the gateway's metadata store only; times of
# directories (they move with every upload into them), symlinks and special files are not
# kept; S3 listings carry no object metadata, so modes, owners and times come back as the
# mount's defaults.  Names, content, symlinks and special files (type, device, mode, owner)
# come back everywhere; file mtimes where the remote keeps them (checked apart, to the ns).
KEPT_BY_THE_REMOTE = {"file": ("rsync", "-rlpgoD", "--numeric-ids", "--checksum"),
                      "moto": ("rsync", "-rlD", "--checksum")}
FILE_MTIMES_KEPT = {"file": True, "moto": False}


def file_mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_mtime_ns for p in root.rglob("*") if p.is_file()
            and not p.is_symlink()}


@pytest.fixture(autouse=True)
def _with_acls(gw: Gateway) -> None:
    """The mount as a backup target of ACLs: ``--acl``."""
    gw.umount()
    gw.args = (*gw.args, "--acl")
    gw.mount()


def test_rsync_a_system_tree_in_crash_remount_empty_cache_and_back_out(gw: Gateway, tmp_path: Path):
    src = tmp_path / "src"
    make_system_tree(src)
    backup = gw.mnt / "backup"
    _run(*RSYNC, f"{src}/", f"{backup}/")
    assert differences(src, backup) == []
    gw.sync()
    gw.kill9()
    gw.mount()
    diff = differences(src, backup)
    assert diff == [], "\n".join(diff)  # after kill -9: all of it, from the cache and its metadata
    restored = tmp_path / "restored"
    _run(*RSYNC, f"{backup}/", f"{restored}/")
    assert differences(src, restored) == []

    gw.umount()
    shutil.rmtree(gw.cache_dir)  # a new gateway: only what the remote holds
    gw.mount()
    fresh = tmp_path / "fresh"
    _run(*RSYNC_NO_LINKS, f"{backup}/", f"{fresh}/")
    name = gw.backend.name  # type: ignore[attr-defined]
    diff = differences(src, fresh, options=KEPT_BY_THE_REMOTE[name])
    assert diff == [], "\n".join(diff)
    if FILE_MTIMES_KEPT[name]:
        assert file_mtimes(fresh) == file_mtimes(src)
    for name, kind in [("dev/null", stat.S_IFCHR), ("dev/sda", stat.S_IFBLK), ("dev/initctl", stat.S_IFIFO),
                       ("dev/log", stat.S_IFSOCK)]:
        assert stat.S_IFMT(os.lstat(fresh / name).st_mode) == kind


def test_rsync_a_system_tree_back_from_a_remount(gw: Gateway, tmp_path: Path):
    """The same tree restored from the same cache after a clean remount, and with tar."""
    src = tmp_path / "src"
    make_system_tree(src)
    _run(*RSYNC, f"{src}/", f"{gw.mnt}/backup/")
    gw.umount()
    gw.mount()
    restored = tmp_path / "restored"
    _run(*RSYNC, f"{gw.mnt}/backup/", f"{restored}/")
    assert differences(src, restored) == []
    tarball = tmp_path / "t.tar"
    _run("tar", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner", "-cf", str(tarball),
         "-C", str(gw.mnt / "backup"), ".")
    untar = tmp_path / "untar"
    untar.mkdir()
    _run("tar", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner", "-xpf", str(tarball), "-C", str(untar))
    assert differences(src, untar, "/dev/log") == []  # (tar archives no sockets: "socket ignored")
