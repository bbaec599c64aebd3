"""The compressed layout in the encrypting remote: the upload sources and the read decoder.

A compressed file's chunks have lengths of their own, listed in a table that
comes before them (docs/encryption.md, "Compressed files"), so an upload
cannot start until every chunk's length is known: ``measure`` seals each chunk
once, in a worker thread, keeping lengths, nonces and codecs (21 bytes a chunk:
5 MiB for a 16 GiB file) and, for a file whose stored form fits in
``KEEP_SEALED``, the sealed chunks themselves.  ``CompressingSource`` then
serves the stored bytes: header, size, table, and each chunk sealed again on
demand (deterministic, checked against the nonce measured: a chunk that comes
out different means the file changed, ``SourceChanged``, and the upload is
abandoned before it commits).  Large files cost two compressions per chunk
and flat memory; small ones one compression.

``CompressingDeltaSource``: a chunk is copyable from the base revision when its
plaintext is unchanged and it sealed to the very length and nonce the base's
table lists for it (so also the same bytes); an edited chunk before it may
have moved it, which ``base_offset`` accounts for.

Threads: the sources are called from worker threads and keep no state that a
read changes (the table-block cache holds deterministic bytes: a race only
builds one twice).  The decoder runs in the trio thread, fed by the stream.
"""

from __future__ import annotations

import bisect
from array import array
from typing import Callable

from cloudgw.crypt import compress
from cloudgw.crypt import format as fmt
from cloudgw.errors import IntegrityError, SourceChanged
from cloudgw.remotes.base import DeltaSource, UploadSource

KEEP_SEALED = 8 << 20  # stored bytes kept from the measuring pass (a file this small is compressed once)
UNKNOWN = 255  # a chunk taken from the base's table: its codec is inside its sealed bytes


class ChunkNotReproducible(SourceChanged):
    """An unchanged chunk of a delta write does not seal to the base's bytes here (another
    compressor version wrote the base): the write is sent whole instead."""


class Layout:
    """Each chunk's stored length, nonce and codec, and where it starts (from the chunk area)."""

    def __init__(self, plain_size: int) -> None:
        self.plain_size = plain_size
        self.count = fmt.chunk_count(plain_size)
        self.area = fmt.chunk_area(plain_size)
        self.starts = array("Q", [0])
        self.nonces = bytearray()
        self.codecs = array("B")

    @property
    def size(self) -> int:
        return self.area + self.starts[-1]

    def add(self, stored: bytes, codec: int) -> None:
        self.add_entry(len(stored), stored[:fmt.NONCE], codec)

    def add_entry(self, length: int, nonce: bytes, codec: int) -> None:
        self.starts.append(self.starts[-1] + length)
        self.nonces += nonce
        self.codecs.append(codec)

    def span(self, index: int) -> tuple[int, int]:
        return self.starts[index], self.starts[index + 1] - self.starts[index]

    def nonce(self, index: int) -> bytes:
        return bytes(self.nonces[fmt.NONCE * index:fmt.NONCE * (index + 1)])

    def chunk_at(self, offset: int) -> int:
        """The chunk holding stored byte ``offset`` (>= area)."""
        return bisect.bisect_right(self.starts, offset - self.area) - 1

    def table_block(self, header: fmt.FileHeader, block: int) -> bytes:
        first = block * fmt.TABLE_BLOCK
        last = min(self.count, first + fmt.TABLE_BLOCK)
        entries = [(self.span(i)[1], self.nonce(i)) for i in range(first, last)]
        return fmt.seal_table_block(header, block, self.plain_size, self.starts[first], entries)


def _last(index: int, count: int) -> bool:
    return index == count - 1


