"""Property tests of the chunk format as the encrypting remote uses it (no mount).

Random sizes, offsets and lengths read back exactly (``read`` and streamed
``read_into``); a stored object read by a remote in arbitrary pieces, in any
order, is one consistent object; a delta write whose parts are copied from the
base or read from the source, cut anywhere, decrypts to the new content; and
damaged objects raise ``IntegrityError``, never wrong bytes.
"""

from __future__ import annotations

import io
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudgw.crypt import format as fmt
from cloudgw.crypt.vault import KdfParams, create_vault, unlock
from cloudgw.errors import IntegrityError
from cloudgw.remotes.base import BytesSource
from cloudgw.remotes.crypt import CryptRemote
from cloudgw.remotes.crypt_plain import EncryptingDeltaSource, EncryptingSource
from cloudgw.remotes.local import LocalRemote

PASSWORD = b"property-test"
VAULT, _PEM = create_vault(PASSWORD, kdf=KdfParams(8192, 1, 1))
KEYS = unlock(VAULT, PASSWORD)
C = fmt.CHUNK


def decrypt(stored: bytes) -> bytes:
    src, out = io.BytesIO(stored), io.BytesIO()
    header = fmt.open_header(fmt.read_header(src, "x"), KEYS, "x")
    fmt.decrypt_stream(src, out, header, "x")
    return out.getvalue()


def remote_on(tmp_path) -> CryptRemote:  # noqa: ANN001
    remote = CryptRemote(LocalRemote(tmp_path), PASSWORD)
    remote.unlocked(KEYS)
    return remote


sizes = st.one_of(st.sampled_from([0, 1, C - 1, C, C + 1, 2 * C, 3 * C - 1]), st.integers(0, 5 * C))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=sizes, reads=st.lists(st.tuples(st.integers(0, 6 * C), st.integers(1, 3 * C)), min_size=1, max_size=6),
       seed=st.integers(0, 2**32))
async def test_random_ranges_read_back_exactly(tmp_path, size, reads, seed):
    data = random.Random(seed).randbytes(size)
    remote = remote_on(tmp_path)
    entry = await remote.write("f.bin", BytesSource(data))
    assert entry.size == size and (await remote.stat("f.bin")).size == size
    fresh = remote_on(tmp_path)  # no header cached: the first read fetches it
    for offset, length in reads:
        assert await fresh.read("f.bin", offset, length, rev=entry.rev) == data[offset:offset + length]
        pieces: list[bytes] = []
        await fresh.read_into("f.bin", offset, length, pieces.append, rev=entry.rev)
        assert b"".join(pieces) == data[offset:offset + length]


@settings(max_examples=40, deadline=None)
@given(size=sizes, cuts=st.lists(st.integers(0, 6 * C), max_size=8), seed=st.integers(0, 2**32))
def test_a_stored_object_read_in_any_pieces_is_one_object(size, cuts, seed):
    data = random.Random(seed).randbytes(size)
    source = EncryptingSource(BytesSource(data), fmt.new_header(KEYS))
    bounds = sorted({0, source.size, *(c for c in cuts if c < source.size)})
    pieces = list(zip(bounds, bounds[1:]))
    random.Random(seed).shuffle(pieces)  # parallel parts come in any order
    got = {lo: source.read(lo, hi - lo) for lo, hi in pieces}
    stored = b"".join(got[lo] for lo in sorted(got))
    assert len(stored) == fmt.stored_size(size) == source.size
    assert decrypt(stored) == data


class Edited(BytesSource):
    """A DeltaSource: equals ``base_rev`` outside ``changed`` (plaintext ranges)."""

    def __init__(self, data: bytes, base_size: int, changed: list[tuple[int, int]]) -> None:
        super().__init__(data)
        self.base_rev, self._base_size, self._changed = "base", base_size, changed

    def unchanged(self, offset: int, length: int) -> bool:
        return offset + length <= self._base_size and all(offset + length <= a or offset >= a + n
                                                          for a, n in self._changed)

    def base_offset(self, offset: int) -> int:
        return offset

    def copied(self, offset: int, length: int) -> None:
        return None


@settings(max_examples=40, deadline=None)
@given(base_size=st.integers(0, 5 * C), edits=st.lists(st.tuples(st.integers(0, 5 * C), st.integers(1, 5000)),
                                                        max_size=3),
       new_size=st.one_of(st.none(), st.integers(0, 6 * C)), part=st.integers(1000, 3 * C), seed=st.integers(0, 2**32))
def test_a_delta_write_cut_into_any_parts_decrypts_to_the_new_content(base_size, edits, new_size, part, seed):
    rng = random.Random(seed)
    base = rng.randbytes(base_size)
    header = fmt.new_header(KEYS)
    base_stored = io.BytesIO()
    fmt.encrypt_stream(io.BytesIO(base), base_stored, header)
    old = base_stored.getvalue()
    data = bytearray(base if new_size is None else (base + rng.randbytes(max(0, new_size - base_size)))[:new_size])
    changed = []
    for at, n in edits:
        if at < len(data):
            data[at:at + n] = rng.randbytes(len(data[at:at + n]))
            changed.append((at, n))
    source = EncryptingDeltaSource(Edited(bytes(data), min(base_size, len(data)), changed), header,
                                    Edited(bytes(data), min(base_size, len(data)), changed), base_size)
    # a remote with fixed-size parts: copies a part whose range is unchanged, reads the others
    out = []
    for lo in range(0, source.size, part):
        n = min(part, source.size - lo)
        out.append(old[lo:lo + n] if source.unchanged(lo, n) else source.read(lo, n))
    assert decrypt(b"".join(out)) == bytes(data)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


async def test_damage_is_an_integrity_error_never_wrong_bytes(tmp_path):
    data = os.urandom(3 * C + 100)
    remote = remote_on(tmp_path)
    entry = await remote.write("f.bin", BytesSource(data))
    path = tmp_path / "f.bin"
    stored = path.read_bytes()
    cases = {
        "flipped tag": flip(stored, fmt.chunk_offset(3) - 1),  # the last byte of chunk 2
        "cut at a chunk boundary": stored[:fmt.chunk_offset(2)],
        "cut inside a chunk": stored[:fmt.chunk_offset(2) + 50],
        "chunks reordered": stored[:fmt.chunk_offset(1)] + stored[fmt.chunk_offset(2):fmt.chunk_offset(3)]
        + stored[fmt.chunk_offset(1):fmt.chunk_offset(2)] + stored[fmt.chunk_offset(3):],
        "header of another file": fmt.new_header(KEYS).raw + stored[fmt.HEADER_SIZE:],
        "not encrypted at all": data,
    }
    for label, damaged in cases.items():
        path.write_bytes(damaged)
        fresh = remote_on(tmp_path)
        rev = (await fresh.stat("f.bin")).rev
        with pytest.raises(IntegrityError, match="f.bin"):
            await fresh.read("f.bin", 0, len(data) + C, rev=rev)
        with pytest.raises(IntegrityError):
            await fresh.read("f.bin", 2 * C, C + 200, rev=rev)  # the damage is in or right before this range
    assert entry.size == len(data)
