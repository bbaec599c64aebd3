"""The encrypting remote with compression (a vault made with ``--compress``), no mount.

What a user of such a vault relies on: text is stored much smaller, already
compressed data is stored raw, random ranges read back exactly, sizes are right
from a listing (and a gateway with a size store reads each file for its size
only once), a small edit of a large file on S3 copies the unchanged chunks
server-side even where they moved, and damage is an error, never wrong bytes.
The format itself: tests/crypt/test_compressed_format.py.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudgw.crypt import VAULT_NAME
from cloudgw.crypt import format as fmt
from cloudgw.crypt.compress import LZ4, ZSTD
from cloudgw.crypt.vault import KdfParams, create_vault, unlock
from cloudgw.errors import IntegrityError
from cloudgw.remotes.base import BytesSource
from cloudgw.remotes.crypt import CryptRemote
from cloudgw.remotes.instrumented import InstrumentedRemote
from cloudgw.remotes.local import LocalRemote
from cloudgw.remotes.s3 import S3Remote
from tests.contract.conftest import FAST_KDF_PARAMS, S3_TEST_OPTIONS, CountingObserver
from tests.contract.test_remote_contract import EditedSource

PASSWORD = b"compressed-remote"
VAULT, _PEM = create_vault(PASSWORD, kdf=KdfParams(**FAST_KDF_PARAMS), compress="zstd")
KEYS = unlock(VAULT, PASSWORD)
C = fmt.CHUNK
MiB = 1 << 20


def text(size: int, seed: int = 0) -> bytes:
    """Compressible like prose or source code: words from a small vocabulary."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(400)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(words, k=12)) + b".\n"
    return bytes(out[:size])


def crypt(inner, keys=KEYS, state_dir=None) -> CryptRemote:  # noqa: ANN001
    remote = CryptRemote(inner, PASSWORD, state_dir=state_dir)
    remote.unlocked(keys)
    return remote


def on_local(root, **kw) -> CryptRemote:  # noqa: ANN001, ANN003
    root.mkdir(exist_ok=True)
    (root / VAULT_NAME).write_bytes(VAULT)
    return crypt(LocalRemote(root), **kw)


def s3_bucket(moto_server) -> S3Remote:  # noqa: ANN001
    bucket = f"cgw-{uuid.uuid4().hex[:20]}"
    raw = moto_server.client()
    raw.create_bucket(Bucket=bucket)
    raw.put_object(Bucket=bucket, Key=VAULT_NAME, Body=VAULT)
    return S3Remote(bucket, "", endpoint_url=moto_server.endpoint_url, region=moto_server.region, path_style=True,
                    access_key=moto_server.access_key, secret_key=moto_server.secret_key, **S3_TEST_OPTIONS)


async def test_text_is_stored_smaller_and_compressed_formats_are_not_tried(tmp_path):
    remote = on_local(tmp_path / "root")
    data = text(3 * MiB)
    entry = await remote.write("notes.txt", BytesSource(data))
    stored = (tmp_path / "root" / "notes.txt").stat().st_size
    assert entry.size == len(data) == (await remote.stat("notes.txt")).size
    assert stored < len(data) * 0.5, f"text stored at {stored / len(data):.0%} of its size"
    await remote.write("photo.jpg", BytesSource(data))  # the name says "compressed already"
    assert (tmp_path / "root" / "photo.jpg").stat().st_size > len(data)
    noise = os.urandom(MiB)
    await remote.write("noise.bin", BytesSource(noise))  # tried, does not shrink: raw
    assert MiB < (tmp_path / "root" / "noise.bin").stat().st_size < MiB + 2 * 1024 + fmt.table_block_size(16) + 200
    for name, want in (("notes.txt", data), ("photo.jpg", data), ("noise.bin", noise)):
        assert await remote.read(name, 0, len(want) + 1) == want


sizes = st.one_of(st.sampled_from([0, 1, C - 1, C, C + 1, 3 * C - 1]), st.integers(0, 6 * C))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=sizes, reads=st.lists(st.tuples(st.integers(0, 7 * C), st.integers(1, 3 * C)), min_size=1, max_size=6),
       seed=st.integers(0, 2**32), noisy=st.booleans())
async def test_random_ranges_read_back_exactly(tmp_path, size, reads, seed, noisy):
    data = random.Random(seed).randbytes(size) if noisy else text(size, seed)
    remote = on_local(tmp_path / "root")
    entry = await remote.write("f", BytesSource(data))
    fresh = on_local(tmp_path / "root")  # nothing cached: the first read takes header and table
    assert (await fresh.stat("f")).size == size
    for offset, length in reads:
        assert await fresh.read("f", offset, length, rev=entry.rev) == data[offset:offset + length]
        pieces: list[bytes] = []
        await fresh.read_into("f", offset, length, pieces.append, rev=entry.rev)
        assert b"".join(pieces) == data[offset:offset + length]


async def test_a_second_gateway_reads_each_size_once_then_remembers_it(tmp_path):
    root = tmp_path / "root"
    writer = on_local(root)
    files = {f"d/f{i}.txt": text(i * 1000 + 1, i) for i in range(20)}
    for name, data in files.items():
        await writer.write(name, BytesSource(data))

    async def listed(state_dir) -> tuple[dict[str, int], int]:  # noqa: ANN001
        observer = CountingObserver()
        remote = crypt(InstrumentedRemote(LocalRemote(root), "x", observer), state_dir=state_dir)
        try:
            sizes = {e.path: e.size async for e in remote.list("d")}
        finally:
            await remote.aclose()
        return sizes, sum(op == "read" for _, op, _ in observer.requests)

    want = {name: len(data) for name, data in files.items()}
    assert await listed(tmp_path / "state") == (want, 20)  # one read of 188 bytes per file
    assert await listed(tmp_path / "state") == (want, 0)  # after a restart: from the size store
    assert (await listed(None))[1] == 20  # without a store: read again
    await writer.write("d/f3.txt", BytesSource(b"changed"))
    sizes, reads = await listed(tmp_path / "state")
    assert (sizes["d/f3.txt"], reads) == (7, 1)  # a new revision is a new key