def measure(source: UploadSource, header: fmt.FileHeader, codec: int,
            reuse: Callable[[int], tuple[int, bytes] | None] | None = None) -> tuple[Layout, list[bytes] | None]:
    """Seal every chunk of ``source`` once (a worker thread): its layout, and the sealed
    chunks themselves when they fit in ``KEEP_SEALED``.  ``reuse(index)``: the base
    revision's (stored length, nonce) of a chunk whose plaintext is unchanged, taken
    without reading it (a delta write reads only what changed)."""
    layout = Layout(source.size)
    kept: list[bytes] | None = [] if reuse is None else None
    for index in range(layout.count):
        known = reuse(index) if reuse is not None else None
        if known is not None:
            layout.add_entry(*known, codec=UNKNOWN)
            continue
        want = fmt.chunk_length(index, layout.plain_size)
        plain = source.read(index * fmt.CHUNK, want)
        if len(plain) != want:
            raise SourceChanged(f"the file shrank while it was being compressed ({len(plain)} of {want} bytes)")
        used, payload = compress.compress(codec, plain)
        stored = fmt.seal_body(header, index, bytes((used,)) + payload, _last(index, layout.count))
        layout.add(stored, used)
        if kept is not None:
            kept.append(stored)
            if layout.starts[-1] > KEEP_SEALED:
                kept = None
    return layout, kept


