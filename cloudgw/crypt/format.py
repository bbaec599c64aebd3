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
from array import array
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloudgw.crypt import compress
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
FLAG_COMPRESSED = 1


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

    @property
    def compressed(self) -> bool:
        """The compressed layout (flags bit 0): a plaintext size, chunk table, chunks of their own lengths."""
        return bool(self.raw[9] & FLAG_COMPRESSED)

    @functools.cached_property
    def nonce_key(self) -> bytes:
        """Derives each chunk's nonce (``seal_chunk``); from the file key, so one per file."""
        return hkdf(self.file_key, "cloudgw v1 chunk nonce")


def new_header(keys: Keys, *, compressed: bool = False) -> FileHeader:
    """A header for a new file: a random file key and id, wrapped for MK and the recovery key."""
    file_key, file_id = os.urandom(32), os.urandom(16)
    flags = FLAG_COMPRESSED if compressed else 0
    prefix = _PREFIX.pack(MAGIC, VERSION, flags, CHUNK.bit_length() - 1, 0, file_id)
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
    if version != VERSION or flags not in (0, FLAG_COMPRESSED) or log2 != CHUNK.bit_length() - 1:
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


def _seal(header: FileHeader, ad: bytes, plaintext: bytes) -> bytes:
    nonce = hmac.new(header.nonce_key, ad + plaintext, hashlib.sha256).digest()[:NONCE]
    return nonce + header.aead.encrypt(nonce, plaintext, ad)


def seal_chunk(header: FileHeader, index: int, plaintext: bytes, last: bool) -> bytes:
    """Chunk ``index`` as stored.  The nonce is synthetic (docs/encryption.md): HMAC of the
    index, the last-chunk marker and the plaintext under a key derived from the file key,
    so sealing the same chunk twice gives the same bytes (an unchanged chunk of a delta
    upload, a part read twice) and any other plaintext a nonce of its own."""
    return _seal(header, _ad(header.file_id, index, last), plaintext)


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


# -- the compressed layout (flags = 1) ---------------------------------------------------
#
# header || u64(P) || table blocks || chunks of their own lengths (docs/encryption.md,
# "Compressed files").  A table block lists 4096 chunks' stored lengths and nonces and
# where its first chunk starts, so one block is enough to find any of its chunks.

SIZE_FIELD = struct.Struct(">Q")
TABLE_START = HEADER_SIZE + SIZE_FIELD.size  # where table block 0 starts
TABLE_BLOCK = 4096  # chunks per table block: 256 MiB of plaintext
_ENTRY = struct.Struct(">I12s")  # stored length, nonce
_MAX_STORED_CHUNK = OVERHEAD + 1 + CHUNK  # a raw chunk with its codec byte
_TABLE_INFO = b"table"


