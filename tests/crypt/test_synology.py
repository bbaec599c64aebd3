"""Synology Cloud Sync reader against real Cloud Sync files.

The vectors are GPL-3.0 data, so they are read in place from the shared testdata folder
(``$CLOUDGW_SHARED_TESTDATA/synology-cloudsync``, default ``../shared/testdata/...`` beside the
checkout) and never copied here; every test skips when that folder is absent.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from cloudgw.crypt.synology import MAGIC, decrypt_synology, is_synology
from cloudgw.errors import IntegrityError, UserError

_env = os.environ.get("CLOUDGW_SHARED_TESTDATA")
DATA = (
    Path(_env) if _env else Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
) / "synology-cloudsync"

pytestmark = pytest.mark.skipif(
    not DATA.is_dir(),
    reason=f"Synology Cloud Sync vectors (GPL-3.0, read in place, never copied) not found at {DATA}; "
    "set CLOUDGW_SHARED_TESTDATA to the shared testdata directory",
)

VECTORS = [
    ("marnix", "single-line.txt"),  # format 1.0, no salt
    ("marnix", "ssingle-line.txt"),  # 3.0
    ("marnix", "ssingle-line-3.1.txt"),
    ("marnix", "42-bytes.txt"),
    ("marnix", "5000words-3.1.txt"),  # 4 chunks
    ("maxlaverse", "test.txt"),
    ("maxlaverse", "Mark.Twain-Tom.Sawyer.txt"),  # 34 chunks
]
OTHER = {"marnix": "maxlaverse", "maxlaverse": "marnix"}
ids = [f"{s}/{n}" for s, n in VECTORS]


def enc(set_: str, name: str) -> bytes:
    return (DATA / set_ / "enc" / name).read_bytes()


def plain(set_: str, name: str) -> bytes:
    return (DATA / set_ / "plain" / name).read_bytes()


def password(set_: str) -> bytes:
    return (DATA / set_ / "password.txt").read_bytes()


def pem(set_: str) -> bytes:
    return (DATA / set_ / "private.pem").read_bytes()


def secrets(set_: str) -> list[dict[str, bytes]]:
    return [{"password": password(set_)}, {"private_key_pem": pem(set_)}]


def decrypt(data: bytes, **secret: bytes) -> bytes:
    out = io.BytesIO()
    decrypt_synology(io.BytesIO(data), out, **secret)
    return out.getvalue()


def value_at(data: bytes, key: bytes) -> int:
    """Offset of the first byte of the string value stored under ``key``."""
    at = data.index(b"\x10" + len(key).to_bytes(2, "big") + key + b"\x10")
    return at + 3 + len(key) + 3


def replace_char(data: bytes, at: int) -> bytes:
    """Swap one ASCII character for another valid one, so only its meaning breaks."""
    new = b"B" if data[at] != ord("B") else b"C"
    return data[:at] + new + data[at + 1 :]


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def data_chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every data chunk's ciphertext."""
    out, at = [], 0
    tag = b"\x10\x00\x04data\x11"
    while (at := data.find(tag, at)) >= 0:
        length = int.from_bytes(data[at + len(tag) : at + len(tag) + 2], "big")
        out.append((at + len(tag) + 2, length))
        at += len(tag) + 2 + length
    return out


def assert_one_line_without_secrets(exc: Exception, set_: str) -> None:
    msg = str(exc)
    assert msg and "\n" not in msg
    assert password(set_).decode() not in msg


# --- good files -----------------------------------------------------------------------------


@pytest.mark.parametrize(("set_", "name"), VECTORS, ids=ids)
@pytest.mark.parametrize("how", ["password", "private_key_pem"])
def test_decrypts_to_the_expected_plaintext(set_: str, name: str, how: str) -> None:
    secret = password(set_) if how == "password" else pem(set_)
    assert decrypt(enc(set_, name), **{how: secret}) == plain(set_, name)


