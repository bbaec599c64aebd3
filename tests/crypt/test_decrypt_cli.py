"""``cloudgw decrypt`` as a user runs it: the installed CLI in a subprocess, secrets in files.

Three sources of encrypted trees, none made by the code under test:

* Synology Cloud Sync: the real Cloud Sync samples (GPL-3.0 data, read in place from the shared
  testdata folder, never copied into the project; skipped with that reason where it is absent).
* rclone crypt: files and names made by the real rclone (``.venv/bin/rclone``), configured by
  environment variables only.
* cloudgw's own format: a remote made by ``cloudgw crypt init`` and filled through
  ``CryptRemote`` over a local folder, as a gateway would.

Secrets are never on argv (``rclone obscure -`` reads stdin).  Each tree is decrypted from a
copy, as a user who downloaded it with some other tool would.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cloudgw.crypt import VAULT_NAME
from tests.crypt.trees import write_tree

CLOUDGW = str(Path(sys.executable).with_name("cloudgw"))
ROOT = Path(__file__).resolve().parents[2]
RCLONE = shutil.which("rclone", path=str(ROOT / ".venv" / "bin")) or "rclone"

# -- helpers ---------------------------------------------------------------------------------


def secret_file(path: Path, data: bytes) -> Path:
    """A secret as the CLI wants it: exactly these bytes, mode 0600."""
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def decrypt(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("decrypt", *args, cwd=cwd)


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLOUDGW, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every regular file under ``root`` ({} if it does not exist)."""
    out = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def assert_ok(proc: subprocess.CompletedProcess[str], files: int) -> None:
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert proc.stdout.startswith(f"{files} file{'' if files == 1 else 's'} decrypted to "), proc.stdout


def one_error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The process failed with ``code`` and said so on one line of stderr, without a traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cloudgw: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# -- Synology Cloud Sync -----------------------------------------------------------------------

_env = os.environ.get("CLOUDGW_SHARED_TESTDATA")  # located as in test_synology.py
SYNOLOGY = (Path(_env) if _env else ROOT.parent / "shared" / "testdata") / "synology-cloudsync"
needs_synology = pytest.mark.skipif(
    not SYNOLOGY.is_dir(),
    reason=f"Synology Cloud Sync vectors (GPL-3.0, read in place, never copied) not found at {SYNOLOGY}; "
    "set CLOUDGW_SHARED_TESTDATA to the shared testdata directory",
)
SETS = ["marnix", "maxlaverse"]
OTHER = {"marnix": "maxlaverse", "maxlaverse": "marnix"}
DAMAGED = "5000words-3.1.txt"  # 4 chunks: a flipped byte in the middle breaks its data


def synology_secret(set_: str, how: str, tmp_path: Path) -> list[str]:
    """The option giving ``set_``'s password or key, from a private 0600 copy of the secret (the
    shared files are read-only for everyone, which the CLI rightly refuses)."""
    if how == "password":  # the README: the exact bytes, no newline (read_secret takes line 1)
        return ["--password-file", str(secret_file(tmp_path / f"{set_}.password",
                                                   (SYNOLOGY / set_ / "password.txt").read_bytes()))]
    return ["--private-key", str(secret_file(tmp_path / f"{set_}.pem", (SYNOLOGY / set_ / "private.pem").read_bytes()))]


@needs_synology
@pytest.mark.parametrize("how", ["password", "private-key"])
@pytest.mark.parametrize("set_", SETS)
def test_synology_tree_decrypts_to_the_plaintext(set_: str, how: str, tmp_path: Path) -> None:
    proc = decrypt(SYNOLOGY / set_ / "enc", tmp_path / "out", *synology_secret(set_, how, tmp_path), cwd=tmp_path)
    expected = tree(SYNOLOGY / set_ / "plain")
    assert_ok(proc, len(expected))
    assert tree(tmp_path / "out") == expected


@needs_synology
def test_synology_single_file_into_a_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    src = SYNOLOGY / "maxlaverse" / "enc" / "test.txt"
    proc = decrypt(src, tmp_path / "out", *synology_secret("maxlaverse", "password", tmp_path), cwd=tmp_path)
    assert_ok(proc, 1)
    assert tree(tmp_path / "out") == {"test.txt": (SYNOLOGY / "maxlaverse" / "plain" / "test.txt").read_bytes()}


@needs_synology
@pytest.mark.parametrize("how, message", [("password", "wrong password"), ("private-key", "wrong private key")])
def test_synology_wrong_secret_is_one_line_and_exit_2(how: str, message: str, tmp_path: Path) -> None:
    """The other set's secret: the README's negative case (its hash checks reject it)."""
    proc = decrypt(SYNOLOGY / "marnix" / "enc", tmp_path / "out", *synology_secret("maxlaverse", how, tmp_path),
                   cwd=tmp_path)
    assert message in one_error_line(proc, 2)
    assert tree(tmp_path / "out") == {}


