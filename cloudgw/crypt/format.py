"""cloudgw's encrypted file format: a 180-byte header, then AES-256-GCM chunks.

The byte layout, the key wraps and the size arithmetic are specified in
``docs/encryption.md`` ("A file: header, then chunks"); this module is that
section in code.  Everything is a pure function of bytes and keys: the
encrypting remote (``cloudgw.remotes.crypt``) maps offsets with it, and
``cloudgw decrypt`` streams whole files with it.

A chunk that does not authenticate raises ``IntegrityError`` naming the object
and the chunk: its bytes are never returned.  AES-GCM from ``cryptography``
releases the GIL, so worker threads encrypt and decrypt in parallel.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloudgw.crypt.vault import Keys, hkdf, raw_public, x25519_wrap_key
from cloudgw.errors import IntegrityError

MAGIC = b"CGWCRYPT"
VERSION = 1
HEADER_SIZE = 180
NONCE, TAG = 12, 16
OVERHEAD = NONCE + TAG  # bytes a chunk adds
CHUNK = 1 << 16
SLOT = CHUNK + OVERHEAD  # a full chunk as stored
_PREFIX = struct.Struct(">8sBBBB16s")  # magic, version, flags, log2 chunk, reserved, file id
_RECOVERY_INFO = "cloudgw v1 recovery wrap"


@dataclass(frozen=True, repr=False)
class FileHeader:
    """One file's key and id, and the exact header bytes that carry them."""

    file_key: bytes
    file_id: bytes
    raw: bytes

    def __repr__(self) -> str:
        return f"FileHeader({self.file_id.hex()})"

    @functools.cached_property
    def aead(self) -> AESGCM:
        return AESGCM(self.file_key)

    @functools.cached_property
    def nonce_key(self) -> bytes:
        """Derives each chunk's nonce (``seal_chunk``); from the file key, so one per file."""
        return hkdf(self.file_key, "cloudgw v1 chunk nonce")


def new_header(keys: Keys) -> FileHeader:
    """A header for a new file: a random file key and id, wrapped for MK and the recovery key."""
    file_key, file_id = os.urandom(32), os.urandom(16)
    prefix = _PREFIX.pack(MAGIC, VERSION, 0, CHUNK.bit_length() - 1, 0, file_id)
    n1, n2 = os.urandom(NONCE), os.urandom(NONCE)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = raw_public(ephemeral.public_key())
    recipient = X25519PublicKey.from_public_bytes(keys.recovery_public)
    kr = x25519_wrap_key(ephemeral.exchange(recipient), ephemeral_public, keys.recovery_public, _RECOVERY_INFO)
    raw = (prefix + n1 + AESGCM(keys.file_key_wrap).encrypt(n1, file_key, prefix)
           + ephemeral_public + n2 + AESGCM(kr).encrypt(n2, file_key, prefix))
    assert len(raw) == HEADER_SIZE
    return FileHeader(file_key, file_id, raw)


def _prefix(raw: bytes, what: str) -> bytes:
    if len(raw) < HEADER_SIZE:
        raise IntegrityError(f"{what}: not a cloudgw encrypted file (only {len(raw)} bytes)")
    magic, version, flags, log2, _reserved, _file_id = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise IntegrityError(f"{what}: not a cloudgw encrypted file (no CGWCRYPT header)")
    if version != VERSION or flags != 0 or log2 != CHUNK.bit_length() - 1:
        raise IntegrityError(f"{what}: encrypted with an unsupported format (version {version}, flags {flags})")
    return raw[:_PREFIX.size]


def open_header(raw: bytes, keys: Keys, what: str) -> FileHeader:
    """The file key from a header, with the vault's keys (what a gateway does)."""
    prefix = _prefix(raw, what)
    try:
        file_key = AESGCM(keys.file_key_wrap).decrypt(raw[28:40], raw[40:88], prefix)
    except InvalidTag:
        raise IntegrityError(f"{what}: the file key does not open with this vault's key "
                             "(damaged, or written by another vault)") from None
    return FileHeader(file_key, prefix[12:28], raw[:HEADER_SIZE])


def open_header_recovery(raw: bytes, recovery: X25519PrivateKey, what: str) -> FileHeader:
    """The file key from a header, with the recovery private key alone (no vault)."""
    prefix = _prefix(raw, what)
    ephemeral = raw[88:120]
    kr = x25519_wrap_key(recovery.exchange(X25519PublicKey.from_public_bytes(ephemeral)), ephemeral,
                         raw_public(recovery.public_key()), _RECOVERY_INFO)
    try:
        file_key = AESGCM(kr).decrypt(raw[120:132], raw[132:180], prefix)
    except InvalidTag:
        raise IntegrityError(f"{what}: the file key does not open with this recovery key "
                             "(damaged, or another vault's file)") from None
    return FileHeader(file_key, prefix[12:28], raw[:HEADER_SIZE])


