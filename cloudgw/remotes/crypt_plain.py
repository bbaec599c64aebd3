"""The plain layout in the encrypting remote: the upload sources and the read decoder.

Chunks of the plain layout sit at computable offsets (docs/encryption.md, "A
file: header, then chunks"), so the sources seal any stored range on demand and
keep nothing between reads, and the decoder cuts a stream into fixed slots.
``remotes.crypt`` uses them; ``crypt_compressed`` is the compressed layout's
counterpart.
"""

from __future__ import annotations

from typing import Callable

from cloudgw.crypt import format as fmt
from cloudgw.errors import IntegrityError
from cloudgw.remotes.base import DeltaSource, UploadSource


class ChunkDecoder:
    """Stored bytes in, plaintext of [lo, hi) out, one chunk at a time.

    A chunk is opened once the next byte after it has arrived (then it is not the
    last) or the stream has ended (then it is); bytes reach ``sink`` only after
    their chunk authenticated."""

    def __init__(self, first: int, lo: int, hi: int, sink: Callable[[bytes], None], what: str) -> None:
        self.index, self.lo, self.hi, self.sink, self.what = first, lo, hi, sink, what
        self.header: fmt.FileHeader | None = None
        self.header_bytes = 0  # > 0: the stream starts with the header
        self.open_header: Callable[[bytes], fmt.FileHeader] | None = None
        self.skip = 0  # stored bytes between the header and the first wanted chunk
        self.received = 0
        self.chunks_seen = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        self._buf += data
        if self.header is None:
            if len(self._buf) < self.header_bytes:
                return
            assert self.open_header is not None
            self.header = self.open_header(bytes(self._buf[:self.header_bytes]))
            del self._buf[:self.header_bytes]
        if self.skip:
            dropped = min(self.skip, len(self._buf))
            del self._buf[:dropped]
            self.skip -= dropped
        done = 0  # chunks are opened from views of the buffer, which is compacted once
        with memoryview(self._buf) as view:
            while len(self._buf) - done > fmt.SLOT:
                with view[done:done + fmt.SLOT] as stored:  # released here: the buffer can be resized
                    self._emit(stored, last=False)
                done += fmt.SLOT
        del self._buf[:done]

    def finish(self, ended: bool) -> None:
        """The stream is over; ``ended``: it stopped short, so the file ends in the buffer."""
        if self.header is None:
            if ended:
                raise IntegrityError(f"{self.what}: shorter than an encrypted file's header")
            return
        if ended and self._buf:
            self._emit(bytes(self._buf), last=True)
        self._buf.clear()  # not ended: only the byte after the last wanted chunk

    def _emit(self, stored: bytes | memoryview, last: bool) -> None:
        assert self.header is not None
        plain = fmt.open_chunk(self.header, self.index, stored, last, self.what)
        base = self.index * fmt.CHUNK
        self.index += 1
        self.chunks_seen += 1
        lo, hi = max(self.lo - base, 0), min(self.hi - base, len(plain))
        if lo < hi:
            self.sink(plain[lo:hi])


class EncryptingSource:
    """``source`` as stored: header, then chunks sealed as they are read (from worker threads).

    Sealing is deterministic (``format.seal_chunk``: the nonce is derived from the
    file key, the index and the plaintext), so a remote may read the source as
    often and in whatever pieces it likes -- a part boundary inside a chunk, a
    retried part, a WebDAV upload that reads once to hash and once to send --
    and every read of a chunk gives the same bytes.  No state is kept between
    reads: memory is the remote's read size, whatever the file's size.
    """

    def __init__(self, source: UploadSource, header: fmt.FileHeader) -> None:
        self.source, self.header = source, header
        self.plain_size = source.size
        self.size = fmt.stored_size(source.size)

    def check(self) -> None:
        self.source.check()

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        out = []
        if offset < fmt.HEADER_SIZE:
            out.append(self.header.raw[offset:min(end, fmt.HEADER_SIZE)])
        if end > fmt.HEADER_SIZE:
            lo = max(offset, fmt.HEADER_SIZE)
            first, last = (lo - fmt.HEADER_SIZE) // fmt.SLOT, (end - 1 - fmt.HEADER_SIZE) // fmt.SLOT
            for index in range(first, last + 1):
                start = fmt.chunk_offset(index)
                out.append(self._seal(index)[max(lo - start, 0):end - start])
        return b"".join(out)

    def _stored_len(self, index: int) -> int:
        return fmt.chunk_length(index, self.plain_size) + fmt.OVERHEAD

    def _seal(self, index: int) -> bytes:
        want = fmt.chunk_length(index, self.plain_size)
        plain = self.source.read(index * fmt.CHUNK, want)
        if len(plain) != want:  # the file shrank under us: check() fails before the commit
            return b"\0" * (want + fmt.OVERHEAD)
        return fmt.seal_chunk(self.header, index, plain, last=index == fmt.chunk_count(self.plain_size) - 1)


class EncryptingDeltaSource(EncryptingSource):
    """An encrypting source that is also a ``DeltaSource``: a stored range is unchanged when
    every chunk it touches is unchanged in plaintext, has the same length and the same
    last-chunk marker as in the base revision, whose header (and so key) it reuses.

    Such a chunk sealed again is byte for byte what the base revision holds (sealing is
    deterministic), so a part the remote copies may end inside a chunk whose rest the
    remote reads from us: the two pieces match without fetching anything.
    """

    def __init__(self, source: UploadSource, header: fmt.FileHeader, delta: DeltaSource, base_size: int) -> None:
        super().__init__(source, header)
        self.delta, self.base_size = delta, base_size
        self.base_rev = delta.base_rev

    def _chunk_unchanged(self, index: int) -> bool:
        new_len = fmt.chunk_length(index, self.plain_size)
        new_last = index == fmt.chunk_count(self.plain_size) - 1
        old_last = index == fmt.chunk_count(self.base_size) - 1
        if new_len != fmt.chunk_length(index, self.base_size) or new_last != old_last:
            return False
        return self.delta.unchanged(index * fmt.CHUNK, new_len) if new_len else new_last

    def unchanged(self, offset: int, length: int) -> bool:
        if length <= 0 or offset + length > self.size:
            return False
        end = offset + length
        if end <= fmt.HEADER_SIZE:
            return True
        lo = max(offset, fmt.HEADER_SIZE)
        first, last = (lo - fmt.HEADER_SIZE) // fmt.SLOT, (end - 1 - fmt.HEADER_SIZE) // fmt.SLOT
        return all(self._chunk_unchanged(i) for i in range(first, last + 1))

    def base_offset(self, offset: int) -> int:
        return offset  # the plain layout's chunks never move

    def copied(self, offset: int, length: int) -> None:
        """Tell the plaintext source which of its bytes the remote took from the base: every
        chunk the copied range touches (a chunk copied in pieces by two parts is never read,
        and must still count as sent)."""
        lo, hi = max(offset, fmt.HEADER_SIZE), offset + length
        if hi <= lo:
            return
        first, last = (lo - fmt.HEADER_SIZE) // fmt.SLOT, (hi - 1 - fmt.HEADER_SIZE) // fmt.SLOT
        for index in range(first, last + 1):
            if fmt.chunk_length(index, self.plain_size):
                self.delta.copied(index * fmt.CHUNK, fmt.chunk_length(index, self.plain_size))
