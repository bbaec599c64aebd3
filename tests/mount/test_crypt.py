"""Client-side encryption through the real mount: what a NAS owner checks.

An encrypted remote (``cloudgw crypt init``) holds only ciphertext: no name or
string of the files can be found on it; a second gateway with the password reads
and writes the same files; ``crypt passwd`` re-keys without touching a file;
``cloudgw decrypt`` gets the files back with the password or the recovery key
alone; tampered, truncated and swapped ciphertext reads as EIO (never as wrong
bytes) and ``fsck --verify-remote`` names it; a 4 KiB edit of a large encrypted
file on S3 sends one part; kill -9 mid-upload loses nothing.  Core cases (cp,
tar, git, sqlite3, rsync) run on an encrypted S3 remote in test_programs.py.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from cloudgw.crypt import VAULT_NAME
from cloudgw.crypt import format as fmt
from tests.mount.conftest import CRYPT_PASSWORD, Backend, counted_gateway, encrypted, make_backend, write_password
from tests.mount.gateway import Gateway, run_cli
from tests.mount.test_crash_matrix import crash_at, settle_after_crash
from tests.mount.util import wait_for
from tests.servers import S3Server
from tests.servers.proxy import OutageProxy

pytestmark = pytest.mark.mount

MiB = 1 << 20
SECRET_TEXT = "Quarterly results: the Zanzibar acquisition"
SECRET_NAME = "zanzibar-board-minutes.txt"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gateway(backend: Backend, tmp_path: Path, name: str, *extra: str) -> Gateway:
    gw = Gateway(backend.url, tmp_path / f"mnt-{name}", tmp_path / f"cache-{name}", env=backend.env,
                 args=(*backend.args, *extra))
    gw.backend = backend  # type: ignore[attr-defined]
    return gw


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[list[Gateway]]:
    """Gateways the test mounts; each is unmounted (or cleaned up) and its log checked."""
    gateways: list[Gateway] = []
    yield gateways
    for gw in gateways:
        try:
            if os.path.ismount(gw.mnt):
                gw.umount()
        finally:
            gw.force_cleanup()
        bad = gw.bad_log_lines()
        assert not bad, "daemon logged unexpected warnings:\n" + "\n".join(bad[:20])


def raw_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_tree_copied_in_leaves_only_ciphertext_and_decrypts_without_a_gateway(tmp_path, mounted):
    backend = encrypted(make_backend("file", tmp_path, None), tmp_path, encrypt_names=True)
    raw_root = backend.view.raw.root
    gw = gateway(backend, tmp_path, "a")
    mounted.append(gw)
    gw.mount()
    tree = tmp_path / "tree"
    (tree / "Finance" / "2026").mkdir(parents=True)
    (tree / "Finance" / "2026" / SECRET_NAME).write_text(SECRET_TEXT * 100)
    (tree / "Finance" / "empty.txt").write_bytes(b"")
    (tree / "photo.raw").write_bytes(os.urandom(3 * fmt.CHUNK + 17))
    os.symlink(SECRET_NAME, tree / "Finance" / "link-to-minutes")
    shutil.copytree(tree, gw.mnt / "tree", symlinks=True)
    gw.sync()

    # the cloud holds neither the names nor the text, nor any name at all
    stored = raw_files(raw_root)
    assert VAULT_NAME in stored
    for path, data in stored.items():
        for secret in ("Finance", "zanzibar", "photo", "tree", "link-to"):
            assert secret not in path
        assert SECRET_TEXT.encode() not in data and b"Zanzibar" not in data
    assert not any(os.readlink(p).startswith("zanzibar") for p in raw_root.rglob("*") if p.is_symlink())
    assert len([p for p in stored if p != VAULT_NAME]) == 3  # three files, one symlink (native on file://)

    # another tool copies the objects out; the recovery key alone gets the contents back...
    copied = tmp_path / "copied"
    shutil.copytree(raw_root, copied, symlinks=True, ignore=shutil.ignore_patterns(VAULT_NAME))
    key = tmp_path / "recovery.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    out = run_cli("decrypt", str(copied), str(tmp_path / "out-key"), "--private-key", str(key))
    assert "4 files decrypted" in out.stdout  # three files and the symlink
    got = sorted(sha(p.read_bytes()) for p in (tmp_path / "out-key").rglob("*") if p.is_file())
    assert got == sorted(sha(p.read_bytes()) for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
    # ...and with the vault, the password gives the real names too
    shutil.copy(raw_root / VAULT_NAME, copied / VAULT_NAME)
    run_cli("decrypt", str(copied), str(tmp_path / "out-pw"), "--password-file", str(tmp_path / "crypt-password"))
    for rel in (f"tree/Finance/2026/{SECRET_NAME}", "tree/Finance/empty.txt", "tree/photo.raw"):
        assert (tmp_path / "out-pw" / rel).read_bytes() == (tree / rel.removeprefix("tree/")).read_bytes()
        assert (tmp_path / "out-pw" / rel).stat().st_mode & 0o777 == 0o600  # what encryption protected stays private
    assert os.readlink(tmp_path / "out-pw" / "tree" / "Finance" / "link-to-minutes") == SECRET_NAME
    # straight from the remote's URL, with the recovery key: the tree as the mount shows it
    run_cli("decrypt", backend.url, str(tmp_path / "out-url"), "--private-key", str(key))
    assert (tmp_path / "out-url" / "tree" / "Finance" / "2026" / SECRET_NAME).read_text() == SECRET_TEXT * 100
    assert (tmp_path / "out-url" / "tree" / "photo.raw").read_bytes() == (tree / "photo.raw").read_bytes()
    assert os.readlink(tmp_path / "out-url" / "tree" / "Finance" / "link-to-minutes") == SECRET_NAME
    # encrypted names are longer: a name that cannot be stored is refused when it is made
    (gw.mnt / ("n" * 143)).write_text("the longest name that fits in 255 stored characters")
    with pytest.raises(OSError) as info:
        (gw.mnt / ("n" * 144)).write_text("one byte too long")
    assert info.value.errno == errno.ENAMETOOLONG
    # and the mount itself shows the real tree
    assert os.readlink(gw.mnt / "tree" / "Finance" / "link-to-minutes") == SECRET_NAME
    assert (gw.mnt / "tree" / "Finance" / "2026" / SECRET_NAME).read_text() == SECRET_TEXT * 100


def test_a_second_gateway_shares_the_files_and_passwd_rekeys_both(tmp_path, mounted):
    backend = encrypted(make_backend("file", tmp_path, None), tmp_path)
    one, two = gateway(backend, tmp_path, "one"), gateway(backend, tmp_path, "two")
    mounted += [one, two]
    one.mount()
    two.mount()
    (one.mnt / "from-one.txt").write_text("written by the first gateway")
    one.sync()
    wait_for(lambda: (two.mnt / "from-one.txt").exists(), timeout=30)
    assert (two.mnt / "from-one.txt").read_text() == "written by the first gateway"
    (two.mnt / "from-two.bin").write_bytes(b"\x01" * 100_000)
    two.sync()
    wait_for(lambda: (one.mnt / "from-two.bin").exists(), timeout=30)
    assert (one.mnt / "from-two.bin").read_bytes() == b"\x01" * 100_000

    before = raw_files(backend.view.raw.root)
    new_password = write_password(tmp_path / "new-password", b"a new and better passphrase")
    run_cli("crypt", "passwd", backend.url, "--password-file", str(tmp_path / "crypt-password"),
            "--new-password-file", str(new_password))
    after = raw_files(backend.view.raw.root)
    assert {p: d for p, d in after.items() if p != VAULT_NAME} == {p: d for p, d in before.items() if p != VAULT_NAME}
    assert after[VAULT_NAME] != before[VAULT_NAME]  # only the vault changed: nothing re-encrypted or re-uploaded

    for gw in (one, two):
        gw.umount()
    one.expected_warnings.append("wrong password")  # the refused mount's daemon says so in this cache dir's log
    old_args = ("--crypt-password-file", str(tmp_path / "crypt-password"))
    refused = run_cli("mount", backend.url, str(one.mnt), "--cache-dir", str(one.cache_dir), *old_args, check=False)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "wrong password" in refused.stderr and "Traceback" not in refused.stderr
    assert not os.path.ismount(one.mnt)
    for gw in (one, two):
        gw.args = ("--crypt-password-file", str(new_password))
        gw.mount()
        assert (gw.mnt / "from-one.txt").read_text() == "written by the first gateway"
        assert (gw.mnt / "from-two.bin").read_bytes() == b"\x01" * 100_000


def test_mounting_without_the_password_or_without_a_vault_is_a_clear_error(tmp_path):
    plain = make_backend("file", tmp_path, None)
    password = write_password(tmp_path / "pw")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    no_vault = run_cli("mount", plain.url, str(mnt), "--cache-dir", str(tmp_path / "c1"),
                       "--crypt-password-file", str(password), check=False)
    assert no_vault.returncode == 2 and "is not an encrypted remote" in no_vault.stderr
    enc = encrypted(plain, tmp_path)
    no_password = run_cli("mount", enc.url, str(mnt), "--cache-dir", str(tmp_path / "c2"), check=False)
    assert no_password.returncode == 2 and "is an encrypted remote: give its password" in no_password.stderr
    password.chmod(0o644)
    loose = run_cli("mount", enc.url, str(mnt), "--cache-dir", str(tmp_path / "c3"), "--crypt-password-file",
                    str(password), check=False)
    assert loose.returncode == 2 and "readable by others" in loose.stderr
    for proc in (no_vault, no_password, loose):
        assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
        assert CRYPT_PASSWORD.decode() not in proc.stderr + proc.stdout
    assert not os.path.ismount(mnt)
    again = run_cli("crypt", "init", enc.url, "--password-file", str(tmp_path / "crypt-password"),
                    "--recovery-key-out", str(tmp_path / "second.pem"), check=False)
    assert again.returncode == 2 and "already holds a vault" in again.stderr
    assert not (tmp_path / "second.pem").exists()
    (tmp_path / "used").mkdir()
    used = make_backend("file", tmp_path / "used", None)
    used.view.put("report.docx", b"plain data")
    refused = run_cli("crypt", "init", used.url, "--password-file", str(tmp_path / "crypt-password"),
                      "--recovery-key-out", str(tmp_path / "third.pem"), check=False)
    assert refused.returncode == 2 and "already holds data (report.docx)" in refused.stderr
    assert not (tmp_path / "third.pem").exists() and used.view.files() == {"report.docx": 10}


def test_the_password_may_come_from_the_environment_and_never_reaches_argv_or_logs(tmp_path, mounted):
    backend = encrypted(make_backend("file", tmp_path, None), tmp_path)
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache",
                 env={"CLOUDGW_CRYPT_PASSWORD": CRYPT_PASSWORD.decode()})
    mounted.append(gw)
    gw.mount()
    (gw.mnt / "f.txt").write_text("via the environment")
    gw.sync()
    assert backend.view.get("f.txt") == b"via the environment"
    # (/proc/PID/environ, readable by root and the daemon's user only, keeps the value the
    # process started with: README recommends a password file, e.g. a systemd credential)
    assert CRYPT_PASSWORD not in Path(f"/proc/{gw.pid()}/cmdline").read_bytes()
    core = next(line for line in Path(f"/proc/{gw.pid()}/limits").read_text().splitlines() if "core file" in line)
    assert core.split()[4:6] == ["0", "0"], core  # the daemon holds keys: it never writes a core file
    assert CRYPT_PASSWORD.decode() not in gw.log()


def tamper(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.allow_warnings("does not authenticate", "truncated")
def test_tampered_truncated_and_swapped_ciphertext_reads_as_eio_and_fsck_names_it(tmp_path, mounted):
    backend = encrypted(make_backend("file", tmp_path, None), tmp_path)
    raw = backend.view.raw.root
    writer = gateway(backend, tmp_path, "writer")
    mounted.append(writer)
    writer.mount()
    contents = {name: os.urandom(3 * fmt.CHUNK + 1000) for name in ("flipped", "cut", "a", "b", "intact")}
    for name, data in contents.items():
        (writer.mnt / name).write_bytes(data)
    writer.sync()
    writer.umount()

    tamper(raw / "flipped", fmt.chunk_offset(1) + 100, b"\xff")
    os.truncate(raw / "cut", fmt.chunk_offset(2))  # at a chunk boundary: 2 whole chunks, the last one missing
    a, b = (raw / "a").read_bytes(), (raw / "b").read_bytes()
    one = slice(fmt.chunk_offset(1), fmt.chunk_offset(2))
    tamper(raw / "a", one.start, b[one])  # the same chunk of another file
    tamper(raw / "b", one.start, a[one])

    reader = gateway(backend, tmp_path, "reader")
    reader.expected_warnings += ["does not authenticate", "truncated"]
    mounted.append(reader)
    reader.mount()
    assert (reader.mnt / "intact").read_bytes() == contents["intact"]
    for name in ("flipped", "cut", "a", "b"):
        for _attempt in range(2):  # nothing wrong was cached by the first attempt
            with pytest.raises(OSError) as info:
                (reader.mnt / name).read_bytes()
            assert info.value.errno == errno.EIO, name
        assert name in reader.log()
    reader.umount()

    fsck = run_cli("fsck", str(reader.cache_dir), "--verify-remote", check=False)
    assert fsck.returncode == 1
    damaged = sorted(line.split()[2].rstrip(":") for line in fsck.stdout.splitlines() if "remote-damaged" in line)
    assert damaged == ["a", "b", "cut", "flipped"], fsck.stdout


@pytest.fixture
def counted_crypt(tmp_path: Path, moto_server: S3Server) -> Iterator[tuple[Gateway, Backend, OutageProxy]]:
    """An encrypted S3 remote whose every byte to the server passes a counting proxy."""
    yield from counted_gateway(moto_server, tmp_path, encrypt=True)


def test_a_small_edit_of_a_large_encrypted_file_sends_one_part(counted_crypt):
    gw, backend, proxy = counted_crypt
    gw.mount()
    size = 48 * MiB
    data = bytearray(os.urandom(size))
    (gw.mnt / "big.bin").write_bytes(data)
    gw.sync()
    before = proxy.sent_to_server
    edit, offset = os.urandom(4096), 20 * MiB + 123
    with open(gw.mnt / "big.bin", "r+b") as f:
        f.seek(offset)
        f.write(edit)
    gw.sync()
    sent = proxy.sent_to_server - before
    data[offset:offset + 4096] = edit
    assert sent < 12 * MiB, f"{sent} bytes sent for a 4 KiB edit of an encrypted {size >> 20} MiB file"
    assert sha(backend.view.get("big.bin")) == sha(bytes(data))
    stored = backend.view.raw.get("big.bin")
    assert len(stored) == fmt.stored_size(size) and bytes(edit) not in stored


@pytest.mark.parametrize("compress", [None, "zstd"])
def test_kill9_mid_upload_of_an_encrypted_file_loses_nothing(tmp_path, mounted, moto_server, compress):
    backend = encrypted(make_backend("s3", tmp_path, moto_server), tmp_path, compress=compress)
    gw = gateway(backend, tmp_path, "k")
    mounted.append(gw)
    data = os.urandom(20 * MiB + 5)  # multipart
    crash_at(gw, "upload-mid-transfer")  # the daemon kills itself once some parts are sent
    (gw.mnt / "big.bin").write_bytes(data)
    run_cli("sync", str(gw.mnt), env=gw.env, check=False)
    settle_after_crash(gw)  # remounted (without the crash point) and synced
    assert backend.view.files() == {"big.bin": len(data)}
    assert sha(backend.view.get("big.bin")) == sha(data)
    assert sha((gw.mnt / "big.bin").read_bytes()) == sha(data)
    raw = backend.view.raw
    assert raw.client.list_multipart_uploads(Bucket=raw.bucket).get("Uploads", []) == []


def test_the_fstab_and_config_forms_take_the_password_file(tmp_path, mounted):
    backend = encrypted(make_backend("file", tmp_path, None), tmp_path)
    config = tmp_path / "gw.toml"
    config.write_text(f'mountpoint = "{tmp_path / "mnt"}"\n[remotes.vault]\nurl = "{backend.url}"\n'
                      f'crypt_password_file = "{tmp_path / "crypt-password"}"\n')
    gw = Gateway("", tmp_path / "mnt", tmp_path / "cache")
    mounted.append(gw)
    (tmp_path / "mnt").mkdir()
    run_cli("mount", "--config", str(config), "--cache-dir", str(gw.cache_dir), "--write-back", "0.2")
    (gw.mnt / "vault" / "doc.txt").write_text("through the config")
    gw.sync()
    assert backend.view.get("doc.txt") == b"through the config"
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert CRYPT_PASSWORD.decode() not in ps


def test_objects_copied_out_of_s3_decrypt_with_real_names_and_symlinks(tmp_path, mounted, moto_server):
    backend = encrypted(make_backend("s3", tmp_path, moto_server), tmp_path, encrypt_names=True)
    gw = gateway(backend, tmp_path, "s3n")
    mounted.append(gw)
    gw.mount()
    (gw.mnt / "Clients" / "Acme").mkdir(parents=True)
    (gw.mnt / "Clients" / "Acme" / "invoice.txt").write_text("Invoice 4711 for Acme")
    os.symlink("Acme/invoice.txt", gw.mnt / "Clients" / "latest")
    gw.sync()
    copied = backend.view.raw.download("", tmp_path / "copied")  # what `aws s3 sync` would fetch
    names = [p.name for p in copied.rglob("*")]
    assert not any("Acme" in n or "Clients" in n or "invoice" in n or "latest" in n for n in names), names
    run_cli("decrypt", str(copied), str(tmp_path / "out"), "--password-file", str(tmp_path / "crypt-password"))
    assert (tmp_path / "out" / "Clients" / "Acme" / "invoice.txt").read_text() == "Invoice 4711 for Acme"
    assert os.readlink(tmp_path / "out" / "Clients" / "latest") == "Acme/invoice.txt"


def text_tree(root: Path) -> dict[str, bytes]:
    """A share of office text: minutes, CSV exports, source code (compressible, as such files are)."""
    files = {}
    words = "board budget invoice quarterly meeting revenue forecast customer contract supplier".split()
    for i in range(40):
        line = " ".join(words[(i * 7 + k) % len(words)] for k in range(12))
        files[f"docs/{i // 10}/minutes-{i}.txt"] = "\n".join(f"{n}: {line} {n * i}" for n in range(300)).encode()
    files["exports/ledger.csv"] = "".join(f"{n},{n * 17 % 1000},EUR,{words[n % 10]}\n" for n in range(200000)).encode()
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@pytest.fixture
def counted_compressed(tmp_path: Path, moto_server: S3Server) -> Iterator[tuple[Gateway, Backend, OutageProxy]]:
    """An encrypted S3 remote made with ``--compress zstd``, every byte counted by a proxy."""
    yield from counted_gateway(moto_server, tmp_path, encrypt=True, compress="zstd")


def test_a_compressed_vault_sends_less_reads_back_exactly_and_edits_send_two_parts(tmp_path, counted_compressed):
    gw, backend, proxy = counted_compressed
    gw.mount()
    tree = text_tree(tmp_path / "tree")
    big = b"".join(tree.values()) * 8  # ~40 MiB of text: several parts
    shutil.copytree(tmp_path / "tree", gw.mnt / "share")
    (gw.mnt / "share" / "archive.txt").write_bytes(big)
    gw.sync()
    plain = sum(map(len, tree.values())) + len(big)
    sent = proxy.sent_to_server
    assert sent < plain * 0.5, f"{sent} bytes sent for {plain} bytes of text"
    # what another gateway sees: the right sizes from a listing, the same bytes
    assert backend.view.get("share/archive.txt") == big
    want = {f"share/{rel}": len(data) for rel, data in tree.items()} | {"share/archive.txt": len(big)}
    assert backend.view.files() == want
    second = gateway(backend, tmp_path, "second")
    second.mount()
    try:
        assert {p.relative_to(second.mnt).as_posix(): p.stat().st_size
                for p in second.mnt.rglob("*") if p.is_file()} == want
        assert (second.mnt / "share" / "exports" / "ledger.csv").read_bytes() == tree["exports/ledger.csv"]
        with open(second.mnt / "share" / "archive.txt", "rb") as f:  # a random read: one table block, a few chunks
            f.seek(len(big) // 2 + 12345)
            assert f.read(100_000) == big[len(big) // 2 + 12345:len(big) // 2 + 112345]
    finally:
        second.umount()
        second.force_cleanup()
    # a small edit sends the part with the edit and the first part (the chunk table), not the file
    before = proxy.sent_to_server
    at = len(big) // 2
    with open(gw.mnt / "share" / "archive.txt", "r+b") as f:
        f.seek(at)
        f.write(b"EDITED" * 100)
    gw.sync()
    edited = big[:at] + b"EDITED" * 100 + big[at + 600:]
    assert proxy.sent_to_server - before < 12 * MiB, "more than two 5 MiB parts for a 600-byte edit"
    assert sha(backend.view.get("share/archive.txt")) == sha(edited)
    # and the recovery key alone gets it all back, without a gateway
    run_cli("decrypt", backend.url, str(tmp_path / "out"), "--private-key", str(tmp_path / "recovery.pem"),
            *backend.args[:-2], env=backend.env)
    assert (tmp_path / "out" / "share" / "archive.txt").read_bytes() == edited
    assert (tmp_path / "out" / "share" / "exports" / "ledger.csv").read_bytes() == tree["exports/ledger.csv"]
