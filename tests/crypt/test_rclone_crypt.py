"""cloudgw's rclone crypt reader against files and names made by the real rclone."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cloudgw.crypt.rclone_crypt import (
    BLOCK_SIZE, HEADER_SIZE, MAGIC, RcloneKeys, decrypt_name, decrypt_path, decrypt_rclone, derive_keys,
    is_rclone, reveal,
)
from cloudgw.errors import IntegrityError, UserError
from tests.crypt.trees import write_tree

RCLONE = shutil.which("rclone", path=str(Path(__file__).resolve().parents[2] / ".venv" / "bin")) or "rclone"
PASSWORD = "correct horse ✓ battery"
PASSWORD2 = "pepper & salt"
BIG = "big/random 1MiB.dat"
# name -> size; sizes straddle the 64 KiB block boundary
FILES = {
    "empty": 0,
    "exact 64KiB": 64 * 1024,
    "64KiB plus one": 64 * 1024 + 1,
    BIG: 1024 * 1024 + 123,
    "with space/héllo wörld 日本語 ✓.txt": 17,
    "a/b/c/deep!quote 0123456789.txt": 5,
    "a/b/" + "long name " * 12 + ".txt": 3,  # several EME blocks
}


def _obscure(password: str) -> str:
    """`rclone obscure` is the one place a secret goes on argv, and only in tests."""
    return subprocess.run([RCLONE, "obscure", password], check=True, capture_output=True, text=True).stdout.strip()


def _rclone_copy(src: Path, enc: Path, password2: str = "", **options: str) -> None:
    """Copy src through a crypt remote over enc, configured only by environment variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env.update(RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_SECRET_TYPE="crypt", RCLONE_CONFIG_SECRET_REMOTE=str(enc),
               RCLONE_CONFIG_SECRET_PASSWORD=_obscure(PASSWORD))
    if password2:
        env["RCLONE_CONFIG_SECRET_PASSWORD2"] = _obscure(password2)
    env.update({f"RCLONE_CONFIG_SECRET_{k.upper()}": v for k, v in options.items()})
    subprocess.run([RCLONE, "copy", str(src), "secret:"], env=env, check=True, capture_output=True)


def _decrypt_file(path: Path, keys: RcloneKeys) -> bytes:
    out = io.BytesIO()
    with path.open("rb") as src:
        decrypt_rclone(src, out, keys)
    return out.getvalue()


