"""The vault: one small object per encrypted remote that turns a password into keys.

``.cloudgw-vault.json`` (``docs/encryption.md``, "The vault") holds the master key
MK wrapped twice -- for the password (Argon2id, then AES-256-GCM) and for the
recovery key (X25519) -- plus the recovery public key and the settings every
gateway must agree on (name encryption, chunk size).  Those settings and the
recovery key are the associated data of both wraps: a cloud that edits them (to
have new files wrapped for a key of its own) makes every unlock fail.

Changing the password (``rewrap``) wraps the same MK again: no file changes.
The KDF runs once per unlock (per mount), never per file.  Nothing here logs;
no key or password appears in an exception message.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cloudgw.crypt import VAULT_NAME
from cloudgw.crypt.compress import CODECS as COMPRESS_CODES  # the codec byte ends the VAD
from cloudgw.errors import UserError

__all__ = ["VAULT_NAME", "KdfParams", "Keys", "create_vault", "unlock", "unlock_with_recovery", "rewrap"]

CHUNK_SIZE = 1 << 16
MAX_KDF_MEMORY_KIB = 4 << 20  # 4 GiB
MAX_KDF_ITERATIONS = 64
_FORMAT, _VERSION = "cloudgw-vault", 1


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost.  Defaults: ~0.25 s and 64 MiB on one core, once per mount."""

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def derive(self, password: bytes, salt: bytes) -> bytes:
        return Argon2id(salt=salt, length=32, iterations=self.iterations, lanes=self.lanes,
                        memory_cost=self.memory_kib).derive(password)


@dataclass(frozen=True, repr=False)
class Keys:
    """What an unlocked vault gives a gateway (``repr`` hides the keys: they may reach a log)."""

    vault_id: str
    master_key: bytes
    file_key_wrap: bytes  # KW: wraps each file's key for password holders
    names_key: bytes  # KN: AES-256-SIV over names
    recovery_public: bytes  # R, raw X25519
    encrypt_names: bool
    chunk_size: int
    compress: str | None = None  # the codec new files are compressed with ("zstd", "lz4"), or None

    def __repr__(self) -> str:
        return f"Keys(vault {self.vault_id})"


def hkdf(ikm: bytes, info: str, length: int = 32, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info.encode()).derive(ikm)


def x25519_wrap_key(shared: bytes, ephemeral: bytes, recipient: bytes, info: str) -> bytes:
    """The AES key both sides of an X25519 exchange derive (docs: KR, KV)."""
    return hkdf(shared, info, salt=ephemeral + recipient)


def raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keys_from_master(master_key: bytes, vault_id: str, recovery_public: bytes, encrypt_names: bool,
                     chunk_size: int, compress: str | None = None) -> Keys:
    return Keys(vault_id, master_key, hkdf(master_key, "cloudgw v1 file-key wrap"),
                hkdf(master_key, "cloudgw v1 names", 64), recovery_public, encrypt_names, chunk_size, compress)


def _vad(vault_id: str, recovery_public: bytes, encrypt_names: bool, chunk_size: int,
         compress: str | None = None) -> bytes:
    vad = b"cloudgw-vault v1 " + vault_id.encode() + recovery_public + struct.pack(">BI", encrypt_names, chunk_size)
    return vad + bytes((COMPRESS_CODES[compress],)) if compress is not None else vad


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(doc: dict[str, Any], key: str, length: int | None = None) -> bytes:
    try:
        value = base64.b64decode(doc[key], validate=True)
    except (KeyError, TypeError, ValueError):
        raise UserError(f"the vault is damaged: bad or missing {key!r}") from None
    if length is not None and len(value) != length:
        raise UserError(f"the vault is damaged: {key!r} has {len(value)} bytes, not {length}")
    return value


def _password_wrap(master_key: bytes, password: bytes, kdf: KdfParams, vad: bytes) -> dict[str, Any]:
    salt, nonce = os.urandom(16), os.urandom(12)
    kek = kdf.derive(password, salt)
    return {"kdf": {"name": "argon2id", "salt": _b64(salt), "memory_kib": kdf.memory_kib,
                    "iterations": kdf.iterations, "lanes": kdf.lanes},
            "master_key": {"nonce": _b64(nonce), "ciphertext": _b64(AESGCM(kek).encrypt(nonce, master_key, vad))}}


def create_vault(password: bytes, *, encrypt_names: bool = False, kdf: KdfParams = KdfParams(),
                 compress: str | None = None) -> tuple[bytes, bytes]:
    """A new vault's JSON and the recovery private key (PKCS#8 PEM, for the user alone);
    ``compress`` ("zstd", "lz4"): its gateways write compressed files."""
    if not password:
        raise UserError("the password is empty")
    if compress is not None and compress not in COMPRESS_CODES:
        raise UserError(f"unknown compression {compress!r} (use {', '.join(COMPRESS_CODES)})")
    vault_id = os.urandom(16).hex()
    master_key = os.urandom(32)
    recovery = X25519PrivateKey.generate()
    recovery_public = raw_public(recovery.public_key())
    vad = _vad(vault_id, recovery_public, encrypt_names, CHUNK_SIZE, compress)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = raw_public(ephemeral.public_key())
    kv = x25519_wrap_key(ephemeral.exchange(recovery.public_key()), ephemeral_public, recovery_public,
                         "cloudgw v1 recovery vault wrap")
    nonce = os.urandom(12)
    doc = {"format": _FORMAT, "version": _VERSION, "vault_id": vault_id,
           **_password_wrap(master_key, password, kdf, vad),
           "master_key_recovery": {"ephemeral": _b64(ephemeral_public), "nonce": _b64(nonce),
                                   "ciphertext": _b64(AESGCM(kv).encrypt(nonce, master_key, vad))},
           "recovery_public_key": _b64(recovery_public), "encrypt_names": encrypt_names, "chunk_size": CHUNK_SIZE,
           **({"compress": compress} if compress is not None else {})}
    pem = recovery.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return (json.dumps(doc, indent=2) + "\n").encode(), pem


