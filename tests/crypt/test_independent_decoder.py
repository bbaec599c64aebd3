"""cloudgw's encrypted output, decoded by tests/crypt/independent_decoder.py.

The decoder was written from docs/encryption.md alone and imports nothing from
cloudgw; if these tests pass, the document specifies what cloudgw writes.
"""

from __future__ import annotations

import base64
import io
import json
import random
from functools import lru_cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudgw.crypt import format, vault
from cloudgw.crypt.names import NameCipher
from tests.crypt import independent_decoder as dec

C = 65536
S = C + 28
H = 180
SMALL_KDF = vault.KdfParams(memory_kib=8192, iterations=1, lanes=1)
PASSWORD = b"correct horse battery staple"


@lru_cache(maxsize=None)
def _setup(encrypt_names: bool):
    vault_json, recovery_pem = vault.create_vault(PASSWORD, encrypt_names=encrypt_names, kdf=SMALL_KDF)
    keys = vault.unlock(vault_json, PASSWORD)
    return vault_json, recovery_pem, keys


def _bytes(x) -> bytes:
    return x.encode() if isinstance(x, str) else bytes(x)


def _encrypt(keys, plain: bytes, header=None) -> bytes:
    h = header if header is not None else format.new_header(keys)
    dst = io.BytesIO()
    format.encrypt_stream(io.BytesIO(plain), dst, h)
    return dst.getvalue()


def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + size).randbytes(size)


@pytest.fixture(scope="module")
def env():
    vault_json, recovery_pem, keys = _setup(True)
    mk = dec.unlock_vault(_bytes(vault_json), PASSWORD)
    return vault_json, recovery_pem, keys, mk


# ------------------------------------------------------------------ the vault

def test_password_and_recovery_key_give_the_same_master_key(env):
    vault_json, recovery_pem, _keys, mk = env
    assert len(mk) == 32
    assert dec.unlock_vault_recovery(_bytes(vault_json), _bytes(recovery_pem)) == mk


def test_vault_document_shape(env):
    vault_json, recovery_pem, _keys, _mk = env
    v = json.loads(_bytes(vault_json))
    assert v["format"] == "cloudgw-vault" and v["version"] == 1 and v["chunk_size"] == C
    assert v["kdf"] == {**v["kdf"], "name": "argon2id", "memory_kib": 8192, "iterations": 1, "lanes": 1}
    assert v["encrypt_names"] is True
    key = serialization.load_pem_private_key(_bytes(recovery_pem), password=None)
    assert isinstance(key, X25519PrivateKey)
    assert _bytes(recovery_pem).startswith(b"-----BEGIN PRIVATE KEY-----")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.b64decode(v["recovery_public_key"]) == raw


def test_encrypt_names_off_is_authenticated_too():
    vault_json, recovery_pem, _keys = _setup(False)
    mk = dec.unlock_vault(_bytes(vault_json), PASSWORD)
    assert dec.unlock_vault_recovery(_bytes(vault_json), _bytes(recovery_pem)) == mk
    v = json.loads(_bytes(vault_json))
    assert v["encrypt_names"] is False
    v["encrypt_names"] = True  # flipping the setting breaks the vault's associated data
    with pytest.raises(ValueError):
        dec.unlock_vault(json.dumps(v).encode(), PASSWORD)


def test_wrong_password_fails(env):
    vault_json = env[0]
    with pytest.raises(ValueError):
        dec.unlock_vault(_bytes(vault_json), PASSWORD + b"x")
    with pytest.raises(ValueError):
        dec.unlock_vault(_bytes(vault_json), PASSWORD + b"\n")


def test_another_recovery_key_fails(env):
    vault_json = env[0]
    other = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ValueError):
        dec.unlock_vault_recovery(_bytes(vault_json), other)


def test_rewrap_new_password_works_old_fails(env):
    vault_json, recovery_pem, keys, mk = env
    new_json = vault.rewrap(vault_json, PASSWORD, b"new password")
    assert dec.unlock_vault(_bytes(new_json), b"new password") == mk
    with pytest.raises(ValueError):
        dec.unlock_vault(_bytes(new_json), PASSWORD)
    assert dec.unlock_vault_recovery(_bytes(new_json), _bytes(recovery_pem)) == mk
    # files written before the password change still decrypt with the MK from the new vault
    stored = _encrypt(keys, b"written before the rewrap")
    assert dec.decrypt_file(stored, master_key=dec.unlock_vault(_bytes(new_json), b"new password")) \
        == b"written before the rewrap"


def test_replaced_recovery_public_key_is_rejected(env):
    vault_json, _pem, _keys, _mk = env
    v = json.loads(_bytes(vault_json))
    attacker = X25519PrivateKey.generate()
    v["recovery_public_key"] = base64.b64encode(attacker.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    tampered = json.dumps(v).encode()
    with pytest.raises(ValueError):
        dec.unlock_vault(tampered, PASSWORD)
    attacker_pem = attacker.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ValueError):
        dec.unlock_vault_recovery(tampered, attacker_pem)


