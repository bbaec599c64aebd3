"""Review of client-side encryption: each test is one real bug a review found, now fixed.

Every test here failed on the code it was written against (each was an
``xfail(strict=True)`` until its fix landed).
They use the real remotes (file://, moto, wsgidav's Nextcloud emulation), the
real CLI entry point and the in-process filesystem harness.  What works is
tested elsewhere (tests/crypt/, tests/contract/ *-crypt, tests/mount/test_crypt.py).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import tracemalloc
import uuid
from pathlib import Path

import pytest
import trio

from cloudgw import cli
from cloudgw.crypt import VAULT_NAME
from cloudgw.crypt import format as fmt
from cloudgw.crypt.vault import KdfParams, create_vault, unlock
from cloudgw.errors import IntegrityError, RemoteNameInvalid, RemoteUnavailable, UserError
from cloudgw.filesystem import FsError
from cloudgw.remotes import crypt_guard, specials
from cloudgw.remotes.base import BytesSource, Kind
from cloudgw.remotes.crypt import CryptRemote
from cloudgw.remotes.local import LocalRemote
from cloudgw.remotes.mapped import with_name_rules
from cloudgw.remotes.names import named_on_linux
from cloudgw.remotes.s3 import S3Remote
from tests.contract.conftest import FAST_KDF_PARAMS, S3_TEST_OPTIONS, make_webdav
from tests.contract.test_remote_contract import EditedSource
from tests.inprocess.harness import running
from tests.inprocess.remotes import FeedLocal

PASSWORD = b"review-password"
VAULT, PEM = create_vault(PASSWORD, kdf=KdfParams(**FAST_KDF_PARAMS))
KEYS = unlock(VAULT, PASSWORD)
C = fmt.CHUNK
MiB = 1 << 20


def crypt_over(inner) -> CryptRemote:  # noqa: ANN001
    remote = CryptRemote(inner, PASSWORD)
    remote.unlocked(KEYS)
    return remote


def secret_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def s3_on(moto_server, **overrides) -> S3Remote:  # noqa: ANN001, ANN003
    """A fresh moto bucket holding the vault, with the contract suite's small parts."""
    bucket = f"cgw-{uuid.uuid4().hex[:20]}"
    raw = moto_server.client()
    raw.create_bucket(Bucket=bucket)
    raw.put_object(Bucket=bucket, Key=VAULT_NAME, Body=VAULT)
    options = {**S3_TEST_OPTIONS, **overrides}
    return S3Remote(bucket, "", endpoint_url=moto_server.endpoint_url, region=moto_server.region, path_style=True,
                    access_key=moto_server.access_key, secret_key=moto_server.secret_key, **options)