@dataclass(frozen=True)
class _Parsed:
    doc: dict[str, Any]
    vault_id: str
    recovery_public: bytes
    encrypt_names: bool
    chunk_size: int
    kdf: KdfParams
    compress: str | None

    @property
    def vad(self) -> bytes:
        return _vad(self.vault_id, self.recovery_public, self.encrypt_names, self.chunk_size, self.compress)

    def keys(self, master_key: bytes) -> Keys:
        return keys_from_master(master_key, self.vault_id, self.recovery_public, self.encrypt_names,
                                self.chunk_size, self.compress)


def _parse(vault: bytes) -> _Parsed:
    try:
        doc = json.loads(vault)
    except ValueError:
        raise UserError("the vault is damaged: not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise UserError("not a cloudgw vault")
    if doc.get("version") != _VERSION:
        raise UserError(f"vault version {doc.get('version')!r} is not supported by this cloudgw (1)")
    kdf = doc.get("kdf")
    vault_id = doc.get("vault_id")
    if (not isinstance(kdf, dict) or kdf.get("name") != "argon2id" or not isinstance(vault_id, str) or len(vault_id) != 32
            or doc.get("chunk_size") != CHUNK_SIZE or not isinstance(doc.get("encrypt_names"), bool)):
        raise UserError("the vault is damaged or from a newer cloudgw (kdf, vault_id, chunk_size, encrypt_names)")
    try:
        params = KdfParams(int(kdf["memory_kib"]), int(kdf["iterations"]), int(kdf["lanes"]))
    except (KeyError, TypeError, ValueError):
        raise UserError("the vault is damaged: bad kdf parameters") from None
    # not authenticated (they are needed before anything can be): bounded, so a vault edited
    # in the cloud cannot make a mount run for hours or take all memory
    if not (1 <= params.lanes <= 64 and 8 * params.lanes <= params.memory_kib <= MAX_KDF_MEMORY_KIB
            and 1 <= params.iterations <= MAX_KDF_ITERATIONS):
        raise UserError(f"the vault's KDF cost is out of bounds (memory {params.memory_kib} KiB, "
                        f"{params.iterations} passes, {params.lanes} lanes): damaged vault?")
    compress = doc.get("compress")
    if compress is not None and compress not in COMPRESS_CODES:
        raise UserError(f"the vault asks for compression {compress!r}, which this cloudgw does not know")
    return _Parsed(doc, vault_id, _unb64(doc, "recovery_public_key", 32), doc["encrypt_names"], CHUNK_SIZE, params,
                   compress)


def _unlock_password(parsed: _Parsed, password: bytes) -> bytes:
    wrapped = parsed.doc.get("master_key") or {}
    kek = parsed.kdf.derive(password, _unb64(parsed.doc["kdf"], "salt", 16))
    try:
        return AESGCM(kek).decrypt(_unb64(wrapped, "nonce", 12), _unb64(wrapped, "ciphertext", 48), parsed.vad)
    except InvalidTag:
        raise UserError("wrong password for this encrypted remote (or its vault was altered)") from None


def unlock(vault: bytes, password: bytes) -> Keys:
    """The keys, from the password (runs the KDF once); ``UserError`` if it is wrong."""
    parsed = _parse(vault)
    return parsed.keys(_unlock_password(parsed, password))


def load_recovery_key(pem: bytes) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise UserError("the recovery key is not a PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise UserError("the recovery key is not an X25519 key (is it a cloudgw recovery key?)")
    return key


def unlock_with_recovery(vault: bytes, pem: bytes) -> Keys:
    """The keys, from the recovery private key instead of the password."""
    parsed = _parse(vault)
    key = load_recovery_key(pem)
    if raw_public(key.public_key()) != parsed.recovery_public:
        raise UserError("this recovery key does not belong to this vault")
    wrapped = parsed.doc.get("master_key_recovery") or {}
    ephemeral = _unb64(wrapped, "ephemeral", 32)
    kv = x25519_wrap_key(key.exchange(X25519PublicKey.from_public_bytes(ephemeral)), ephemeral,
                         parsed.recovery_public, "cloudgw v1 recovery vault wrap")
    try:
        master_key = AESGCM(kv).decrypt(_unb64(wrapped, "nonce", 12), _unb64(wrapped, "ciphertext", 48), parsed.vad)
    except InvalidTag:
        raise UserError("the vault's recovery wrap does not open with this key (vault altered?)") from None
    return parsed.keys(master_key)


def rewrap(vault: bytes, old_password: bytes, new_password: bytes, kdf: KdfParams | None = None) -> bytes:
    """The vault with MK wrapped for ``new_password`` (new salt; ``kdf`` or the old cost).
    Everything else -- MK, the recovery wrap, every file -- stays as it is."""
    if not new_password:
        raise UserError("the new password is empty")
    parsed = _parse(vault)
    master_key = _unlock_password(parsed, old_password)
    doc = dict(parsed.doc, **_password_wrap(master_key, new_password, kdf or parsed.kdf, parsed.vad))
    return (json.dumps(doc, indent=2) + "\n").encode()


def vault_id(vault: bytes) -> str:
    return _parse(vault).vault_id