def test_pkcs8_private_key_works() -> None:
    key = serialization.load_pem_private_key(pem("marnix"), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert pkcs8.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert decrypt(enc("marnix", "42-bytes.txt"), private_key_pem=pkcs8) == plain("marnix", "42-bytes.txt")


def test_short_reads_are_handled() -> None:
    """Pipes return fewer bytes than asked; the reader must not take that for EOF."""

    class Trickle(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            return super().read(min(7, n if n is not None and n >= 0 else 7))

    out = io.BytesIO()
    decrypt_synology(Trickle(enc("marnix", "5000words-3.1.txt")), out, password=password("marnix"))
    assert out.getvalue() == plain("marnix", "5000words-3.1.txt")


def test_streams_with_bounded_reads_and_early_output() -> None:
    """Output starts long before the input ends, and no read asks for more than one object."""
    data = enc("maxlaverse", "Mark.Twain-Tom.Sawyer.txt")
    src = io.BytesIO(data)
    reads: list[int] = []
    first_write_at: list[int] = []

    class Src(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            reads.append(-1 if n is None else n)
            return src.read(n)

    class Dst(io.BytesIO):
        def write(self, b: bytes) -> int:  # type: ignore[override]
            if b and not first_write_at:
                first_write_at.append(src.tell())
            return super().write(b)

    out = Dst()
    decrypt_synology(Src(), out, password=password("maxlaverse"))
    assert out.getvalue() == plain("maxlaverse", "Mark.Twain-Tom.Sawyer.txt")
    assert 0 < min(reads) and max(reads) <= 65535
    assert first_write_at[0] < len(data) // 4


# --- wrong secrets: UserError, before any output ------------------------------------------------


@pytest.mark.parametrize(("set_", "name"), VECTORS, ids=ids)
def test_other_sets_password_is_a_user_error(set_: str, name: str) -> None:
    out = io.BytesIO()
    with pytest.raises(UserError, match="^wrong password for this Cloud Sync file$") as exc:
        decrypt_synology(io.BytesIO(enc(set_, name)), out, password=password(OTHER[set_]))
    assert out.getvalue() == b""
    assert_one_line_without_secrets(exc.value, OTHER[set_])


@pytest.mark.parametrize(("set_", "name"), VECTORS, ids=ids)
def test_other_sets_private_key_is_a_user_error(set_: str, name: str) -> None:
    out = io.BytesIO()
    with pytest.raises(UserError, match="^wrong private key for this Cloud Sync file$"):
        decrypt_synology(io.BytesIO(enc(set_, name)), out, private_key_pem=pem(OTHER[set_]))
    assert out.getvalue() == b""


@pytest.mark.parametrize(
    "secret",
    [{}, {"password": b"x", "private_key_pem": b"y"}],
    ids=["neither", "both"],
)
def test_exactly_one_secret(secret: dict[str, bytes]) -> None:
    with pytest.raises(UserError, match="exactly one"):
        decrypt(enc("marnix", "42-bytes.txt"), **secret)


def test_unreadable_private_keys_are_user_errors() -> None:
    key = serialization.load_pem_private_key(pem("marnix"), password=None)
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    for bad in (b"not a key", (DATA / "marnix" / "public.pem").read_bytes(), locked):
        with pytest.raises(UserError, match="^cannot read the private key"):
            decrypt(enc("marnix", "42-bytes.txt"), private_key_pem=bad)


def test_plain_text_is_not_a_cloud_sync_file() -> None:
    with pytest.raises(UserError, match="^not a Synology Cloud Sync file"):
        decrypt(plain("marnix", "42-bytes.txt"), password=password("marnix"))


# --- damage: IntegrityError, except where the damaged part is what identifies the secret ---------


@pytest.mark.parametrize(("set_", "name"), [VECTORS[0], VECTORS[5]], ids=[ids[0], ids[5]])
def test_every_truncation_is_an_integrity_error(set_: str, name: str) -> None:
    data = enc(set_, name)
    for n in range(len(data)):
        with pytest.raises(IntegrityError):
            decrypt(data[:n], password=password(set_))


def test_truncation_at_every_object_boundary_is_an_integrity_error() -> None:
    set_, name = VECTORS[6]
    data = enc(set_, name)
    chunks = data_chunks(data)
    assert len(chunks) == 34
    # Each data dict ends with its type pair and the end tag: a clean cut for the parser.
    ends = [data.index(b"\x40", at + length) + 1 for at, length in chunks]
    for n in ends:
        with pytest.raises(IntegrityError, match="truncated"):
            decrypt(data[:n], password=password(set_))


@pytest.mark.parametrize(("set_", "name"), VECTORS, ids=ids)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_flipped_ciphertext_byte_is_an_integrity_error(set_: str, name: str, where: str) -> None:
    data = enc(set_, name)
    chunks = data_chunks(data)
    at, length = {"first": chunks[0], "middle": chunks[len(chunks) // 2], "last": chunks[-1]}[where]
    offset = {"first": 0, "middle": length // 2, "last": length - 1}[where]
    for secret in secrets(set_):
        with pytest.raises(IntegrityError):
            decrypt(flip(data, at + offset), **secret)


@pytest.mark.parametrize(("set_", "name"), VECTORS, ids=ids)
def test_wrong_file_md5_is_an_integrity_error(set_: str, name: str) -> None:
    data = replace_char(enc(set_, name), value_at(enc(set_, name), b"file_md5") + 5)
    with pytest.raises(IntegrityError, match="^Cloud Sync file fails its MD5 check"):
        decrypt(data, password=password(set_))


@pytest.mark.parametrize(("set_", "name"), VECTORS, ids=ids)
def test_damaged_key_hashes_reject_only_their_own_secret(set_: str, name: str) -> None:
    """key1_hash names the password and key2_hash the key pair: damage there reads as a wrong
    secret (UserError), and the other secret still decrypts."""
    data = enc(set_, name)
    bad1 = replace_char(data, value_at(data, b"key1_hash") + 20)
    with pytest.raises(UserError, match="^wrong password"):
        decrypt(bad1, password=password(set_))
    assert decrypt(bad1, private_key_pem=pem(set_)) == plain(set_, name)
    bad2 = replace_char(data, value_at(data, b"key2_hash") + 20)
    with pytest.raises(UserError, match="^wrong private key"):
        decrypt(bad2, private_key_pem=pem(set_))
    assert decrypt(bad2, password=password(set_)) == plain(set_, name)


@pytest.mark.parametrize(("set_", "name"), VECTORS, ids=ids)
def test_damaged_wrapped_keys_are_integrity_errors(set_: str, name: str) -> None:
    """The secret was confirmed by its hash, so a key that then fails to unwrap is damage."""
    data = enc(set_, name)
    with pytest.raises(IntegrityError, match="enc_key1"):
        decrypt(replace_char(data, value_at(data, b"enc_key1") + 10), password=password(set_))
    with pytest.raises(IntegrityError, match="enc_key2"):
        decrypt(replace_char(data, value_at(data, b"enc_key2") + 10), private_key_pem=pem(set_))
    bad = replace_char(data, value_at(data, b"session_key_hash") + 20)
    for secret in secrets(set_):
        with pytest.raises(IntegrityError):
            decrypt(bad, **secret)


def test_damaged_header_bytes() -> None:
    data = enc("marnix", "42-bytes.txt")
    with pytest.raises(UserError, match="^not a Synology Cloud Sync file"):
        decrypt(flip(data, 0), password=password("marnix"))
    with pytest.raises(IntegrityError, match="header"):
        decrypt(flip(data, len(MAGIC) + 3), password=password("marnix"))
    with pytest.raises(IntegrityError, match="unexpected object type"):
        decrypt(flip(data, len(MAGIC) + 32), password=password("marnix"))  # the first dict tag


def test_trailing_garbage_is_an_integrity_error() -> None:
    data = enc("marnix", "42-bytes.txt")
    with pytest.raises(IntegrityError):
        decrypt(data + b"\x00", password=password("marnix"))


# --- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("set_", "name"), VECTORS, ids=ids)
def test_is_synology(set_: str, name: str) -> None:
    assert is_synology(enc(set_, name)[:64])
    assert not is_synology(plain(set_, name)[:64])


def test_is_synology_needs_the_whole_magic() -> None:
    assert not is_synology(b"")
    assert not is_synology(MAGIC[:-1])
    assert is_synology(MAGIC)
