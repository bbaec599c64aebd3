"""cloudgw's compressed layout ("Compressed files" in docs/encryption.md), decoded by
tests/crypt/independent_decoder.py (written from the document alone), and the same
damaged files refused by both the decoder and cloudgw's own reader.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import random
import struct
import tempfile
from functools import lru_cache

import lz4.block
import pytest
import zstandard
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloudgw.crypt import compress, vault
from cloudgw.crypt import format as fmt
from cloudgw.errors import IntegrityError
from tests.crypt import independent_decoder as dec

C = 65536
H = 180
PREFIX = 188  # header || u64(P)
SMALL_KDF = vault.KdfParams(memory_kib=64, iterations=1, lanes=1)
PASSWORD = b"correct horse battery staple"
CODECS = {"zstd": compress.ZSTD, "lz4": compress.LZ4}
SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536 + 5]


@lru_cache(maxsize=None)
def _setup(compress_name: str | None):
    """(vault JSON, recovery PEM, cloudgw Keys, MK from the independent decoder)."""
    vault_json, recovery_pem = vault.create_vault(PASSWORD, compress=compress_name, kdf=SMALL_KDF)
    keys = vault.unlock(vault_json, PASSWORD)
    mk = dec.unlock_vault(bytes(vault_json), PASSWORD)
    return bytes(vault_json), bytes(recovery_pem), keys, mk


def _encrypt(keys, plain: bytes, codec: int, header=None) -> bytes:
    h = header if header is not None else fmt.new_header(keys, compressed=True)
    assert h.compressed is True
    dst = io.BytesIO()
    fmt.encrypt_stream(io.BytesIO(plain), dst, h, codec=codec)
    return dst.getvalue()


def _cloudgw_decrypt(keys, stored: bytes, dst=None) -> bytes:
    src = io.BytesIO(stored)
    header = fmt.open_header(fmt.read_header(src, "t"), keys, "t")
    out = dst if dst is not None else io.BytesIO()
    fmt.decrypt_stream(src, out, header, "t")
    return out.getvalue() if dst is None else b""


def _text(size: int, seed: int = 0) -> bytes:
    """Log-like text: zstd stores it at ~12%, lz4 at ~19%."""
    rng = random.Random(seed * 1_000_003 + size)
    out, n = [], 0
    while n < size:
        line = (f"2026-12-05 12:{rng.randrange(60):02d}:{rng.randrange(60):02d} INFO cloudgw.sync.uploader: "
                f"uploaded /share/{rng.choice(['docs', 'photos', 'src'])}/file_{rng.randrange(500)}.txt "
                f"({rng.randrange(100000)} bytes)\n")
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def _n(size: int) -> int:
    return max(1, -(-size // C))


def _table_end(size: int) -> int:
    """A = 188 + sum(36 + 16 m_b), from the document."""
    n = _n(size)
    return PREFIX + 36 * -(-n // 4096) + 16 * n


def _raw_size(size: int) -> int:
    """The stored size when every chunk is stored raw: L_i = 12 + 1 + len_i + 16."""
    return _table_end(size) + 29 * _n(size) + size


# ------------------------------------------------------------- round trips

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "random"])
@pytest.mark.parametrize("codec_name", ["zstd", "lz4"])
def test_round_trip(codec_name, kind, size):
    _vault_json, recovery_pem, keys, mk = _setup(None)
    plain = _text(size) if kind == "text" else os.urandom(size)
    stored = _encrypt(keys, plain, CODECS[codec_name])

    assert stored[:12] == b"CGWCRYPT\x01\x01\x10\x00"  # flags = 1
    assert stored[H:PREFIX] == struct.pack(">Q", size)  # P in clear
    assert dec.listing_size(stored[:PREFIX], len(stored)) == size
    assert dec.decrypt_file(stored, master_key=mk) == plain
    assert dec.decrypt_file(stored, recovery_pem=recovery_pem) == plain
    assert _cloudgw_decrypt(keys, stored) == plain

    layout = dec.chunk_layout(stored, master_key=mk)
    assert len(layout) == _n(size)
    assert layout[0][0] == _table_end(size)  # chunk 0 right after the table
    codecs = {codec for _start, _length, codec in layout}
    if kind == "random" or size < 4096:
        # nothing to gain: every chunk raw, and the overhead is exactly the document's
        assert codecs == {0}
        assert len(stored) == _raw_size(size)
        assert len(stored) - size <= PREFIX + 36 + 45 * _n(size)
    else:
        big = [codec for i, (_s, _l, codec) in enumerate(layout) if min(C, size - i * C) >= 4096]
        assert big and set(big) == {CODECS[codec_name]}, layout  # the requested codec, every large chunk
        assert len(stored) < 0.35 * size, (len(stored), size)


@pytest.mark.parametrize("codec_name", ["zstd", "lz4"])
def test_same_plaintext_same_bytes_and_unchanged_chunks_kept(codec_name):
    """The document: a chunk sealed again is the same bytes; an edit keeps the header, and
    the unchanged chunks keep their stored bytes (they move if an edited chunk's length changed)."""
    _vault_json, _pem, keys, mk = _setup(None)
    codec = CODECS[codec_name]
    h = fmt.new_header(keys, compressed=True)
    old_plain = _text(3 * C + 5, 11)
    old = _encrypt(keys, old_plain, codec, h)
    assert _encrypt(keys, old_plain, codec, h) == old
    edit = b"an edit that changes the compressed length"
    new_plain = old_plain[:C + 100] + edit + old_plain[C + 100 + len(edit):]
    assert len(new_plain) == len(old_plain)
    new = _encrypt(keys, new_plain, codec, h)
    assert new[:H] == old[:H]
    assert dec.decrypt_file(new, master_key=mk) == new_plain
    old_layout, new_layout = dec.chunk_layout(old, master_key=mk), dec.chunk_layout(new, master_key=mk)
    for i in (0, 2, 3):
        (os_, ol, _), (ns, nl, _) = old_layout[i], new_layout[i]
        assert old[os_:os_ + ol] == new[ns:ns + nl], i
    (os_, ol, _), (ns, nl, _) = old_layout[1], new_layout[1]
    assert old[os_:os_ + ol] != new[ns:ns + nl]


def test_plain_layout_file_from_a_compress_vault():
    """Readers take both layouts by the header's flags, whatever the vault says."""
    _vault_json, recovery_pem, keys, mk = _setup("zstd")
    plain = _text(2 * C + 3)
    dst = io.BytesIO()
    fmt.encrypt_stream(io.BytesIO(plain), dst, fmt.new_header(keys))
    stored = dst.getvalue()
    assert stored[9] == 0 and len(stored) == H + len(plain) + 3 * 28
    assert dec.decrypt_file(stored, master_key=mk) == plain
    assert dec.decrypt_file(stored, recovery_pem=recovery_pem) == plain
    sink = io.BytesIO()
    assert dec.decrypt_file_to(stored, sink, master_key=mk) == len(plain) and sink.getvalue() == plain
    assert dec.listing_size(stored[:PREFIX], len(stored)) == len(plain)
    with pytest.raises(ValueError):
        dec.chunk_layout(stored, master_key=mk)


@pytest.mark.parametrize("codec_name", ["zstd", "lz4"])
def test_nonces_are_synthetic_as_documented(codec_name):
    """Chunk i: HMAC-SHA256(NK, FID || u64(i) || u8(last) || codec || payload)[:12]; table
    block b: HMAC-SHA256(NK, ad || plaintext)[:12] (readers need not know; the document says it)."""
    _vault_json, recovery_pem, keys, mk = _setup(None)
    size = 2 * C + 9
    stored = _encrypt(keys, _text(size, 3)[:C] + os.urandom(C + 9), CODECS[codec_name])
    fid = stored[12:28]
    fk = dec.file_key(stored, recovery_pem=recovery_pem)
    assert fk == dec.file_key(stored, master_key=mk)
    nk = dec.chunk_nonce_key(fk)
    ad = fid + b"table" + struct.pack(">QQ", 0, size)
    table = stored[PREFIX:_table_end(size)]
    plain = AESGCM(fk).decrypt(table[:12], table[12:], ad)
    assert table[:12] == hmac.new(nk, ad + plain, hashlib.sha256).digest()[:12]
    layout = dec.chunk_layout(stored, master_key=mk)
    assert [codec for _s, _l, codec in layout] == [CODECS[codec_name], 0, 0]
    for i, (start, length, _codec) in enumerate(layout):
        chunk = stored[start:start + length]
        ad = fid + struct.pack(">QB", i, i == len(layout) - 1)
        sealed = AESGCM(fk).decrypt(chunk[:12], chunk[12:], ad)
        assert chunk[:12] == hmac.new(nk, ad + sealed, hashlib.sha256).digest()[:12], i


# ------------------------------------------------------------------ vault

@pytest.mark.parametrize("codec_name", ["zstd", "lz4"])
def test_vault_with_compress(codec_name):
    vault_json, recovery_pem, keys, mk = _setup(codec_name)
    v = json.loads(vault_json)
    assert v["compress"] == codec_name
    assert keys.compress == codec_name
    assert dec.vault_compress(vault_json) == codec_name
    assert mk == keys.master_key
    assert dec.unlock_vault_recovery(vault_json, recovery_pem) == mk
    # a file as a gateway of this vault writes it, decoded with the password alone
    plain = _text(2 * C + 77, 5)
    stored = _encrypt(keys, plain, CODECS[keys.compress])
    mk_from_password = dec.unlock_vault(vault_json, PASSWORD)
    assert dec.decrypt_file(stored, master_key=mk_from_password) == plain
    assert {codec for _s, _l, codec in dec.chunk_layout(stored, master_key=mk_from_password)[:2]} \
        == {CODECS[codec_name]}


@pytest.mark.parametrize("codec_name", ["zstd", "lz4"])
def test_vault_compress_is_in_the_vad(codec_name):
    vault_json, recovery_pem, _keys, _mk = _setup(codec_name)
    v = json.loads(vault_json)
    other = {"zstd": "lz4", "lz4": "zstd"}[codec_name]
    for changed in ({**v, "compress": other}, {k: x for k, x in v.items() if k != "compress"}):
        doc = json.dumps(changed).encode()
        with pytest.raises(ValueError):
            dec.unlock_vault(doc, PASSWORD)
        with pytest.raises(ValueError):
            dec.unlock_vault_recovery(doc, recovery_pem)
    for bad in ("gzip", "", None, 1, "ZSTD"):
        with pytest.raises(ValueError):
            dec.unlock_vault(json.dumps({**v, "compress": bad}).encode(), PASSWORD)


def test_vault_without_compress_has_no_member():
    vault_json, _pem, keys, mk = _setup(None)
    assert "compress" not in json.loads(vault_json)
    assert keys.compress is None and dec.vault_compress(vault_json) is None
    assert mk == keys.master_key
    v = json.loads(vault_json)
    with pytest.raises(ValueError):  # adding the member breaks the VAD
        dec.unlock_vault(json.dumps({**v, "compress": "zstd"}).encode(), PASSWORD)


# ------------------------------------------------- more than 4096 chunks

class _Hashing:
    def __init__(self):
        self.h, self.size = hashlib.sha256(), 0

    def write(self, b) -> int:
        self.h.update(b)
        self.size += len(b)
        return len(b)


def test_second_table_block(tmp_path):
    """4097 * 64 KiB + 7 bytes: n = 4098 chunks, so a second table block (of 2 entries)."""
    _vault_json, recovery_pem, keys, mk = _setup("zstd")
    size = 4097 * C + 7
    rng = random.Random(4097)
    src_path = tmp_path / "plain"
    want = hashlib.sha256()
    with open(src_path, "wb") as f:  # mostly zeros; every chunk different
        for i in range(4098):
            piece = bytearray(C if i < 4097 else 7)
            piece[:4] = struct.pack(">I", i)[:len(piece)]
            if i % 512 == 1 and len(piece) == C:
                piece[100:4196] = rng.randbytes(4096)
            f.write(piece)
            want.update(piece)
    assert os.path.getsize(src_path) == size
    with open(src_path, "rb") as src, tempfile.TemporaryFile(dir=tmp_path) as dst:
        fmt.encrypt_stream(src, dst, fmt.new_header(keys, compressed=True), codec=compress.ZSTD)
        dst.seek(0)
        stored = dst.read()
    os.unlink(src_path)
    assert len(stored) < size // 100
    A = _table_end(size)
    assert A == PREFIX + 2 * 36 + 16 * 4098

    sink = _Hashing()
    assert dec.decrypt_file_to(stored, sink, master_key=mk) == size
    assert sink.size == size and sink.h.digest() == want.digest()
    sink = _Hashing()
    _cloudgw_decrypt(keys, stored, sink)
    assert sink.size == size and sink.h.digest() == want.digest()

    # block 1 is read on its own: destroy block 0 and still read chunks 4096 and 4097
    block1 = PREFIX + 36 + 16 * 4096
    no_block0 = bytearray(stored)
    no_block0[PREFIX:block1] = bytes(block1 - PREFIX)
    c4096 = bytearray(C)
    c4096[:4] = struct.pack(">I", 4096)
    assert dec.decrypt_chunk(bytes(no_block0), 4096, recovery_pem=recovery_pem) == bytes(c4096)
    assert dec.decrypt_chunk(bytes(no_block0), 4097, master_key=mk) == struct.pack(">I", 4097)[:4] + bytes(3)
    with pytest.raises(ValueError):
        dec.decrypt_chunk(bytes(no_block0), 4095, master_key=mk)

    # a flipped byte in block 1 (and only there)
    for offset in (block1 + 3, block1 + 20, A - 1):
        b = bytearray(stored)
        b[offset] ^= 0x01
        with pytest.raises(ValueError):
            dec.decrypt_file_to(bytes(b), _Hashing(), master_key=mk)
        with pytest.raises(IntegrityError):
            _cloudgw_decrypt(keys, bytes(b), _Hashing())
    # the two blocks swapped is not even the right length; block 1 alone can't stand for block 0
    with pytest.raises(ValueError):
        dec.decrypt_chunk(stored[:PREFIX] + stored[block1:A] + stored[PREFIX:block1] + stored[A:], 0, master_key=mk)


# ------------------------------------------------------- damaged files

@lru_cache(maxsize=None)
def _victim(codec_name: str, kind: str) -> tuple[bytes, bytes]:
    _vault_json, _pem, keys, _mk = _setup(None)
    if kind == "text":
        plain = _text(3 * C + 5, 21)
    elif kind == "random":
        plain = os.urandom(3 * C + 5)
    else:  # "twins": chunks 0 and 1 the same bytes, so they compress to the same length
        half = _text(C, 31)
        plain = half + half + _text(C + 5, 32)
    return plain, _encrypt(keys, plain, CODECS[codec_name])


def _both_reject(stored: bytes):
    _vault_json, recovery_pem, keys, mk = _setup(None)
    with pytest.raises(ValueError):
        dec.decrypt_file(stored, master_key=mk)
    with pytest.raises(ValueError):
        dec.decrypt_file(stored, recovery_pem=recovery_pem)
    with pytest.raises(IntegrityError):
        _cloudgw_decrypt(keys, stored)


@pytest.fixture(params=[("zstd", "text"), ("lz4", "text"), ("zstd", "random")], ids="-".join)
def victim(request):
    plain, stored = _victim(*request.param)
    _vault_json, _pem, keys, mk = _setup(None)
    assert dec.decrypt_file(stored, master_key=mk) == plain and _cloudgw_decrypt(keys, stored) == plain
    return plain, stored, dec.chunk_layout(stored, master_key=mk)


@pytest.mark.parametrize("where", ["nonce", "entry", "tag"])
def test_flipped_byte_in_the_table(victim, where):
    _plain, stored, _layout = victim
    offset = {"nonce": PREFIX + 5, "entry": PREFIX + 12 + 8 + 16 + 2, "tag": _table_end(len(_plain)) - 1}[where]
    b = bytearray(stored)
    b[offset] ^= 0x01
    _both_reject(bytes(b))


@pytest.mark.parametrize("chunk", [0, 1, 3])
@pytest.mark.parametrize("where", ["nonce", "codec", "middle", "tag"])
def test_flipped_byte_in_a_chunk(victim, chunk, where):
    _plain, stored, layout = victim
    start, length, _codec = layout[chunk]
    offset = start + {"nonce": 3, "codec": 12, "middle": length // 2, "tag": length - 1}[where]
    b = bytearray(stored)
    b[offset] ^= 0x01
    _both_reject(bytes(b))


@pytest.mark.parametrize("delta", [1, -1, C, -C, 3 * C + 5])
def test_changed_plaintext_size(victim, delta):
    plain, stored, _layout = victim
    P = len(plain) + delta
    _both_reject(stored[:H] + struct.pack(">Q", P) + stored[PREFIX:])


def test_plaintext_size_set_to_zero_or_huge(victim):
    _plain, stored, _layout = victim
    for P in (0, 2**40, 2**64 - 1):
        _both_reject(stored[:H] + struct.pack(">Q", P) + stored[PREFIX:])


def test_truncated_by_one_byte(victim):
    _plain, stored, _layout = victim
    _both_reject(stored[:-1])


def test_truncated_elsewhere(victim):
    plain, stored, layout = victim
    for n in (H + 4, PREFIX, PREFIX + 30, _table_end(len(plain)), layout[-1][0]):
        _both_reject(stored[:n])


@pytest.mark.parametrize("extra", [b"\0", b"\x01", None])
def test_appended_bytes(victim, extra):
    _plain, stored, layout = victim
    if extra is None:  # the last chunk again
        start, length, _codec = layout[-1]
        extra = stored[start:start + length]
    _both_reject(stored + extra)


@pytest.mark.parametrize("kind", ["random", "twins"])
@pytest.mark.parametrize("codec_name", ["zstd", "lz4"])
def test_two_chunks_of_equal_length_swapped(codec_name, kind):
    plain, stored = _victim(codec_name, kind)
    _vault_json, _pem, keys, mk = _setup(None)
    layout = dec.chunk_layout(stored, master_key=mk)
    (s0, l0, c0), (s1, l1, c1) = layout[0], layout[1]
    assert l0 == l1 and s1 == s0 + l0
    if kind == "twins":  # same plaintext, same codec, same length: only the index tells them apart
        assert c0 == c1 == CODECS[codec_name]
        assert stored[s0:s0 + l0] != stored[s1:s1 + l1]
    swapped = stored[:s0] + stored[s1:s1 + l1] + stored[s0:s0 + l0] + stored[s1 + l1:]
    assert len(swapped) == len(stored)
    _both_reject(swapped)


def test_chunk_from_another_file_at_the_same_place():
    _vault_json, _pem, keys, mk = _setup(None)
    a = _encrypt(keys, os.urandom(2 * C + 9), compress.ZSTD)
    b = _encrypt(keys, os.urandom(2 * C + 9), compress.ZSTD)
    start, length, _codec = dec.chunk_layout(a, master_key=mk)[1]
    _both_reject(a[:start] + b[start:start + length] + a[start + length:])
    _both_reject(b[:PREFIX] + a[PREFIX:])  # another file's table and chunks under this header


def test_flags_byte_cleared(victim):
    """flags = 0 read as the plain layout: the byte is in header[0:28], which the key wraps
    authenticate, so the header no longer opens."""
    _plain, stored, _layout = victim
    b = bytearray(stored)
    b[9] = 0
    _vault_json, recovery_pem, keys, mk = _setup(None)
    with pytest.raises(ValueError):
        dec.decrypt_file(bytes(b), master_key=mk)
    with pytest.raises(ValueError):
        dec.decrypt_file(bytes(b), recovery_pem=recovery_pem)
    with pytest.raises(IntegrityError):
        fmt.open_header(bytes(b[:H]), keys, "t")


# --------------------------------------------- the decoder against the document

def _forge(mk: bytes, plain_chunks, *, P=None, codecs=None, payloads=None, sealed=None, O0=0,
           nonces=None, flags=1) -> bytes:
    """A compressed file sealed by the test itself, with the document's rules bent one at a
    time: so the decoder's refusals are tested without relying on cloudgw's writer."""
    fk, fid = os.urandom(32), os.urandom(16)
    prefix = b"CGWCRYPT" + bytes([1, flags, 16, 0]) + fid
    n1 = os.urandom(12)
    wrap = AESGCM(dec.kw_from_mk(mk)).encrypt(n1, fk, prefix)
    header = prefix + n1 + wrap + X25519PrivateKey.generate().public_key().public_bytes_raw() + bytes(12 + 48)
    assert len(header) == H
    P = sum(map(len, plain_chunks)) if P is None else P
    aead = AESGCM(fk)
    stored = []
    for i, chunk in enumerate(plain_chunks):
        codec = codecs[i] if codecs else 0
        payload = payloads[i] if payloads and payloads[i] is not None else chunk
        body = sealed[i] if sealed and i in sealed else bytes([codec]) + payload
        nonce = os.urandom(12)
        ad = fid + struct.pack(">QB", i, i == len(plain_chunks) - 1)
        stored.append(nonce + aead.encrypt(nonce, body, ad))
    entries = b"".join(struct.pack(">I", len(s)) + (nonces[i] if nonces else s[:12]) for i, s in enumerate(stored))
    tn = os.urandom(12)
    table = tn + aead.encrypt(tn, struct.pack(">Q", O0) + entries, fid + b"table" + struct.pack(">QQ", 0, P))
    return header + struct.pack(">Q", P) + table + b"".join(stored)


_Z = zstandard.ZstdCompressor(level=3)
_Z_NO_SIZE = zstandard.ZstdCompressor(write_content_size=False)
_TEXT = _text(C + 10, 41)
_FULL, _REST = _TEXT[:C], _TEXT[C:]
_RANDOM = random.Random(42).randbytes(C)


def _lz4(data: bytes) -> bytes:
    return lz4.block.compress(data, store_size=False)


# name -> (valid by the document?, forge(mk) -> stored object, plaintext if valid)
FORGED = {
    "zstd and lz4 chunks": (True, lambda mk: _forge(mk, [_FULL, _REST], codecs=[1, 2],
                                                     payloads=[_Z.compress(_FULL), _lz4(_REST)]), _TEXT),
    "empty file, raw": (True, lambda mk: _forge(mk, [b""]), b""),
    "empty file, zstd": (True, lambda mk: _forge(mk, [b""], codecs=[1], payloads=[_Z.compress(b"")]), b""),
    "empty file, lz4": (True, lambda mk: _forge(mk, [b""], codecs=[2], payloads=[_lz4(b"")]), b""),
    "zstd frame without a content size": (True, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[1, 0], payloads=[_Z_NO_SIZE.compress(_FULL), None]), _TEXT),
    "zstd frame with a checksum": (True, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[1, 0],
        payloads=[zstandard.ZstdCompressor(write_checksum=True).compress(_FULL), None]), _TEXT),
    "compressed though it saves less than 1/16": (True, lambda mk: _forge(
        mk, [_REST], codecs=[1], payloads=[_Z.compress(_REST)]), _REST),
    "zstd frame longer than the raw chunk": (False, lambda mk: _forge(
        mk, [_RANDOM, _REST], codecs=[1, 0], payloads=[_Z.compress(_RANDOM), None]), None),
    "lz4 block longer than the raw chunk": (False, lambda mk: _forge(
        mk, [_RANDOM, _REST], codecs=[2, 0], payloads=[_lz4(_RANDOM), None]), None),

    "unknown codec": (False, lambda mk: _forge(mk, [_FULL, _REST], codecs=[3, 0]), None),
    "zstd too short": (False, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[1, 0], payloads=[_Z.compress(_FULL[:-1]), None]), None),
    "zstd too long": (False, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[0, 1], payloads=[None, _Z.compress(_REST + b"x")]), None),
    "zstd too long, no content size": (False, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[0, 1], payloads=[None, _Z_NO_SIZE.compress(_REST + b"x")]), None),
    "zstd, two frames": (False, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[0, 1], payloads=[None, _Z.compress(_REST[:5]) + _Z.compress(_REST[5:])]), None),
    "zstd frame and a trailing byte": (False, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[0, 1], payloads=[None, _Z.compress(_REST) + b"\0"]), None),
    "zstd frame cut": (False, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[1, 0], payloads=[_Z.compress(_FULL)[:-1], None]), None),
    "lz4 too short": (False, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[2, 0], payloads=[_lz4(_FULL[:-1]), None]), None),
    "lz4 too long": (False, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[0, 2], payloads=[None, _lz4(_REST + b"x")]), None),
    "lz4 with a size prefix": (False, lambda mk: _forge(
        mk, [_FULL, _REST], codecs=[2, 0], payloads=[lz4.block.compress(_FULL), None]), None),
    "raw too short": (False, lambda mk: _forge(mk, [_FULL, _REST], payloads=[_FULL[:-1], None]), None),
    "two chunks for P = C (an empty last chunk)": (False, lambda mk: _forge(mk, [_FULL, b""]), None),
    "no codec byte": (False, lambda mk: _forge(mk, [b""], sealed={0: b""}), None),
    "O_0 is not 0": (False, lambda mk: _forge(mk, [_FULL, _REST], O0=1), None),
    "table nonce is not the chunk's": (False, lambda mk: _forge(
        mk, [_FULL, _REST], nonces=[os.urandom(12), os.urandom(12)]), None),
    "P of another chunking": (False, lambda mk: _forge(mk, [_FULL, _REST], P=C), None),
    "flags 3 (wrapped with them)": (False, lambda mk: _forge(mk, [_FULL, _REST], flags=3), None),
    "flags 0 (wrapped with them)": (False, lambda mk: _forge(mk, [_FULL, _REST], flags=0), None),
}

# Where cloudgw's reader (fmt.decrypt_stream) and the document disagree, as of this test's writing.


@pytest.mark.parametrize("name", list(FORGED))
def test_forged_file_decoder(name):
    mk = _setup(None)[3]
    valid, forge, plain = FORGED[name]
    stored = forge(mk)
    if valid:
        assert dec.decrypt_file(stored, master_key=mk) == plain
    else:
        with pytest.raises(ValueError):
            dec.decrypt_file(stored, master_key=mk)


@pytest.mark.parametrize("name", [
    name for name in FORGED])
def test_forged_file_cloudgw(name):
    """cloudgw's reader takes what the document calls valid and refuses the rest."""
    _vault_json, _pem, keys, mk = _setup(None)
    valid, forge, plain = FORGED[name]
    stored = forge(mk)
    if valid:
        assert _cloudgw_decrypt(keys, stored) == plain
    else:
        with pytest.raises(IntegrityError):
            _cloudgw_decrypt(keys, stored)