# ------------------------------------------------------------------ files

SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 200_003]


@pytest.mark.parametrize("size", SIZES)
def test_file_sizes_with_password_and_recovery_key(env, size):
    _vault_json, recovery_pem, keys, mk = env
    plain = _data(size)
    stored = _encrypt(keys, plain)
    chunks = max(1, -(-size // C))
    assert len(stored) == H + size + 28 * chunks
    assert stored[:12] == b"CGWCRYPT\x01\x00\x10\x00"
    assert dec.plain_size(len(stored)) == size
    assert dec.decrypt_file(stored, master_key=mk) == plain
    assert dec.decrypt_file(stored, recovery_pem=_bytes(recovery_pem)) == plain


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(size=st.integers(min_value=0, max_value=300 * 1024), seed=st.integers(0, 2**32 - 1))
def test_random_contents_and_sizes(size, seed):
    _vault_json, recovery_pem, keys = _setup(True)
    mk = dec.unlock_vault(_bytes(_vault_json), PASSWORD)
    plain = random.Random(seed).randbytes(size)
    stored = _encrypt(keys, plain)
    assert dec.plain_size(len(stored)) == size
    assert dec.decrypt_file(stored, master_key=mk) == plain
    assert dec.decrypt_file(stored, recovery_pem=_bytes(recovery_pem)) == plain


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(plain=st.binary(max_size=4096))
def test_random_small_contents(plain):
    _vault_json, _pem, keys = _setup(True)
    mk = dec.unlock_vault(_bytes(_vault_json), PASSWORD)
    assert dec.decrypt_file(_encrypt(keys, plain), master_key=mk) == plain


def test_plain_size_rejects_impossible_sizes():
    for n in (0, 179, 180, 181, 180 + 27, 180 + S + 1, 180 + S + 27):
        assert dec.plain_size(n) is None, n
    assert dec.plain_size(180 + 28) == 0
    assert dec.plain_size(180 + S) == C
    assert dec.plain_size(180 + S + 29) == C + 1


def test_file_from_another_vault_fails(env):
    _vault_json, _pem, _keys, mk = env
    other_json, other_pem, other_keys = _setup(False)
    stored = _encrypt(other_keys, b"other vault")
    with pytest.raises(ValueError):
        dec.decrypt_file(stored, master_key=mk)
    with pytest.raises(ValueError):
        dec.decrypt_file(stored, recovery_pem=_bytes(env[1]))
    assert dec.decrypt_file(stored, recovery_pem=_bytes(other_pem)) == b"other vault"


# --------------------------------------------------------- tampered files

def _three_chunks(env, seed=0):
    keys = env[2]
    plain = _data(3 * C - 100, seed)
    return plain, _encrypt(keys, plain)


def _chunk(stored: bytes, i: int) -> bytes:
    return stored[H + i * S:H + (i + 1) * S]


def _rejected(env, stored: bytes):
    _vault_json, recovery_pem, _keys, mk = env
    with pytest.raises(ValueError):
        dec.decrypt_file(stored, master_key=mk)
    with pytest.raises(ValueError):
        dec.decrypt_file(stored, recovery_pem=_bytes(recovery_pem))


@pytest.mark.parametrize("offset", [
    H + 5,                 # chunk 0 nonce
    H + 12 + 1000,         # chunk 0 ciphertext
    H + S - 1,             # chunk 0 tag
    H + S + 40000,         # chunk 1 ciphertext
    H + 2 * S + 20,        # last chunk ciphertext
    -1,                    # last byte of the file (last tag)
])
def test_flipped_byte_in_a_chunk(env, offset):
    _plain, stored = _three_chunks(env)
    b = bytearray(stored)
    b[offset] ^= 0x01
    _rejected(env, bytes(b))


@pytest.mark.parametrize("offset", [0, 8, 9, 10, 11, 12, 27, 30, 60, 100, 125, 150, 179])
def test_flipped_byte_in_the_header(env, offset):
    _plain, stored = _three_chunks(env)
    b = bytearray(stored)
    b[offset] ^= 0x01
    _vault_json, recovery_pem, _keys, mk = env
    # The password path reads header[0:88], the recovery path header[0:28] and [88:180]:
    # a flip in the other wrap's bytes goes unnoticed by that path.
    if not 88 <= offset < 180:
        with pytest.raises(ValueError):
            dec.decrypt_file(bytes(b), master_key=mk)
    if not 28 <= offset < 88:
        with pytest.raises(ValueError):
            dec.decrypt_file(bytes(b), recovery_pem=_bytes(recovery_pem))


@pytest.mark.parametrize("keep", [1, 2])
def test_truncated_at_a_chunk_boundary(env, keep):
    _plain, stored = _three_chunks(env)
    truncated = stored[:H + keep * S]
    assert dec.plain_size(len(truncated)) == keep * C  # the size alone looks valid
    _rejected(env, truncated)


def test_truncated_to_the_header_or_mid_chunk(env):
    _plain, stored = _three_chunks(env)
    for n in (0, 100, H, H + 27, H + S + 10, len(stored) - 1):
        _rejected(env, stored[:n])


def test_extra_bytes_appended(env):
    _plain, stored = _three_chunks(env)
    _rejected(env, stored + b"\0" * 28)
    _rejected(env, stored + stored[H:H + S])


def test_two_chunks_swapped(env):
    _plain, stored = _three_chunks(env)
    swapped = stored[:H] + _chunk(stored, 1) + _chunk(stored, 0) + stored[H + 2 * S:]
    assert len(swapped) == len(stored)
    _rejected(env, swapped)


def test_two_full_chunks_of_an_exact_multiple_swapped(env):
    keys = env[2]
    stored = _encrypt(keys, _data(2 * C, 7))
    assert len(stored) == H + 2 * S
    _rejected(env, stored[:H] + _chunk(stored, 1) + _chunk(stored, 0))


def test_chunk_from_another_file_at_the_same_index(env):
    _plain_a, a = _three_chunks(env, seed=1)
    _plain_b, b = _three_chunks(env, seed=2)
    mixed = a[:H + S] + _chunk(b, 1) + a[H + 2 * S:]
    assert len(mixed) == len(a)
    _rejected(env, mixed)


def test_header_from_another_file(env):
    _plain_a, a = _three_chunks(env, seed=1)
    _plain_b, b = _three_chunks(env, seed=2)
    _rejected(env, b[:H] + a[H:])


def test_same_header_rewritten_chunk_authenticates(env):
    """Documented: a gateway keeps the header (FK, FID) when it rewrites chunks, so an old
    chunk put back at the same index authenticates. Checked here so the document stays true."""
    _vault_json, _pem, keys, mk = env
    h = format.new_header(keys)
    old_plain = _data(2 * C + 5, 3)
    new_plain = bytearray(old_plain)
    new_plain[C + 10] ^= 0xFF
    old = _encrypt(keys, old_plain, h)
    new = _encrypt(keys, bytes(new_plain), h)
    assert old[:H] == new[:H]
    rolled = new[:H + S] + _chunk(old, 1) + new[H + 2 * S:]
    assert dec.decrypt_file(rolled, master_key=mk) == old_plain


# ------------------------------------------------------------------ names

NAMES = ["a", "report.pdf", "x" * 143, "Ünïcødé ñame", "日本語のファイル名.txt", "emoji 🦀🔐", "with space", ".hidden",
         "é" * 71]


@pytest.mark.parametrize("name", NAMES)
def test_names(env, name):
    _vault_json, _pem, keys, mk = env
    nc = NameCipher(keys.names_key)
    stored = nc.encrypt(name)
    b = len(name.encode("utf-8"))
    assert len(stored) == -(-(b + 16) * 8 // 5)
    assert stored == stored.lower() and "=" not in stored
    assert nc.encrypt(name) == stored  # deterministic
    assert dec.decrypt_name(stored, mk) == name
    with pytest.raises(ValueError):  # a name is not a symlink target
        dec.decrypt_symlink_target(stored, mk)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(name=st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and "\0" not in s
                                                    and len(s.encode("utf-8")) <= 143))
def test_random_unicode_names(name):
    _vault_json, _pem, keys = _setup(True)
    mk = dec.unlock_vault(_bytes(_vault_json), PASSWORD)
    stored = NameCipher(keys.names_key).encrypt(name)
    assert dec.decrypt_name(stored, mk) == name


@pytest.mark.parametrize("target", ["../other/file", "/absolute/path", "relative", "ünï/日本/🦀", "a" * 100])
def test_symlink_targets(env, target):
    _vault_json, _pem, keys, mk = env
    nc = NameCipher(keys.names_key)
    stored = nc.encrypt_target(target)
    assert dec.decrypt_symlink_target(stored, mk) == target
    with pytest.raises(ValueError):
        dec.decrypt_name(stored, mk)


def test_names_via_the_recovery_key(env):
    vault_json, recovery_pem, keys, _mk = env
    mk = dec.unlock_vault_recovery(_bytes(vault_json), _bytes(recovery_pem))
    assert dec.decrypt_name(NameCipher(keys.names_key).encrypt("secret plans"), mk) == "secret plans"


def test_tampered_names_are_rejected(env):
    _vault_json, _pem, keys, mk = env
    stored = NameCipher(keys.names_key).encrypt("tamper me")
    flipped = ("b" if stored[5] == "a" else "a").join((stored[:5], stored[6:]))
    for bad in (flipped, stored[:-1], stored + "a", stored.upper(), "", "zz", stored[:20] + "=" + stored[21:]):
        with pytest.raises(ValueError):
            dec.decrypt_name(bad, mk)
    other_mk = dec.unlock_vault(_bytes(_setup(False)[0]), PASSWORD)
    with pytest.raises(ValueError):
        dec.decrypt_name(stored, other_mk)
