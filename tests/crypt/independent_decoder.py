"""A cloudgw (format version 1) decoder written from docs/encryption.md alone.

It imports nothing from cloudgw: only the standard library and `cryptography`.
Every failure (bad input, failed tag, wrong key, malformed sizes) raises
ValueError. Section references are to docs/encryption.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# "A file: header, then chunks"
MAGIC = b"CGWCRYPT"
HEADER_SIZE = 180
CHUNK_SIZE = 65536  # C; version 1 writes only this value
TAG = 16
NONCE = 12
OVERHEAD = NONCE + TAG  # 28 bytes per chunk

VAD_PREFIX = b"cloudgw-vault v1 "
_HEX32 = re.compile(r"[0-9a-f]{32}")


# ---------------------------------------------------------------- primitives

def _hkdf(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    # salt="" in the document: RFC 5869 HMAC with an empty key (== HashLen zero bytes).
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _gcm_open(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, ad)
    except InvalidTag:
        raise ValueError("authentication failed") from None


def _x25519(private: X25519PrivateKey, public_raw: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public_raw))
    except ValueError as e:  # e.g. an all-zero shared secret (low-order point)
        raise ValueError(f"X25519 failed: {e}") from None


def _raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load_recovery_key(pem: bytes | X25519PrivateKey) -> X25519PrivateKey:
    if isinstance(pem, X25519PrivateKey):
        return pem
    if isinstance(pem, str):
        pem = pem.encode("ascii", "replace")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"not a PEM private key: {e}") from None
    if not isinstance(key, X25519PrivateKey):
        raise ValueError("the recovery key is not an X25519 private key")
    return key


def kw_from_mk(mk: bytes) -> bytes:
    return _hkdf(mk, salt=b"", info=b"cloudgw v1 file-key wrap", length=32)


def kn_from_mk(mk: bytes) -> bytes:
    return _hkdf(mk, salt=b"", info=b"cloudgw v1 names", length=64)


# --------------------------------------------------------------------- vault

def _b64(value, size: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what}: not a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{what}: bad base64") from None
    if len(raw) != size:
        raise ValueError(f"{what}: {len(raw)} bytes, expected {size}")
    return raw


def _int(value, what: str, minimum: int = 1) -> int:
    if type(value) is not int or value < minimum:
        raise ValueError(f"{what}: expected an integer >= {minimum}")
    return value


class _Vault:
    def __init__(self, vault_json: bytes):
        try:
            v = json.loads(vault_json.decode("utf-8") if isinstance(vault_json, (bytes, bytearray)) else vault_json)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"vault is not UTF-8 JSON: {e}") from None
        if not isinstance(v, dict):
            raise ValueError("vault is not a JSON object")
        try:
            if v["format"] != "cloudgw-vault":
                raise ValueError("vault: wrong format")
            if v["version"] != 1 or type(v["version"]) is not int:
                raise ValueError("vault: unsupported version")
            vault_id = v["vault_id"]
            if not isinstance(vault_id, str) or not _HEX32.fullmatch(vault_id):
                raise ValueError("vault: bad vault_id")
            kdf = v["kdf"]
            if not isinstance(kdf, dict) or kdf["name"] != "argon2id":
                raise ValueError("vault: unsupported kdf")
            self.salt = _b64(kdf["salt"], 16, "kdf.salt")
            self.memory_kib = _int(kdf["memory_kib"], "kdf.memory_kib", 8)
            self.iterations = _int(kdf["iterations"], "kdf.iterations")
            self.lanes = _int(kdf["lanes"], "kdf.lanes")
            mkp = v["master_key"]
            self.mk_nonce = _b64(mkp["nonce"], 12, "master_key.nonce")
            self.mk_ct = _b64(mkp["ciphertext"], 48, "master_key.ciphertext")
            mkr = v["master_key_recovery"]
            self.rec_ephemeral = _b64(mkr["ephemeral"], 32, "master_key_recovery.ephemeral")
            self.rec_nonce = _b64(mkr["nonce"], 12, "master_key_recovery.nonce")
            self.rec_ct = _b64(mkr["ciphertext"], 48, "master_key_recovery.ciphertext")
            self.R = _b64(v["recovery_public_key"], 32, "recovery_public_key")
            encrypt_names = v["encrypt_names"]
            if not isinstance(encrypt_names, bool):
                raise ValueError("vault: encrypt_names is not a boolean")
            self.encrypt_names = encrypt_names
            self.chunk_size = _int(v["chunk_size"], "chunk_size")
        except (KeyError, TypeError) as e:
            raise ValueError(f"vault: missing or malformed member {e}") from None
        if self.chunk_size >= 1 << 32:
            raise ValueError("vault: chunk_size does not fit u32")
        self.vad = (VAD_PREFIX + vault_id.encode("ascii") + self.R
                    + struct.pack(">BI", int(self.encrypt_names), self.chunk_size))


def unlock_vault(vault_json: bytes, password: bytes) -> bytes:
    """The master key MK from the vault and the password (bytes, as given)."""
    if isinstance(password, str):
        password = password.encode("utf-8")
    v = _Vault(vault_json)
    try:
        kek = Argon2id(salt=v.salt, length=32, iterations=v.iterations, lanes=v.lanes,
                       memory_cost=v.memory_kib).derive(password)
    except Exception as e:  # noqa: BLE001 - bad parameters (e.g. memory < 8 * lanes)
        raise ValueError(f"Argon2id failed: {e}") from None
    return _gcm_open(kek, v.mk_nonce, v.mk_ct, v.vad)


def unlock_vault_recovery(vault_json: bytes, pem: bytes) -> bytes:
    """The master key MK from the vault and the recovery private key (PKCS#8 PEM)."""
    v = _Vault(vault_json)
    r = _load_recovery_key(pem)
    if _raw_public(r) != v.R:
        raise ValueError("this recovery key is not the vault's")
    kv = _hkdf(_x25519(r, v.rec_ephemeral), salt=v.rec_ephemeral + v.R,
               info=b"cloudgw v1 recovery vault wrap", length=32)
    return _gcm_open(kv, v.rec_nonce, v.rec_ct, v.vad)


# --------------------------------------------------------------------- files

def plain_size(stored_size: int) -> int | None:
    """Plaintext size of a stored object of `stored_size` bytes, None if no valid object has that size."""
    n = stored_size - HEADER_SIZE
    if n < 0:
        return None
    s = CHUNK_SIZE + OVERHEAD
    k, r = divmod(n, s)
    if r == 0:
        return k * CHUNK_SIZE if k >= 1 else None
    if r < OVERHEAD:
        return None
    if r == OVERHEAD and k >= 1:
        # An empty chunk after full ones: the size formula allows it, but the
        # chunking rule ("the last chunk holds the rest (1..C bytes)") never
        # produces it. Treated as invalid here; see the report.
        return None
    return k * CHUNK_SIZE + r - OVERHEAD


def _file_key(header: bytes, master_key: bytes | None, recovery_pem) -> bytes:
    ad = header[0:28]
    if master_key is not None:
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        return _gcm_open(kw_from_mk(master_key), header[28:40], header[40:88], ad)
    r = _load_recovery_key(recovery_pem)
    E = header[88:120]
    R = _raw_public(r)
    kr = _hkdf(_x25519(r, E), salt=E + R, info=b"cloudgw v1 recovery wrap", length=32)
    return _gcm_open(kr, header[120:132], header[132:180], ad)


def decrypt_file(data: bytes, master_key: bytes | None = None, recovery_pem=None) -> bytes:
    """The plaintext of one stored file object; needs MK or the recovery private key."""
    if (master_key is None) == (recovery_pem is None):
        raise ValueError("give exactly one of master_key and recovery_pem")
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise ValueError("shorter than the header")
    header = data[:HEADER_SIZE]
    if header[0:8] != MAGIC:
        raise ValueError("bad magic")
    if header[8] != 1:
        raise ValueError(f"unsupported format version {header[8]}")
    if header[9] != 0:
        raise ValueError(f"unknown flags {header[9]:#x}")
    if header[10] != 16:
        raise ValueError(f"chunk size 2**{header[10]}: version 1 only has 2**16")
    if header[11] != 0:
        raise ValueError("reserved byte is not 0")
    expected = plain_size(len(data))
    if expected is None:
        raise ValueError(f"{len(data)} bytes is not a valid object size")
    fid = header[12:28]
    fk = _file_key(header, master_key, recovery_pem)
    aead = AESGCM(fk)
    s = CHUNK_SIZE + OVERHEAD
    body = data[HEADER_SIZE:]
    count = max(1, -(-len(body) // s))
    out = []
    for i in range(count):
        stored = body[i * s:(i + 1) * s]
        last = i == count - 1
        if len(stored) < OVERHEAD or (not last and len(stored) != s):
            raise ValueError(f"chunk {i} has a bad size")
        ad = fid + struct.pack(">QB", i, 1 if last else 0)
        try:
            plain = aead.decrypt(stored[:NONCE], stored[NONCE:], ad)
        except InvalidTag:
            raise ValueError(f"chunk {i} fails authentication") from None
        if not last and len(plain) != CHUNK_SIZE:
            raise ValueError(f"chunk {i} is not full")
        if last and count > 1 and not plain:
            raise ValueError("empty final chunk after full ones")
        out.append(plain)
    result = b"".join(out)
    if len(result) != expected:
        raise ValueError("size mismatch")
    return result


# --------------------------------------------------------------------- names

def _b32decode(stored: str) -> bytes:
    if not isinstance(stored, str) or not stored or not re.fullmatch(r"[a-z2-7]+", stored):
        raise ValueError("not a lower-case unpadded base32 name")
    padded = stored.upper() + "=" * (-len(stored) % 8)
    try:
        raw = base64.b32decode(padded)
    except binascii.Error:
        raise ValueError("bad base32") from None
    # Only the canonical encoding is accepted (no stray bits, no impossible lengths).
    if base64.b32encode(raw).decode("ascii").rstrip("=").lower() != stored:
        raise ValueError("non-canonical base32")
    return raw


def _siv_open(stored: str, master_key: bytes, ad: list[bytes]) -> str:
    raw = _b32decode(stored)
    if len(raw) < 16:
        raise ValueError("shorter than the SIV tag")
    try:
        plain = AESSIV(kn_from_mk(master_key)).decrypt(raw, ad or None)
    except InvalidTag:
        raise ValueError("name fails authentication") from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("decrypted name is not UTF-8") from None


def decrypt_name(stored: str, master_key: bytes) -> str:
    """One path component, encrypted with encrypt_names on."""
    return _siv_open(stored, master_key, [])


def decrypt_symlink_target(stored: str, master_key: bytes) -> str:
    """A symlink target, encrypted with encrypt_names on."""
    return _siv_open(stored, master_key, [b"symlink"])