# -- sizes and offsets ----------------------------------------------------------------

def chunk_count(plain_size: int) -> int:
    """An empty file still has one (empty, last) chunk."""
    return max(1, -(-plain_size // CHUNK))


def stored_size(plain_size: int) -> int:
    return HEADER_SIZE + plain_size + chunk_count(plain_size) * OVERHEAD


def plain_size(stored: int) -> int | None:
    """The plaintext size of a stored object of ``stored`` bytes; None if no valid object has that size."""
    k, r = divmod(stored - HEADER_SIZE, SLOT)
    if stored < HEADER_SIZE + OVERHEAD or (r == 0 and k == 0) or 0 < r < OVERHEAD or (r == OVERHEAD and k > 0):
        return None
    return k * CHUNK if r == 0 else k * CHUNK + r - OVERHEAD


def chunk_offset(index: int) -> int:
    """Where chunk ``index`` starts in the stored object."""
    return HEADER_SIZE + index * SLOT


def chunk_length(index: int, plain_size: int) -> int:
    """Plaintext bytes in chunk ``index`` of a file of ``plain_size`` bytes."""
    return max(0, min(CHUNK, plain_size - index * CHUNK))


# -- chunks -----------------------------------------------------------------------------

def _ad(file_id: bytes, index: int, last: bool) -> bytes:
    return file_id + struct.pack(">QB", index, last)


def seal_chunk(header: FileHeader, index: int, plaintext: bytes, last: bool) -> bytes:
    """Chunk ``index`` as stored.  The nonce is synthetic (docs/encryption.md): HMAC of the
    index, the last-chunk marker and the plaintext under a key derived from the file key,
    so sealing the same chunk twice gives the same bytes (an unchanged chunk of a delta
    upload, a part read twice) and any other plaintext a nonce of its own."""
    ad = _ad(header.file_id, index, last)
    nonce = hmac.new(header.nonce_key, ad + plaintext, hashlib.sha256).digest()[:NONCE]
    return nonce + header.aead.encrypt(nonce, plaintext, ad)


def open_chunk(header: FileHeader, index: int, stored: bytes, last: bool, what: str) -> bytes:
    """Chunk ``index``'s plaintext; ``IntegrityError`` if it was altered, moved, cut or is not the
    last/not-last chunk it should be."""
    if len(stored) < OVERHEAD or (not last and len(stored) != SLOT) or (len(stored) == OVERHEAD and index > 0):
        raise IntegrityError(f"{what}: chunk {index} is truncated ({len(stored)} bytes)")
    try:
        return header.aead.decrypt(stored[:NONCE], stored[NONCE:], _ad(header.file_id, index, last))
    except InvalidTag:
        end = " (the file was cut short?)" if last else ""
        raise IntegrityError(f"{what}: chunk {index} does not authenticate: tampered, moved or "
                             f"from another file{end}") from None


# -- whole files (cloudgw decrypt, tests) --------------------------------------------

def encrypt_stream(src: BinaryIO, dst: BinaryIO, header: FileHeader) -> None:
    """Write ``src`` encrypted to ``dst``: header, then chunks (one chunk of lookahead)."""
    dst.write(header.raw)
    index, current = 0, src.read(CHUNK)
    while True:
        following = src.read(CHUNK) if len(current) == CHUNK else b""
        dst.write(seal_chunk(header, index, current, last=not following))
        if not following:
            return
        index, current = index + 1, following


def decrypt_stream(src: BinaryIO, dst: BinaryIO, header: FileHeader, what: str) -> None:
    """Write the plaintext of the chunks in ``src`` (positioned after the header) to ``dst``.

    Streams with one chunk of lookahead, to know which chunk is the last; bytes
    go to ``dst`` only once their chunk authenticated, so a damaged file leaves a
    prefix of the true plaintext in ``dst`` and raises ``IntegrityError``."""
    index, current = 0, src.read(SLOT)
    while True:
        following = src.read(SLOT) if len(current) == SLOT else b""
        dst.write(open_chunk(header, index, current, last=not following, what=what))
        if not following:
            return
        index, current = index + 1, following


def read_header(src: BinaryIO, what: str) -> bytes:
    raw = src.read(HEADER_SIZE)
    _prefix(raw, what)
    return raw