def reuse_from(delta: DeltaSource, plain_size: int, base_size: int,
               base_blocks: list[fmt.TableBlock]) -> Callable[[int], tuple[int, bytes] | None]:
    """``measure``'s ``reuse``: the base's table entry of each chunk the delta source says is
    unchanged, with the same length and last-chunk marker as in the base."""
    count, base_count = fmt.chunk_count(plain_size), fmt.chunk_count(base_size)

    def reuse(index: int) -> tuple[int, bytes] | None:
        length = fmt.chunk_length(index, plain_size)
        if (index >= base_count or not length or _last(index, count) != _last(index, base_count)
                or length != fmt.chunk_length(index, base_size) or not delta.unchanged(index * fmt.CHUNK, length)):
            return None
        block = base_blocks[index // fmt.TABLE_BLOCK]
        return block.span(index)[1], block.nonce(index)

    return reuse


class CompressingSource:
    """``source`` in the compressed layout, as measured (see the module docstring)."""

    def __init__(self, source: UploadSource, header: fmt.FileHeader, layout: Layout,
                 kept: list[bytes] | None, codec: int) -> None:
        self.source, self.header, self.layout, self._kept, self._codec = source, header, layout, kept, codec
        self.size = layout.size
        self._prefix = header.raw + fmt.SIZE_FIELD.pack(layout.plain_size)
        self._blocks: dict[int, bytes] = {}

    def check(self) -> None:
        self.source.check()

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        out = []
        if offset < fmt.TABLE_START:
            out.append(self._prefix[offset:min(end, fmt.TABLE_START)])
        lo = max(offset, fmt.TABLE_START)
        while lo < min(end, self.layout.area):  # table blocks
            block = (lo - fmt.TABLE_START) // fmt.table_block_size(fmt.TABLE_BLOCK)
            start = fmt.table_block_offset(block)
            data = self._table_block(block)
            out.append(data[lo - start:min(end, self.layout.area) - start])
            lo = start + len(data)
        lo = max(offset, self.layout.area)
        if lo < end:
            for index in range(self.layout.chunk_at(lo), self.layout.chunk_at(end - 1) + 1):
                start = self.layout.area + self.layout.starts[index]
                out.append(self._chunk(index)[max(lo - start, 0):end - start])
        return b"".join(out)

    def _table_block(self, block: int) -> bytes:
        data = self._blocks.get(block)
        if data is None:
            data = self._blocks[block] = self.layout.table_block(self.header, block)
        return data

    def _chunk(self, index: int) -> bytes:
        if self._kept is not None:
            return self._kept[index]
        layout = self.layout
        want = fmt.chunk_length(index, layout.plain_size)
        plain = self.source.read(index * fmt.CHUNK, want)
        if len(plain) != want:
            raise SourceChanged(f"the file shrank while it was being uploaded (chunk {index})")
        codec = layout.codecs[index]
        for tried in ((self._codec, compress.RAW) if codec == UNKNOWN else (codec,)):
            used, payload = compress.compress(tried, plain)
            stored = fmt.seal_body(self.header, index, bytes((used,)) + payload, _last(index, layout.count))
            if len(stored) == layout.span(index)[1] and stored[:fmt.NONCE] == layout.nonce(index):
                return stored
        if codec == UNKNOWN:
            raise ChunkNotReproducible(f"chunk {index} does not seal to the base revision's bytes")
        raise SourceChanged(f"chunk {index} changed while it was being uploaded")


class CompressingDeltaSource(CompressingSource):
    """A ``CompressingSource`` that is also a ``DeltaSource`` over the base revision (whose
    header it reuses): see the module docstring."""

    def __init__(self, source: UploadSource, header: fmt.FileHeader, layout: Layout, codec: int,
                 delta: DeltaSource, base_size: int, base_blocks: list[fmt.TableBlock]) -> None:
        super().__init__(source, header, layout, None, codec)
        self.delta, self.base_rev = delta, delta.base_rev
        self._base_area = fmt.chunk_area(base_size)
        self._base_blocks = base_blocks
        base_count = fmt.chunk_count(base_size)
        self._copyable = array("b", (self._same(i, base_count) for i in range(layout.count)))

    def _base_span(self, index: int) -> tuple[int, int]:
        return self._base_blocks[index // fmt.TABLE_BLOCK].span(index)

    def _same(self, index: int, base_count: int) -> bool:
        if index >= base_count or _last(index, self.layout.count) != _last(index, base_count):
            return False
        block = self._base_blocks[index // fmt.TABLE_BLOCK]
        if self._base_span(index)[1] != self.layout.span(index)[1] or block.nonce(index) != self.layout.nonce(index):
            return False
        length = fmt.chunk_length(index, self.layout.plain_size)
        return self.delta.unchanged(index * fmt.CHUNK, length) if length else True

    def _shift(self, index: int) -> int:
        """Base offset minus our offset of chunk ``index``."""
        return self._base_area + self._base_span(index)[0] - self.layout.area - self.layout.starts[index]

    def unchanged(self, offset: int, length: int) -> bool:
        if length <= 0 or offset < self.layout.area or offset + length > self.size:
            return False
        first, last = self.layout.chunk_at(offset), self.layout.chunk_at(offset + length - 1)
        return (all(self._copyable[i] for i in range(first, last + 1))
                and self._shift(first) == self._shift(last))

    def base_offset(self, offset: int) -> int:
        return offset + self._shift(self.layout.chunk_at(offset))

    def copied(self, offset: int, length: int) -> None:
        """Every chunk the copied range touches counts as sent (see ``crypt_plain.EncryptingDeltaSource``)."""
        for index in range(self.layout.chunk_at(offset), self.layout.chunk_at(offset + length - 1) + 1):
            want = fmt.chunk_length(index, self.layout.plain_size)
            if want:
                self.delta.copied(index * fmt.CHUNK, want)


class CompressedDecoder:
    """Stored chunks ``first``..``last`` (of one table block) in, plaintext of [lo, hi) out."""

    def __init__(self, header: fmt.FileHeader, plain_size: int, block: fmt.TableBlock, first: int, last: int,
                 lo: int, hi: int, sink: Callable[[bytes], None], what: str) -> None:
        self.header, self.plain_size, self.block = header, plain_size, block
        self.index, self.last, self.lo, self.hi, self.sink, self.what = first, last, lo, hi, sink, what
        self.count = fmt.chunk_count(plain_size)
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data
        done = 0  # chunks are opened from views of the buffer, which is compacted once
        with memoryview(self._buf) as view:
            while self.index <= self.last:
                length = self.block.span(self.index)[1]
                if len(self._buf) - done < length:
                    break
                with view[done:done + length] as stored:  # released here: the buffer can be resized
                    plain = fmt.open_compressed_chunk(self.header, self.index, stored, _last(self.index, self.count),
                                                      self.plain_size, self.block.nonce(self.index), self.what)
                done += length
                base = self.index * fmt.CHUNK
                self.index += 1
                lo, hi = max(self.lo - base, 0), min(self.hi - base, len(plain))
                if lo < hi:
                    self.sink(plain[lo:hi])
        del self._buf[:done]

    def finish(self) -> None:
        if self.index <= self.last:
            raise IntegrityError(f"{self.what}: cut short at chunk {self.index} (the file is shorter than its table)")
