"""A cloudgw (format version 1) decoder written from docs/encryption.md alone.

It imports nothing from cloudgw: only the standard library, `cryptography`, and
for the compressed layout ("Compressed files") `zstandard` and `lz4`.
Every failure (bad input, failed tag, wrong key, malformed sizes, a payload that
does not decompress to the chunk's exact length) raises ValueError. Section
references are to docs/encryption.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct

import lz4.block
import zstandard
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

# "Compressed files"
FLAG_COMPRESSED = 1  # header[9], bit 0
SIZE_FIELD = 8  # u64(P) right after the header
PREFIX_SIZE = HEADER_SIZE + SIZE_FIELD  # 188: enough to learn P
TABLE_ENTRIES = 4096  # chunks per table block
TABLE_ENTRY = 16  # u32(L_i) || nonce_i
TABLE_OVERHEAD = NONCE + 8 + TAG  # 36: nonce, u64(O_b), tag
TABLE_AD = b"table"
CODEC_RAW, CODEC_ZSTD, CODEC_LZ4 = 0, 1, 2
MIN_COMPRESSED_CHUNK = NONCE + 1 + TAG  # 29: a codec byte is always sealed
MAX_COMPRESSED_CHUNK = MIN_COMPRESSED_CHUNK + (1 << 16)  # a raw chunk: nothing is stored bigger
VAULT_COMPRESS = {"zstd": 1, "lz4": 2}  # the vault's `compress` -> the VAD's extra byte

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
            # "Compressed files": the member is absent, "zstd" or "lz4"; nothing else.
            self.compress = None
            if "compress" in v:
                compress = v["compress"]
                if not isinstance(compress, str) or compress not in VAULT_COMPRESS:
                    raise ValueError(f"vault: unknown compress value {compress!r}")
                self.compress = compress
        except (KeyError, TypeError) as e:
            raise ValueError(f"vault: missing or malformed member {e}") from None
        if self.chunk_size >= 1 << 32:
            raise ValueError("vault: chunk_size does not fit u32")
        self.vad = (VAD_PREFIX + vault_id.encode("ascii") + self.R
                    + struct.pack(">BI", int(self.encrypt_names), self.chunk_size))
        if self.compress is not None:
            self.vad += bytes([VAULT_COMPRESS[self.compress]])


def vault_compress(vault_json: bytes) -> str | None:
    """The vault's `compress` member ("zstd", "lz4"), None without one. Not authenticated
    by itself: unlock_vault fails if it was changed, since it is in the VAD."""
    return _Vault(vault_json).compress


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


def _check_header(data: bytes) -> bytes:
    """The 180-byte header, its clear fields checked (the key unwrap checks the rest)."""
    if len(data) < HEADER_SIZE:
        raise ValueError("shorter than the header")
    header = bytes(data[:HEADER_SIZE])
    if header[0:8] != MAGIC:
        raise ValueError("bad magic")
    if header[8] != 1:
        raise ValueError(f"unsupported format version {header[8]}")
    if header[9] not in (0, FLAG_COMPRESSED):
        raise ValueError(f"unknown flags {header[9]:#x}")
    if header[10] != 16:
        raise ValueError(f"chunk size 2**{header[10]}: version 1 only has 2**16")
    if header[11] != 0:
        raise ValueError("reserved byte is not 0")
    return header


def _keys(data, master_key, recovery_pem) -> tuple[bytes, bytes, AESGCM]:
    if (master_key is None) == (recovery_pem is None):
        raise ValueError("give exactly one of master_key and recovery_pem")
    header = _check_header(data)
    return header, header[12:28], AESGCM(_file_key(header, master_key, recovery_pem))


def file_key(data: bytes, master_key: bytes | None = None, recovery_pem=None) -> bytes:
    """FK from a stored object's header (for tests that check what the document says of nonces)."""
    if (master_key is None) == (recovery_pem is None):
        raise ValueError("give exactly one of master_key and recovery_pem")
    return _file_key(_check_header(data), master_key, recovery_pem)


def chunk_nonce_key(fk: bytes) -> bytes:
    """NK = HKDF(FK, no salt, info = "cloudgw v1 chunk nonce"): what synthetic nonces are keyed with."""
    return _hkdf(fk, salt=b"", info=b"cloudgw v1 chunk nonce", length=32)


def is_compressed(data: bytes) -> bool:
    """Whether a stored object (or its first 180 bytes) has the compressed layout."""
    return _check_header(data)[9] == FLAG_COMPRESSED


def listing_size(prefix: bytes, stored_size: int) -> int | None:
    """The plaintext size a listing shows, from the object's first 188 bytes (or more) and its
    stored size: P in clear for a compressed file (authenticated only when the file is read),
    plain_size(stored_size) otherwise. None if no valid object has that size."""
    if not is_compressed(prefix):
        return plain_size(stored_size)
    if len(prefix) < PREFIX_SIZE:
        raise ValueError("a compressed file's size needs its first 188 bytes")
    P = struct.unpack(">Q", prefix[HEADER_SIZE:PREFIX_SIZE])[0]
    n = _chunk_count(P)
    smallest = PREFIX_SIZE + TABLE_OVERHEAD * _block_count(n) + (TABLE_ENTRY + MIN_COMPRESSED_CHUNK) * n
    return P if stored_size >= smallest else None