@pytest.fixture
def damaged_synology_tree(tmp_path: Path) -> Path:
    """The marnix files (copied to a temp folder, not the project) with one damaged."""
    src = tmp_path / "downloaded"
    shutil.copytree(SYNOLOGY / "marnix" / "enc", src)
    data = bytearray((src / DAMAGED).read_bytes())
    data[len(data) // 2] ^= 0x01
    (src / DAMAGED).write_bytes(data)
    return src


@needs_synology
@pytest.mark.parametrize("how", ["password", "private-key"])
def test_synology_damaged_file_among_good_ones(how: str, damaged_synology_tree: Path, tmp_path: Path) -> None:
    proc = decrypt(damaged_synology_tree, tmp_path / "out", *synology_secret("marnix", how, tmp_path), cwd=tmp_path)
    one_error_line(proc, 1)
    expected = {k: v for k, v in tree(SYNOLOGY / "marnix" / "plain").items() if k != DAMAGED}
    assert tree(tmp_path / "out") == expected  # the good ones, and nothing of the damaged one (no temp file)
    assert proc.stdout.startswith(f"{len(expected)} files decrypted to ") and "1 failed" in proc.stdout


@needs_synology
def test_synology_damaged_file_is_named(damaged_synology_tree: Path, tmp_path: Path) -> None:
    proc = decrypt(damaged_synology_tree, tmp_path / "out", *synology_secret("marnix", "password", tmp_path),
                   cwd=tmp_path)
    assert DAMAGED in one_error_line(proc, 1)


@needs_synology
def test_synology_key_is_parsed_once_per_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Parsing the RSA key costs ~80 ms: a tree of N files parses it once, not N times."""
    from cloudgw import cli
    from cloudgw.crypt import synology

    calls = []
    real = synology.load_private_key
    monkeypatch.setattr(synology, "load_private_key", lambda pem: calls.append(1) or real(pem))
    args = synology_secret("marnix", "private-key", tmp_path)
    assert cli.main(["decrypt", str(SYNOLOGY / "marnix" / "enc"), str(tmp_path / "out"), *args]) == 0
    assert tree(tmp_path / "out") == tree(SYNOLOGY / "marnix" / "plain") and len(calls) == 1


@needs_synology
def test_decrypt_synology_takes_a_loaded_key() -> None:
    from cloudgw.crypt.synology import decrypt_synology, load_private_key
    from cloudgw.errors import UserError

    key = load_private_key((SYNOLOGY / "marnix" / "private.pem").read_bytes())
    for name, plain in tree(SYNOLOGY / "marnix" / "plain").items():
        out = io.BytesIO()
        with open(SYNOLOGY / "marnix" / "enc" / name, "rb") as src:
            decrypt_synology(src, out, private_key=key)
        assert out.getvalue() == plain, name
    with pytest.raises(UserError, match="exactly one"):
        decrypt_synology(io.BytesIO(), io.BytesIO(), password=b"x", private_key=key)
    with pytest.raises(UserError, match="wrong private key"):
        decrypt_synology(io.BytesIO((SYNOLOGY / "maxlaverse" / "enc" / "test.txt").read_bytes()), io.BytesIO(),
                         private_key=key)


# -- rclone crypt ------------------------------------------------------------------------------

RCLONE_PASSWORD = "correct horse ✓ battery"
RCLONE_PASSWORD2 = "pepper & salt"
RCLONE_FILES = {  # name -> size; 64 KiB is rclone's block
    "empty": 0,
    "top.txt": 11,
    "64KiB plus one": 64 * 1024 + 1,
    "with space/héllo wörld 日本語 ✓.txt": 17,
    "a/b/c/deep!quote 0123456789.txt": 5,
    "a/b/" + "long name " * 12 + ".txt": 3,
}
RCLONE_CASES = {  # case -> (rclone options, cloudgw decrypt options)
    "standard": ({}, []),
    "password2": ({}, []),
    "obfuscate": ({"filename_encryption": "obfuscate"}, ["--rclone-filename-encryption", "obfuscate"]),
    "off": ({"filename_encryption": "off"}, ["--rclone-filename-encryption", "off"]),
}


def _obscure(secret: str) -> str:
    """``rclone obscure -`` reads the secret from stdin, so it never reaches argv."""
    return subprocess.run([RCLONE, "obscure", "-"], input=secret, check=True, capture_output=True, text=True,
                          timeout=30).stdout.strip()


@pytest.fixture(scope="module")
def rclone_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("rclone-plain"), RCLONE_FILES, seed=20240602)


@pytest.mark.parametrize("case", RCLONE_CASES)
def test_rclone_tree_decrypts_to_names_and_bytes(case: str, rclone_plain: Path, tmp_path: Path) -> None:
    rclone_opts, decrypt_opts = RCLONE_CASES[case]
    password2 = RCLONE_PASSWORD2 if case == "password2" else ""
    cloud = tmp_path / "cloud"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env.update(RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_SECRET_TYPE="crypt", RCLONE_CONFIG_SECRET_REMOTE=str(cloud),
               RCLONE_CONFIG_SECRET_PASSWORD=_obscure(RCLONE_PASSWORD))
    if password2:
        env["RCLONE_CONFIG_SECRET_PASSWORD2"] = _obscure(password2)
    env.update({f"RCLONE_CONFIG_SECRET_{k.upper()}": v for k, v in rclone_opts.items()})
    subprocess.run([RCLONE, "copy", str(rclone_plain), "secret:"], env=env, check=True, capture_output=True,
                   timeout=60)
    stored = tree(cloud)
    assert len(stored) == len(RCLONE_FILES) and not set(stored) & set(RCLONE_FILES)  # names changed
    downloaded = tmp_path / "downloaded"
    shutil.copytree(cloud, downloaded)

    secrets = ["--password-file", str(secret_file(tmp_path / "password", RCLONE_PASSWORD.encode()))]
    if password2:
        secrets += ["--rclone-salt-file", str(secret_file(tmp_path / "password2", password2.encode()))]
    proc = decrypt(downloaded, tmp_path / "out", *secrets, *decrypt_opts, cwd=tmp_path)
    assert_ok(proc, len(RCLONE_FILES))
    assert tree(tmp_path / "out") == tree(rclone_plain)


# -- cloudgw's own format --------------------------------------------------------------------

CLOUDGW_PASSWORD = "correct horse ✓ battery staple".encode()
CLOUDGW_FILES = {
    "empty": b"",
    "top.txt": b"hello, world\n",
    "two chunks.bin": random.Random(20240603).randbytes(64 * 1024 + 1),
    "dir/héllo wörld 日本語 ✓.txt": "∀ x ∈ ℝ".encode(),
    "dir/sub/deep.txt": b"deep",
}


async def make_cloud(tmp_path: Path, *, encrypt_names: bool, compress: str | None = None) -> tuple[Path, Path, Path]:
    """(the remote's folder, password file, recovery key file): ``cloudgw crypt init``, then the
    files written through CryptRemote over that folder, as a gateway would."""
    from cloudgw.remotes.base import BytesSource
    from cloudgw.remotes.crypt import CryptRemote
    from cloudgw.remotes.local import LocalRemote

    cloud, key = tmp_path / "cloud", tmp_path / "recovery.pem"
    cloud.mkdir()
    password = secret_file(tmp_path / "password", CLOUDGW_PASSWORD)
    proc = run_cli("crypt", "init", f"file://{cloud}", "--password-file", password, "--recovery-key-out", key,
                   "--kdf-memory", "19", "--kdf-iterations", "2", *(["--encrypt-names"] if encrypt_names else []),
                   *(["--compress", compress] if compress else []), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    remote = CryptRemote(LocalRemote(cloud), CLOUDGW_PASSWORD)
    try:
        await remote.check()
        folders = {str(p) for name in CLOUDGW_FILES for p in Path(name).parents if str(p) != "."}
        for folder in sorted(folders):
            await remote.mkdir(folder)
        for name, data in CLOUDGW_FILES.items():
            await remote.write(name, BytesSource(data))
    finally:
        await remote.aclose()
    return cloud, password, key


def copy_without_vault(cloud: Path, to: Path) -> Path:
    """The tree as a user copies it, leaving the vault behind."""
    shutil.copytree(cloud, to, ignore=shutil.ignore_patterns(VAULT_NAME))
    assert not (to / VAULT_NAME).exists()
    return to


def stored_names(cloud: Path) -> dict[str, str]:
    """Real name -> name as stored, with the vault's names key (independent of the CLI)."""
    from cloudgw.crypt.names import NameCipher
    from cloudgw.crypt.vault import unlock

    keys = unlock((cloud / VAULT_NAME).read_bytes(), CLOUDGW_PASSWORD)
    names = NameCipher(keys.names_key) if keys.encrypt_names else None
    return {name: names.encrypt_path(name) if names else name for name in CLOUDGW_FILES}


@pytest.mark.parametrize("encrypt_names", [False, True], ids=["plain-names", "encrypted-names"])
async def test_cloudgw_tree_with_password(encrypt_names: bool, tmp_path: Path) -> None:
    cloud, password, _key = await make_cloud(tmp_path, encrypt_names=encrypt_names)
    stored = stored_names(cloud)
    assert set(tree(cloud)) - {VAULT_NAME} == set(stored.values())
    downloaded = tmp_path / "downloaded"
    shutil.copytree(cloud, downloaded)  # the vault comes along: found in SRC
    proc = decrypt(downloaded, tmp_path / "out", "--password-file", password, cwd=tmp_path)
    assert_ok(proc, len(CLOUDGW_FILES))
    assert tree(tmp_path / "out") == CLOUDGW_FILES


@pytest.mark.parametrize("encrypt_names", [False, True], ids=["plain-names", "encrypted-names"])
async def test_cloudgw_tree_with_recovery_key_and_vault(encrypt_names: bool, tmp_path: Path) -> None:
    cloud, _password, key = await make_cloud(tmp_path, encrypt_names=encrypt_names)
    downloaded = copy_without_vault(cloud, tmp_path / "downloaded")
    proc = decrypt(downloaded, tmp_path / "out", "--private-key", key, "--vault", cloud / VAULT_NAME, cwd=tmp_path)
    assert_ok(proc, len(CLOUDGW_FILES))
    assert tree(tmp_path / "out") == CLOUDGW_FILES  # real names


@pytest.mark.parametrize("encrypt_names", [False, True], ids=["plain-names", "encrypted-names"])
async def test_cloudgw_tree_with_recovery_key_alone(encrypt_names: bool, tmp_path: Path) -> None:
    """No vault anywhere: every content still decrypts; encrypted names stay as stored."""
    cloud, _password, key = await make_cloud(tmp_path, encrypt_names=encrypt_names)
    downloaded = copy_without_vault(cloud, tmp_path / "downloaded")
    proc = decrypt(downloaded, tmp_path / "out", "--private-key", key, cwd=tmp_path)
    assert_ok(proc, len(CLOUDGW_FILES))
    stored = stored_names(cloud)
    assert all(stored[name] != name for name in CLOUDGW_FILES) == encrypt_names
    assert tree(tmp_path / "out") == {stored[name]: data for name, data in CLOUDGW_FILES.items()}


@pytest.mark.parametrize("compress", ["zstd", "lz4"])
async def test_cloudgw_compressed_tree_with_password_and_with_the_recovery_key_alone(compress: str,
                                                                                   tmp_path: Path) -> None:
    from cloudgw.crypt import format as fmt

    cloud, password, key = await make_cloud(tmp_path, encrypt_names=True, compress=compress)
    stored = [p for p in cloud.rglob("*") if p.is_file() and p.name != VAULT_NAME]
    assert stored and all(p.read_bytes()[9] == fmt.FLAG_COMPRESSED for p in stored)  # the compressed layout
    downloaded = tmp_path / "downloaded"
    shutil.copytree(cloud, downloaded)
    proc = decrypt(downloaded, tmp_path / "out", "--password-file", password, cwd=tmp_path)
    assert_ok(proc, len(CLOUDGW_FILES))
    assert tree(tmp_path / "out") == CLOUDGW_FILES
    proc = decrypt(copy_without_vault(cloud, tmp_path / "no-vault"), tmp_path / "out-key", "--private-key", key,
                   cwd=tmp_path)
    assert_ok(proc, len(CLOUDGW_FILES))
    assert sorted(tree(tmp_path / "out-key").values()) == sorted(CLOUDGW_FILES.values())


async def test_cloudgw_password_needs_the_vault_and_the_right_password(tmp_path: Path) -> None:
    cloud, _password, _key = await make_cloud(tmp_path, encrypt_names=True)
    downloaded = copy_without_vault(cloud, tmp_path / "downloaded")
    proc = decrypt(downloaded, tmp_path / "out", "--password-file", tmp_path / "password", cwd=tmp_path)
    assert "needs the vault" in one_error_line(proc, 2)
    wrong = secret_file(tmp_path / "wrong", b"not the password")
    proc = decrypt(cloud, tmp_path / "out", "--password-file", wrong, cwd=tmp_path)
    assert "wrong password" in one_error_line(proc, 2)
    assert tree(tmp_path / "out") == {}


def test_secret_files_readable_by_others_are_refused(tmp_path: Path) -> None:
    password = secret_file(tmp_path / "password", b"whatever")
    password.chmod(0o644)
    (tmp_path / "src").mkdir()
    proc = decrypt(tmp_path / "src", tmp_path / "out", "--password-file", password, cwd=tmp_path)
    assert "readable by others" in one_error_line(proc, 2)