async def test_plain_layout_files_in_a_compressing_vault_still_read(tmp_path):
    """A file another gateway wrote in the plain layout (or before compression existed)."""
    remote = on_local(tmp_path / "root")
    data = text(2 * C + 5)
    out = io.BytesIO()
    fmt.encrypt_stream(io.BytesIO(data), out, fmt.new_header(KEYS))
    (tmp_path / "root" / "old.txt").write_bytes(out.getvalue())
    entry = await remote.stat("old.txt")
    assert entry.size == len(data)
    assert await remote.read("old.txt", C - 3, 10, rev=entry.rev) == data[C - 3:C + 7]


@pytest.mark.parametrize("where", ["clear size", "table", "chunk", "cut", "swapped chunks"])
async def test_damage_is_an_integrity_error(tmp_path, where):
    remote = on_local(tmp_path / "root")
    data = text(4 * C)
    await remote.write("f", BytesSource(data))
    path = tmp_path / "root" / "f"
    stored = bytearray(path.read_bytes())
    area = fmt.chunk_area(len(data))
    if where == "clear size":
        stored[fmt.HEADER_SIZE + 7] ^= 1
    elif where == "table":
        stored[fmt.TABLE_START + 20] ^= 1
    elif where == "chunk":
        stored[area + 40] ^= 1
    elif where == "cut":
        del stored[-1]
    else:  # the first two chunks (same content, same stored length) change places
        data = text(C) * 4
        await remote.write("f", BytesSource(data))
        stored = bytearray(path.read_bytes())
        length = (len(stored) - area) // 4
        one, two = stored[area:area + length], stored[area + length:area + 2 * length]
        stored[area:area + 2 * length] = two + one
    path.write_bytes(bytes(stored))
    fresh = on_local(tmp_path / "root")
    rev = (await fresh.stat("f")).rev
    with pytest.raises(IntegrityError, match="f"):
        await fresh.read("f", 0, len(data), rev=rev)


@pytest.mark.slow
async def test_a_small_edit_copies_the_unchanged_chunks_even_where_they_moved(moto_server):
    remote = crypt(s3_bucket(moto_server))
    try:
        base = text(MiB) * 48  # ~15 MiB stored: three 5 MiB parts; the table is in the first
        first = await remote.write("big.txt", BytesSource(base))
        at = 24 * MiB + 100  # in the second part
        data = bytearray(base)
        data[at:at + 4096] = os.urandom(4096)  # the edited chunk no longer compresses: it grows
        source = EditedSource(bytes(data), first.rev, [(at, 4096)], len(base))
        await remote.write("big.txt", source, expect=first.rev)
        copied = sum(n for _, n in source.copies)
        assert copied >= 12 * MiB, f"only {copied} plaintext bytes copied server-side"
        assert any(offset > at for offset, _ in source.copies), "the chunks after the edit (moved) were copied"
        assert source.bytes_read() <= len(base) - copied + 2 * MiB
        fresh = crypt(remote.inner)  # nothing cached
        entry = await fresh.stat("big.txt")
        assert entry.size == len(data)
        assert await fresh.read("big.txt", 0, len(data) + 1, rev=entry.rev) == bytes(data)
    finally:
        await remote.aclose()


@pytest.mark.slow
async def test_chunks_another_compressor_made_are_never_mixed_in_the_file_is_sent_whole(moto_server, caplog):
    """The base was written with LZ4 (think: another zstd version); this gateway compresses
    with zstd, so the unchanged chunks at the edges of a sent part do not seal to the base's
    bytes: the write falls back to sending the whole file, which then reads back exactly."""
    caplog.set_level(logging.INFO, logger="cloudgw.remotes.crypt")
    inner = s3_bucket(moto_server)
    lz4_gateway = crypt(inner, keys=dataclasses.replace(KEYS, compress="lz4"))
    base = text(MiB) * 12
    first = await lz4_gateway.write("doc.txt", BytesSource(base))
    remote = crypt(inner)
    try:
        assert remote._codec == ZSTD != LZ4
        data = bytearray(base)
        data[6 * MiB:6 * MiB + 10] = b"0123456789"
        source = EditedSource(bytes(data), first.rev, [(6 * MiB, 10)], len(base))
        entry = await remote.write("doc.txt", source, expect=first.rev)
        assert "sending the whole file" in caplog.text
        fresh = crypt(inner)
        assert await fresh.read("doc.txt", 0, len(data) + 1, rev=entry.rev) == bytes(data)
    finally:
        await remote.aclose()


@pytest.mark.parametrize("data", [text(3 * MiB), os.urandom(3 * MiB)], ids=["text", "noise"])
async def test_the_first_read_of_the_start_of_a_file_is_one_request(tmp_path, data):
    """Header, size, chunk table and the chunks wanted in one ranged read (a fetcher's first
    block of a file); the next read uses the cached table."""
    root = tmp_path / "root"
    entry = await on_local(root).write("f", BytesSource(data))
    observer = CountingObserver()
    fresh = crypt(InstrumentedRemote(LocalRemote(root), "x", observer))
    assert await fresh.read("f", 0, MiB, rev=entry.rev) == data[:MiB]
    assert await fresh.read("f", MiB, MiB, rev=entry.rev) == data[MiB:2 * MiB]
    assert [op for _, op, _ in observer.requests] == ["read", "read"]