def table_blocks(plain_size: int) -> int:
    return -(-chunk_count(plain_size) // TABLE_BLOCK)


def table_block_entries(block: int, plain_size: int) -> int:
    return min(TABLE_BLOCK, chunk_count(plain_size) - block * TABLE_BLOCK)


def table_block_size(entries: int) -> int:
    return OVERHEAD + 8 + _ENTRY.size * entries


def table_block_offset(block: int) -> int:
    """Where table block ``block`` starts (every block before it is full)."""
    return TABLE_START + block * table_block_size(TABLE_BLOCK)


def chunk_area(plain_size: int) -> int:
    """Where chunk 0 of a compressed file of ``plain_size`` bytes starts: the table's end."""
    last = table_blocks(plain_size) - 1
    return table_block_offset(last) + table_block_size(table_block_entries(last, plain_size))


@dataclass(frozen=True)
class TableBlock:
    """One opened table block: chunk ``first + k`` is stored at ``chunk_area + starts[k]``,
    ``lengths[k]`` bytes long, with nonce ``nonces[k]``."""

    first: int
    starts: array  # m + 1 offsets from the chunk area: the last one is where the block's chunks end
    nonces: bytes  # 12 per chunk

    def span(self, index: int) -> tuple[int, int]:
        """Chunk ``index``'s (start from the chunk area, stored length)."""
        k = index - self.first
        return self.starts[k], self.starts[k + 1] - self.starts[k]

    def nonce(self, index: int) -> bytes:
        k = index - self.first
        return self.nonces[12 * k:12 * k + 12]


def _table_ad(header: FileHeader, block: int, plain_size: int) -> bytes:
    return header.file_id + _TABLE_INFO + struct.pack(">QQ", block, plain_size)


def seal_table_block(header: FileHeader, block: int, plain_size: int, start: int,
                     entries: list[tuple[int, bytes]]) -> bytes:
    """Table block ``block`` as stored: ``start`` of its first chunk, (length, nonce) per chunk."""
    body = struct.pack(">Q", start) + b"".join(_ENTRY.pack(length, nonce) for length, nonce in entries)
    return _seal(header, _table_ad(header, block, plain_size), body)


def open_table_block(header: FileHeader, block: int, plain_size: int, stored: bytes, what: str) -> TableBlock:
    entries = table_block_entries(block, plain_size)
    if len(stored) != table_block_size(entries):
        raise IntegrityError(f"{what}: chunk table block {block} is truncated ({len(stored)} bytes)")
    try:
        body = header.aead.decrypt(stored[:NONCE], stored[NONCE:], _table_ad(header, block, plain_size))
    except InvalidTag:
        raise IntegrityError(f"{what}: chunk table block {block} does not authenticate (tampered, or the "
                             "plaintext size was changed)") from None
    starts = array("Q", [struct.unpack_from(">Q", body)[0]])
    if block == 0 and starts[0] != 0:
        raise IntegrityError(f"{what}: chunk table block 0 does not start at the first chunk")
    nonces = bytearray()
    for length, nonce in _ENTRY.iter_unpack(body[8:]):
        if not OVERHEAD + 1 <= length <= _MAX_STORED_CHUNK:
            raise IntegrityError(f"{what}: chunk table block {block} lists a chunk of {length} bytes")
        starts.append(starts[-1] + length)
        nonces += nonce
    return TableBlock(block * TABLE_BLOCK, starts, bytes(nonces))


def seal_body(header: FileHeader, index: int, body: bytes, last: bool) -> bytes:
    """Chunk ``index`` of a compressed file as stored, from its codec byte and payload."""
    return _seal(header, _ad(header.file_id, index, last), body)


def seal_compressed_chunk(header: FileHeader, index: int, plaintext: bytes, last: bool, codec: int) -> bytes:
    """Chunk ``index`` of a compressed file as stored: compressed with ``codec`` if it pays, sealed."""
    used, payload = compress.compress(codec, plaintext)
    return seal_body(header, index, bytes((used,)) + payload, last)


def open_compressed_chunk(header: FileHeader, index: int, stored: bytes, last: bool, plain_size: int,
                          nonce: bytes, what: str) -> bytes:
    """Chunk ``index``'s plaintext; ``nonce``: what the table lists for it."""
    if not OVERHEAD + 1 <= len(stored) <= _MAX_STORED_CHUNK:
        raise IntegrityError(f"{what}: chunk {index} is truncated ({len(stored)} bytes)")
    if stored[:NONCE] != nonce:
        raise IntegrityError(f"{what}: chunk {index} is not the one the chunk table lists")
    try:
        body = header.aead.decrypt(stored[:NONCE], stored[NONCE:], _ad(header.file_id, index, last))
    except InvalidTag:
        raise IntegrityError(f"{what}: chunk {index} does not authenticate: tampered, moved or "
                             "from another file") from None
    return compress.decompress(body[0], body[1:], chunk_length(index, plain_size), f"{what}: chunk {index}")


def read_plain_size(raw: bytes, what: str) -> int:
    """P from the 8 bytes after a compressed file's header."""
    if len(raw) < SIZE_FIELD.size:
        raise IntegrityError(f"{what}: cut short inside its header")
    return SIZE_FIELD.unpack_from(raw)[0]


# -- whole files (cloudgw decrypt, tests) --------------------------------------------

def encrypt_stream(src: BinaryIO, dst: BinaryIO, header: FileHeader, codec: int = compress.RAW) -> None:
    """Write ``src`` encrypted to ``dst``: header, then chunks (one chunk of lookahead).  A
    compressed header: ``src`` must be seekable (one pass for the table, one for the chunks)."""
    if header.compressed:
        _encrypt_compressed(src, dst, header, codec)
        return
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
    if header.compressed:
        _decrypt_compressed(src, dst, header, what)
        return
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


def _encrypt_compressed(src: BinaryIO, dst: BinaryIO, header: FileHeader, codec: int) -> None:
    start = src.tell()
    plain_size = src.seek(0, 2) - start
    count = chunk_count(plain_size)

    def sealed() -> Iterator[bytes]:
        src.seek(start)
        for index in range(count):
            yield seal_compressed_chunk(header, index, src.read(CHUNK), index == count - 1, codec)

    entries = [(len(stored), stored[:NONCE]) for stored in sealed()]
    dst.write(header.raw + SIZE_FIELD.pack(plain_size))
    offset = 0
    for block in range(table_blocks(plain_size)):
        mine = entries[block * TABLE_BLOCK:(block + 1) * TABLE_BLOCK]
        dst.write(seal_table_block(header, block, plain_size, offset, mine))
        offset += sum(length for length, _ in mine)
    for index, stored in enumerate(sealed()):
        if stored[:NONCE] != entries[index][1]:
            raise IntegrityError(f"chunk {index} changed between the two passes")
        dst.write(stored)


def _decrypt_compressed(src: BinaryIO, dst: BinaryIO, header: FileHeader, what: str) -> None:
    plain_size = read_plain_size(src.read(SIZE_FIELD.size), what)
    blocks = [open_table_block(header, b, plain_size, src.read(table_block_size(table_block_entries(b, plain_size))),
                               what) for b in range(table_blocks(plain_size))]
    for before, block in zip(blocks, blocks[1:]):
        if block.starts[0] != before.starts[-1]:
            raise IntegrityError(f"{what}: the chunk table's blocks do not follow each other")
    count = chunk_count(plain_size)
    for index in range(count):
        block = blocks[index // TABLE_BLOCK]
        dst.write(open_compressed_chunk(header, index, src.read(block.span(index)[1]), index == count - 1, plain_size,
                                        block.nonce(index), what))
    if src.read(1):
        raise IntegrityError(f"{what}: bytes after the last chunk")