def one_byte_per_part(nparts: int, part: int = 5 * MiB) -> list[tuple[int, int]]:
    """Plaintext edits (offset, 1) in the middle of each stored ``part``: every part holds a
    change, and every part boundary cuts an unchanged chunk."""
    return [((k * part + part // 2 - fmt.HEADER_SIZE) // fmt.SLOT * C + 100, 1) for k in range(nparts)]


def edited(base: bytes, changes: list[tuple[int, int]]) -> bytes:
    data = bytearray(base)
    for at, n in changes:
        data[at:at + n] = bytes(b ^ 0xFF for b in data[at:at + n])
    return bytes(data)


# -- 1. Nextcloud/ownCloud: every upload below chunk_threshold fails --------------------------

async def test_writes_to_a_nextcloud_remote_succeed(nextcloud_server):
    folder = f"t-{uuid.uuid4().hex[:12]}"
    nextcloud_server.mkcol(folder)
    inner = make_webdav(nextcloud_server, folder)
    await inner.check()  # as a mount does: finds oc:fileid, so sends OC-Checksum (hash_kind sha1)
    remote = crypt_over(inner)
    try:
        entry = await remote.write("small.txt", BytesSource(b"hello"))  # production threshold: 64 MiB
        assert await remote.read("small.txt", 0, 100, rev=entry.rev) == b"hello"
    finally:
        await remote.aclose()


# -- 2. S3 delta upload deadlocks on its own thread limiter ---------------------------------

@pytest.mark.slow
async def test_delta_upload_does_not_deadlock_when_every_part_worker_fetches(moto_server):
    # At the defaults (max_threads 16, upload_parallelism 4) this takes >= 5-6 concurrent delta
    # uploads (upload_concurrency); measured: 6 deadlocked.  Here: one upload, 2 workers, 2 tokens.
    remote = crypt_over(s3_on(moto_server, max_threads=2, upload_parallelism=2))
    try:
        size = (2 * 5 * MiB) // fmt.SLOT * C  # stored: two 5 MiB parts (the second one short)
        base = os.urandom(size)
        first = await remote.write("big.bin", BytesSource(base))
        changes = one_byte_per_part(2)
        data = edited(base, changes)
        with trio.fail_after(15):  # the upload itself takes ~1 s
            await remote.write("big.bin", EditedSource(data, first.rev, changes, size), expect=first.rev)
        assert await remote.read("big.bin", 0, size + 1) == data
    finally:
        await remote.aclose()


# -- 3. an object cut to its header reads as an empty file --------------------------------

async def test_an_object_cut_to_its_header_is_an_integrity_error(tmp_path):
    remote = crypt_over(LocalRemote(tmp_path))
    await remote.write("f.bin", BytesSource(os.urandom(1000)))
    stored = tmp_path / "f.bin"
    stored.write_bytes(stored.read_bytes()[:fmt.HEADER_SIZE])  # a truncated upload, a broken copy
    fresh = crypt_over(LocalRemote(tmp_path))
    rev = (await fresh.stat("f.bin")).rev
    with pytest.raises(IntegrityError, match="f.bin"):
        await fresh.read("f.bin", 0, 1000, rev=rev)


# -- 4. objects of no valid encrypted size look like empty files --------------------------

@pytest.mark.allow_warnings("README.txt", "damaged.bin")
async def test_foreign_or_damaged_objects_are_not_shown_as_empty_files(tmp_path):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    (cloud / VAULT_NAME).write_bytes(VAULT)
    (cloud / "README.txt").write_bytes(b"written by another tool, not encrypted\n" * 2)  # 80 bytes
    await crypt_over(LocalRemote(cloud)).write("damaged.bin", BytesSource(os.urandom(C + 5)))
    damaged = cloud / "damaged.bin"
    damaged.write_bytes(damaged.read_bytes()[:-10])  # cut inside the last chunk's tag
    async with running(crypt_over(LocalRemote(cloud)), tmp_path / "cache") as h:
        shown = await h.listdir("")
        for name in ("README.txt", "damaged.bin"):
            if name in shown:  # hidden is fine; shown, it must not read as a valid empty file
                with pytest.raises((FsError, IntegrityError)) as exc:  # (the FUSE layer answers EIO for it)
                    await h.read_file(name)
                assert exc.value.errno == errno.EIO


# -- 5. upload memory grows with the file --------------------------------------------------

class Zeros:
    """A large plaintext source that holds nothing in memory."""

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        return bytes(max(0, min(length, self.size - offset)))

    def check(self) -> None:
        return None


async def test_upload_memory_does_not_grow_with_the_file(tmp_path):
    remote = crypt_over(LocalRemote(tmp_path))
    peaks = []
    for size in (8 * MiB, 128 * MiB):
        tracemalloc.start()
        try:
            await remote.write("big.bin", Zeros(size))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] - peaks[0] < 2 * MiB, f"peak {peaks[0] / MiB:.1f} MiB -> {peaks[1] / MiB:.1f} MiB"


# -- 6. a delta upload leaves bytes neither read nor reported copied ------------------------

async def test_delta_upload_accounts_every_byte_as_read_or_copied(moto_server):
    remote = crypt_over(s3_on(moto_server))
    try:
        base = os.urandom(11 * MiB + 12345)  # three 5 MiB parts
        first = await remote.write("big.bin", BytesSource(base))
        changes = [(5 * MiB + 4096, 4096)]  # inside the second part
        source = EditedSource(edited(base, changes), first.rev, changes, len(base))
        await remote.write("big.bin", source, expect=first.rev)
        assert source.copies, "the unchanged parts were copied server-side"
        end = 0  # how far from 0 the reads and reported copies cover the plaintext without a gap
        for offset, length in sorted(source.reads + source.copies):
            if offset > end:
                break
            end = max(end, offset + length)
        assert end >= len(base), f"plaintext bytes from {end} on neither read nor reported copied"
    finally:
        await remote.aclose()


# -- 7. the vault's name on a case-insensitive remote ---------------------------------------

def test_the_vault_name_is_refused_in_any_case_on_a_case_insensitive_remote(tmp_path):
    remote = crypt_over(with_name_rules(LocalRemote(tmp_path), named_on_linux("windows")))  # an SMB share
    assert remote.capabilities.case_sensitive is False
    with pytest.raises(RemoteNameInvalid):
        remote.check_path(".CLOUDGW-VAULT.JSON")


# -- 8. crypt passwd/init with CLOUDGW_CRYPT_PASSWORD set -----------------------------------

def test_crypt_passwd_works_with_the_password_in_the_environment(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    root.mkdir()
    (root / VAULT_NAME).write_bytes(VAULT)
    monkeypatch.setattr(crypt_guard, "_env_password", [])  # as a fresh process
    monkeypatch.setenv("CLOUDGW_CRYPT_PASSWORD", PASSWORD.decode())  # as the systemd unit sets it
    old = secret_file(tmp_path / "old", PASSWORD + b"\n")
    new = secret_file(tmp_path / "new", b"a new password\n")
    rc = cli.main(["crypt", "passwd", f"file://{root}", "--password-file", str(old), "--new-password-file", str(new)])
    assert rc == 0, capsys.readouterr().err
    unlock((root / VAULT_NAME).read_bytes(), b"a new password")


# -- 9. decrypt of a remote: a remote error is a traceback and stops everything -----------

def test_decrypt_of_a_remote_reports_a_remote_error_in_one_line_and_goes_on(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    root.mkdir()
    (root / VAULT_NAME).write_bytes(VAULT)

    async def fill() -> None:
        remote = crypt_over(LocalRemote(root))
        for name in ("a.txt", "b.txt", "c.txt"):
            await remote.write(name, BytesSource(name.encode()))

    trio.run(fill)
    real_read = LocalRemote.read

    async def flaky(self, path, offset, length, *, rev=None):  # noqa: ANN001, ANN202
        if path == "b.txt":
            raise RemoteUnavailable(f"GET {path}: no answer (retries exhausted)")
        return await real_read(self, path, offset, length, rev=rev)

    monkeypatch.setattr(LocalRemote, "read", flaky)
    pw = secret_file(tmp_path / "pw", PASSWORD + b"\n")
    rc = cli.main(["decrypt", f"file://{root}", str(tmp_path / "out"), "--password-file", str(pw)])
    err = capsys.readouterr().err
    assert rc == 1
    assert [line for line in err.splitlines() if "b.txt" in line], err
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"a.txt"
    assert (tmp_path / "out" / "c.txt").read_bytes() == b"c.txt"


# -- 10. decrypt turns a regular file named *.cloudgw-symlink into a symlink ---------------

def test_decrypt_keeps_a_file_whose_name_ends_in_the_symlink_suffix(tmp_path, capsys):
    root = tmp_path / "root"  # a file:// remote: the suffix is not reserved there
    root.mkdir()
    (root / VAULT_NAME).write_bytes(VAULT)

    async def fill() -> None:
        remote = crypt_over(LocalRemote(root))
        await remote.write("notes.cloudgw-symlink", BytesSource(b"my notes"))
        await remote.write("other.txt", BytesSource(b"other"))

    trio.run(fill)
    pw = secret_file(tmp_path / "pw", PASSWORD + b"\n")
    out = tmp_path / "out"
    rc = cli.main(["decrypt", str(root), str(out), "--password-file", str(pw)])
    assert rc == 0, capsys.readouterr().err
    kept = out / "notes.cloudgw-symlink"
    assert not kept.is_symlink() and kept.read_bytes() == b"my notes"
    assert (out / "other.txt").read_bytes() == b"other"


# -- 11. a damaged vault is a traceback, not a one-line error ------------------------------

def _vault_with(**kdf: object) -> bytes:
    doc = json.loads(VAULT)
    doc["kdf"] = kdf["whole"] if "whole" in kdf else {**doc["kdf"], **kdf}
    return json.dumps(doc).encode()


@pytest.mark.parametrize("damage", [{"whole": "argon2id"}, {"lanes": 0}, {"memory_kib": 0}, {"iterations": 0},
                                    {"memory_kib": 2**40}], ids=["kdf-not-an-object", "lanes-0", "memory-0",
                                                                 "iterations-0", "memory-absurd"])
def test_a_damaged_vault_is_a_user_error(damage):
    with pytest.raises(UserError):
        unlock(_vault_with(**damage), PASSWORD)


# -- 12. id-addressed change feeds hide every file named like the vault -------------------

async def test_a_change_feed_reports_a_file_named_like_the_vault_in_a_subfolder(tmp_path):
    remote = crypt_over(FeedLocal(tmp_path))  # names not encrypted: the name is allowed below the root
    await remote.mkdir("sub")
    cursor = await remote.change_cursor()
    await remote.write("sub/.cloudgw-vault.json", BytesSource(b"a user's file"))
    listed = [e.path async for e in remote.list("", recursive=True)]
    assert "sub/.cloudgw-vault.json" in listed
    found, _ = await remote.changes(cursor)
    assert VAULT_NAME in [c.entry.path for c in found if c.entry is not None]


# -- 13. decrypt --private-key keeps core dumps on ----------------------------------------

def test_decrypt_with_the_recovery_key_alone_makes_the_process_undumpable(tmp_path):
    key = secret_file(tmp_path / "recovery.pem", PEM)
    script = (
        "import argparse, ctypes, sys\n"
        "from pathlib import Path\n"
        "from cloudgw.crypt_cli import _Decryptor\n"
        f"_Decryptor(argparse.Namespace(password_file=None, private_key=Path({str(key)!r})))\n"
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))\n"  # PR_GET_DUMPABLE: 1 after exec
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"



# -- 13. decrypt makes special files again, never opens one --------------------------------

@pytest.mark.parametrize("form", ["directory", "url"])
def test_decrypt_makes_the_special_files_of_an_encrypted_remote_again(tmp_path, capsys, form):  # noqa: ANN001
    """A FIFO is a marker at the contract; over file:// without encrypted names a real FIFO: the
    directory form must not open it (that would block), the URL form must not os.symlink it."""
    root = tmp_path / "root"
    root.mkdir()
    (root / VAULT_NAME).write_bytes(VAULT)

    async def fill() -> None:
        remote = crypt_over(LocalRemote(root))
        await remote.write("a.txt", BytesSource(b"a"))
        await remote.symlink("pipe", specials.Special(Kind.FIFO, 0o640, 0, 0, 0).marker())

    trio.run(fill)
    pw = secret_file(tmp_path / "pw", PASSWORD + b"\n")
    out = tmp_path / "out"
    rc = cli.main(["decrypt", f"file://{root}" if form == "url" else str(root), str(out), "--password-file", str(pw)])
    assert rc == 0, capsys.readouterr().err
    assert (out / "a.txt").read_bytes() == b"a"
    assert stat.S_ISFIFO(os.lstat(out / "pipe").st_mode)