# ------------------------------------------------------ plain layout (flags 0)

def _plain_chunks(data: bytes, fid: bytes, aead: AESGCM):
    expected = plain_size(len(data))
    if expected is None:
        raise ValueError(f"{len(data)} bytes is not a valid object size")
    s = CHUNK_SIZE + OVERHEAD
    body = data[HEADER_SIZE:]
    count = max(1, -(-len(body) // s))
    total = 0
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
        total += len(plain)
        if last and total != expected:
            raise ValueError("size mismatch")
        yield plain


# ------------------------------------------------- compressed layout (flags 1)

def _chunk_count(P: int) -> int:
    return max(1, -(-P // CHUNK_SIZE))  # n = max(1, ceil(P / C))


def _block_count(n: int) -> int:
    return -(-n // TABLE_ENTRIES)  # B = ceil(n / 4096)


def _chunk_length(i: int, n: int, P: int) -> int:
    return CHUNK_SIZE if i < n - 1 else P - (n - 1) * CHUNK_SIZE


class _Layout:
    """P, n, B and A of a compressed object, from its first 188 bytes."""

    def __init__(self, data: bytes):
        if len(data) < PREFIX_SIZE:
            raise ValueError("shorter than the header and the plaintext size")
        self.P = struct.unpack(">Q", data[HEADER_SIZE:PREFIX_SIZE])[0]
        self.n = _chunk_count(self.P)
        self.B = _block_count(self.n)
        self.A = PREFIX_SIZE + TABLE_OVERHEAD * self.B + TABLE_ENTRY * self.n  # 188 + sum(36 + 16 m_b)
        if self.A > len(data):
            raise ValueError(f"a table for {self.P} plaintext bytes does not fit in {len(data)} bytes")

    def block(self, data: bytes, fid: bytes, aead: AESGCM, b: int) -> tuple[int, int, list[tuple[int, bytes]]]:
        """Table block b, read and authenticated on its own: (first chunk, O_b, [(L_i, nonce_i)])."""
        first = b * TABLE_ENTRIES
        m = min(self.n, first + TABLE_ENTRIES) - first
        pos = PREFIX_SIZE + b * (TABLE_OVERHEAD + TABLE_ENTRY * TABLE_ENTRIES)
        stored = data[pos:pos + TABLE_OVERHEAD + TABLE_ENTRY * m]
        if len(stored) != TABLE_OVERHEAD + TABLE_ENTRY * m:
            raise ValueError(f"table block {b} is cut short")
        ad = fid + TABLE_AD + struct.pack(">QQ", b, self.P)
        try:
            plain = aead.decrypt(stored[:NONCE], stored[NONCE:], ad)
        except InvalidTag:
            raise ValueError(f"table block {b} fails authentication") from None
        O_b = struct.unpack(">Q", plain[:8])[0]
        entries = []
        for j in range(m):
            e = plain[8 + TABLE_ENTRY * j:8 + TABLE_ENTRY * (j + 1)]
            L = struct.unpack(">I", e[:4])[0]
            if L < MIN_COMPRESSED_CHUNK:
                raise ValueError(f"chunk {first + j}: stored length {L} < {MIN_COMPRESSED_CHUNK}")
            if L > MAX_COMPRESSED_CHUNK:
                raise ValueError(f"chunk {first + j}: stored length {L} > {MAX_COMPRESSED_CHUNK}")
            entries.append((L, e[4:]))
        return first, O_b, entries

    def open_chunk(self, data: bytes, fid: bytes, aead: AESGCM, i: int, start: int,
                   L: int, nonce: bytes) -> tuple[int, bytes]:
        """(codec, plaintext) of chunk i, stored at `start` with length L and the table's nonce."""
        stored = data[start:start + L]
        if len(stored) != L:
            raise ValueError(f"chunk {i} runs past the end of the object")
        if stored[:NONCE] != nonce:
            raise ValueError(f"chunk {i} is not stored with the nonce its table entry names")
        last = i == self.n - 1
        ad = fid + struct.pack(">QB", i, 1 if last else 0)
        try:
            sealed = aead.decrypt(stored[:NONCE], stored[NONCE:], ad)
        except InvalidTag:
            raise ValueError(f"chunk {i} fails authentication") from None
        want = _chunk_length(i, self.n, self.P)
        codec, payload = sealed[0], sealed[1:]  # L >= 29: there is a codec byte
        if codec == CODEC_RAW:
            plain = payload
        elif codec == CODEC_ZSTD:
            plain = _unzstd(payload, want, i)
        elif codec == CODEC_LZ4:
            plain = _unlz4(payload, want, i)
        else:
            raise ValueError(f"chunk {i}: unknown codec {codec}")
        if len(plain) != want:
            raise ValueError(f"chunk {i} decompresses to {len(plain)} bytes, not {want}")
        return codec, plain


def _unzstd(payload: bytes, want: int, i: int) -> bytes:
    """Exactly one zstd frame and nothing after it, decompressing to `want` bytes (never
    more than that is produced: a frame that says or makes more is refused first)."""
    d = zstandard.ZstdDecompressor()
    try:
        params = zstandard.get_frame_parameters(payload)
        if params.content_size != zstandard.CONTENTSIZE_UNKNOWN and params.content_size != want:
            raise ValueError(f"chunk {i}: zstd frame of {params.content_size} bytes, not {want}")
        # Bounded: with a content size (== want) the output buffer is that size; without one,
        # more than max(want, 1) bytes is an error.
        plain = d.decompress(payload, max_output_size=max(want, 1))
        rest = d.decompressobj()  # output bounded by the call above
        rest.decompress(payload)
        if not rest.eof or rest.unused_data:
            raise ValueError(f"chunk {i}: not exactly one zstd frame")
    except zstandard.ZstdError as e:
        raise ValueError(f"chunk {i}: bad zstd frame: {e}") from None
    return plain


def _unlz4(payload: bytes, want: int, i: int) -> bytes:
    try:
        return lz4.block.decompress(payload, uncompressed_size=want)
    except lz4.block.LZ4BlockError as e:
        raise ValueError(f"chunk {i}: bad LZ4 block: {e}") from None


def _compressed_plan(data: bytes, fid: bytes, aead: AESGCM) -> tuple[_Layout, list]:
    lay = _Layout(data)
    # The whole table first (it is small): every length, where each block says its chunks
    # start, and where the object must end, before any chunk is opened.
    plan = []
    offset = 0  # from the end of the table
    for b in range(lay.B):
        first, O_b, entries = lay.block(data, fid, aead, b)
        if O_b != offset:
            raise ValueError(f"table block {b} puts its first chunk at {O_b}, not {offset}")
        for j, (L, nonce) in enumerate(entries):
            plan.append((first + j, lay.A + offset, L, nonce))
            offset += L
    if lay.A + offset != len(data):
        raise ValueError(f"the chunks end at {lay.A + offset}, the object at {len(data)}")
    return lay, plan


def _compressed_chunks(data: bytes, fid: bytes, aead: AESGCM):
    lay, plan = _compressed_plan(data, fid, aead)
    for i, start, L, nonce in plan:
        yield lay.open_chunk(data, fid, aead, i, start, L, nonce)[1]


# ------------------------------------------------------------------- both

def decrypt_file_to(data: bytes, out, master_key: bytes | None = None, recovery_pem=None) -> int:
    """Write the plaintext of one stored file object to out (anything with .write), either
    layout; returns its size. On an error out may hold the chunks before the bad one (only
    authenticated ones); use decrypt_file for all or nothing."""
    data = memoryview(data).toreadonly()  # no copies of a large object's slices
    header, fid, aead = _keys(data, master_key, recovery_pem)
    chunks = _compressed_chunks if header[9] == FLAG_COMPRESSED else _plain_chunks
    total = 0
    for plain in chunks(data, fid, aead):
        out.write(plain)
        total += len(plain)
    return total


def decrypt_file(data: bytes, master_key: bytes | None = None, recovery_pem=None) -> bytes:
    """The plaintext of one stored file object (either layout); needs MK or the recovery private key."""
    data = bytes(data)
    header, fid, aead = _keys(data, master_key, recovery_pem)
    chunks = _compressed_chunks if header[9] == FLAG_COMPRESSED else _plain_chunks
    return b"".join(chunks(data, fid, aead))


def decrypt_chunk(data: bytes, i: int, master_key: bytes | None = None, recovery_pem=None) -> bytes:
    """Chunk i's plaintext, reading only what a random read fetches: the header, and for a
    compressed file u64(P), table block i // 4096 and the chunk (no other block)."""
    data = bytes(data)
    header, fid, aead = _keys(data, master_key, recovery_pem)
    if header[9] != FLAG_COMPRESSED:
        raise ValueError("decrypt_chunk reads compressed files")
    lay = _Layout(data)
    if not 0 <= i < lay.n:
        raise ValueError(f"no chunk {i} in a file of {lay.n}")
    first, O_b, entries = lay.block(data, fid, aead, i // TABLE_ENTRIES)
    start = lay.A + O_b + sum(L for L, _ in entries[:i - first])
    L, nonce = entries[i - first]
    return lay.open_chunk(data, fid, aead, i, start, L, nonce)[1]


def chunk_layout(data: bytes, master_key: bytes | None = None, recovery_pem=None) -> list[tuple[int, int, int]]:
    """A compressed file's chunks as (start, stored length, codec), after every chunk was
    authenticated and decompressed (what tests need to see where and how chunks are stored)."""
    data = memoryview(data).toreadonly()
    header, fid, aead = _keys(data, master_key, recovery_pem)
    if header[9] != FLAG_COMPRESSED:
        raise ValueError("chunk_layout reads compressed files")
    lay, plan = _compressed_plan(data, fid, aead)
    return [(start, L, lay.open_chunk(data, fid, aead, i, start, L, nonce)[0]) for i, start, L, nonce in plan]


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