def _encrypted_files(enc: Path, keys: RcloneKeys, **name_opts) -> dict[str, Path]:  # noqa: ANN003
    """Plain relative path -> encrypted file, decrypting every name on the way."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(enc):
        rel_dir = os.path.relpath(dirpath, enc)
        for d in dirnames:
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            assert decrypt_path(rel, keys, is_dir=True, **name_opts)  # every directory decrypts
        for f in filenames:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            found[decrypt_path(rel, keys, **name_opts)] = Path(dirpath, f)
    return found


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("plain"), FILES, seed=20240601)


@pytest.fixture(scope="module")
def keys() -> RcloneKeys:
    return derive_keys(PASSWORD)


@pytest.fixture(scope="module")
def standard(plain: Path, tmp_path_factory: pytest.TempPathFactory, keys: RcloneKeys) -> dict[str, Path]:
    enc = tmp_path_factory.mktemp("enc")
    _rclone_copy(plain, enc)
    return _encrypted_files(enc, keys)


CONFIGS = {
    "base32": ({}, {}),
    "base64": ({"filename_encoding": "base64"}, {"encoding": "base64"}),
    "base32768": ({"filename_encoding": "base32768"}, {"encoding": "base32768"}),
    "obfuscate": ({"filename_encryption": "obfuscate"}, {"mode": "obfuscate"}),
    "off": ({"filename_encryption": "off"}, {"mode": "off"}),
    "plain-dir-names": ({"directory_name_encryption": "false"}, {"dir_names": False}),
    "password2": ({}, {}),
}


@pytest.mark.parametrize("config", CONFIGS)
def test_every_object_and_name_matches_the_original(config: str, plain: Path, tmp_path: Path) -> None:
    rclone_opts, name_opts = CONFIGS[config]
    password2 = PASSWORD2 if config == "password2" else ""
    _rclone_copy(plain, tmp_path, password2, **rclone_opts)
    keys = derive_keys(PASSWORD, password2)
    found = _encrypted_files(tmp_path, keys, **name_opts)
    assert sorted(found) == sorted(FILES)
    for name, enc in found.items():
        assert _decrypt_file(enc, keys) == (plain / name).read_bytes(), name
    if config == "off":
        assert all(p.name.endswith(".bin") for p in found.values())
        assert (tmp_path / "with space").is_dir()  # off leaves directory names alone
    if config == "plain-dir-names":
        assert (tmp_path / "a" / "b" / "c").is_dir()


def test_layout_sizes(standard: dict[str, Path]) -> None:
    """Header 32 bytes, then 16 bytes of tag per started 64 KiB block."""
    assert standard["empty"].stat().st_size == HEADER_SIZE
    assert standard["exact 64KiB"].stat().st_size == HEADER_SIZE + BLOCK_SIZE
    assert standard["64KiB plus one"].stat().st_size == HEADER_SIZE + BLOCK_SIZE + 16 + 1
    assert is_rclone(standard["empty"].read_bytes()) and not is_rclone(b"RCLONE\x00\x01")


def test_wrong_password(standard: dict[str, Path], keys: RcloneKeys) -> None:
    wrong = derive_keys("not the password")
    with pytest.raises(IntegrityError, match="wrong password or damaged file"):
        _decrypt_file(standard["64KiB plus one"], wrong)
    encrypted_name = standard["with space/héllo wörld 日本語 ✓.txt"].name
    with pytest.raises(UserError, match="password is wrong"):
        decrypt_name(encrypted_name, wrong)
    with pytest.raises(IntegrityError, match="wrong password"):  # password2 is part of the key
        _decrypt_file(standard["64KiB plus one"], derive_keys(PASSWORD, PASSWORD2))
    assert _decrypt_file(standard["empty"], wrong) == b""  # nothing to authenticate


@pytest.mark.parametrize("offset, message", [
    (HEADER_SIZE + 100, "wrong password or damaged file"),
    (HEADER_SIZE + BLOCK_SIZE + 5, "block 1 fails authentication"),  # a tag byte
    (HEADER_SIZE + 3 * BLOCK_SIZE + 1000, "block 3 fails authentication"),
    (10, "wrong password or damaged file"),  # the nonce
])
def test_flipped_byte(offset: int, message: str, standard: dict[str, Path], keys: RcloneKeys, tmp_path: Path) -> None:
    data = bytearray(standard[BIG].read_bytes())
    data[offset] ^= 0x01
    (tmp_path / "f").write_bytes(data)
    with pytest.raises(IntegrityError, match=message):
        _decrypt_file(tmp_path / "f", keys)


def test_swapped_blocks(standard: dict[str, Path], keys: RcloneKeys, tmp_path: Path) -> None:
    data = standard[BIG].read_bytes()
    b1, b2 = (data[HEADER_SIZE + i * BLOCK_SIZE:HEADER_SIZE + (i + 1) * BLOCK_SIZE] for i in (1, 2))
    (tmp_path / "f").write_bytes(data[:HEADER_SIZE + BLOCK_SIZE] + b2 + b1 + data[HEADER_SIZE + 3 * BLOCK_SIZE:])
    with pytest.raises(IntegrityError, match="block 1"):
        _decrypt_file(tmp_path / "f", keys)


@pytest.mark.parametrize("cut", [5, HEADER_SIZE - 1, HEADER_SIZE + 10, HEADER_SIZE + 16,
                                 HEADER_SIZE + BLOCK_SIZE + 17, HEADER_SIZE + 2 * BLOCK_SIZE - 1])
def test_truncated_inside_header_or_block(cut: int, standard: dict[str, Path], keys: RcloneKeys,
                                          tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(standard[BIG].read_bytes()[:cut])
    with pytest.raises(IntegrityError, match="truncated|damaged"):
        _decrypt_file(tmp_path / "f", keys)


def test_truncation_at_a_block_boundary_goes_unnoticed(standard: dict[str, Path], plain: Path,
                                                      keys: RcloneKeys, tmp_path: Path) -> None:
    """A limit of the rclone format, kept here so nobody believes otherwise."""
    (tmp_path / "f").write_bytes(standard[BIG].read_bytes()[:HEADER_SIZE + 2 * BLOCK_SIZE])
    assert _decrypt_file(tmp_path / "f", keys) == (plain / BIG).read_bytes()[:2 * 64 * 1024]


def test_not_an_rclone_file(keys: RcloneKeys) -> None:
    with pytest.raises(IntegrityError, match="not an rclone crypt file"):
        decrypt_rclone(io.BytesIO(b"hello world" * 10), io.BytesIO(), keys)


class _Trickle(io.RawIOBase):
    """A source that returns at most 1000 bytes per read, like a pipe or socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(n, 1000))


class _Recorder(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def write(self, b) -> int:  # noqa: ANN001
        self.largest = max(self.largest, len(b))
        return super().write(b)


def test_streams_short_reads_in_bounded_writes(standard: dict[str, Path], plain: Path, keys: RcloneKeys) -> None:
    out = _Recorder()
    decrypt_rclone(_Trickle(standard[BIG].read_bytes()), out, keys)  # type: ignore[arg-type]
    assert out.getvalue() == (plain / BIG).read_bytes()
    assert out.largest == 64 * 1024


@pytest.mark.parametrize("password", ["pw1", "correct horse ✓ battery", "x" * 200])
def test_reveal_undoes_rclone_obscure(password: str) -> None:
    assert reveal(_obscure(password)) == password


@pytest.mark.parametrize("value", ["", "short", "not base64 at all!", "A" * 10])
def test_reveal_rejects_non_obscured_values(value: str) -> None:
    with pytest.raises(UserError, match="not an rclone obscured password"):
        reveal(value)


def test_bad_names_and_settings(keys: RcloneKeys) -> None:
    for name in ["hello.txt", "abc", "0" * 26 + "=", "ABCDEFGH" * 300]:
        with pytest.raises(UserError, match="not an rclone crypt name"):
            decrypt_name(name, keys)
    with pytest.raises(UserError, match="not an rclone crypt name"):
        decrypt_name("noextension", keys, mode="off")
    assert decrypt_name("x.y", keys, mode="off", suffix="none") == "x.y"
    with pytest.raises(UserError, match="unknown rclone filename_encoding"):
        decrypt_name("abc", keys, encoding="base16")
    with pytest.raises(UserError, match="unknown rclone filename_encryption"):
        decrypt_path("abc", keys, mode="strong")
    with pytest.raises(UserError, match="needs its password"):
        derive_keys("")


def test_secrets_stay_out_of_repr() -> None:
    keys = derive_keys(PASSWORD)
    assert repr(keys) == "RcloneKeys()" and MAGIC == b"RCLONE\x00\x00"
