"""Client-side encryption as a remote around any remote: the cloud holds only ciphertext.

``CryptRemote(inner, password)`` implements the whole Remote contract over
``inner`` in the format of ``docs/encryption.md``: every file is a 180-byte
header (its own random key, wrapped for the vault's master key and for the
recovery key) and 64 KiB AES-256-GCM chunks.  ``check()`` reads the vault
(``.cloudgw-vault.json`` at the root) and runs the KDF once; a wrong password
is a ``UserError`` there, before the mount.  The vault is never listed and its
name cannot be created.

Sizes: a listing's stored sizes become plaintext sizes by arithmetic
(``format.plain_size``), so ``ls -l`` costs no reads.  Reads: a plaintext range
is fetched as the chunks that hold it (one ranged read, one byte beyond the
last chunk to learn whether the file ends there: the last-chunk marker needs
it); the file key comes from a header cache keyed by (path, rev), filled by the
first read (which then starts at 0 when that costs at most ``HEADER_INLINE``
extra bytes) and by our own writes.  ``read_into`` streams: each chunk is
decrypted and handed on as soon as the chunk after it has begun to arrive.
A chunk that fails authentication raises ``IntegrityError`` (EIO, one log line
naming the file); its bytes never reach the cache.

Writes: a new file gets a new header.  A ``DeltaSource`` write (a small edit
of a large file, on a remote with ``delta_writes``) keeps the base revision's
header and hence its key, so each unchanged chunk's stored bytes stay valid and
the remote copies them server-side; sealing is deterministic, so parts that cut
a chunk stay consistent (``EncryptingSource``).  Content hashes of the inner remote are of
ciphertext: ``hash_kind`` is None (content is compared by reading).

Compression (a vault made with ``--compress``): every file is written in the
compressed layout (``crypt_compressed``: sealed once to learn the chunk table,
then uploaded; reads fetch one table block, then the chunks).  A listing's
stored sizes no longer give plaintext sizes: ``_sized`` takes them from the
size store (``crypt_sizes``, on disk in the gateway's state folder) or reads
each unknown (file, revision)'s first 188 bytes once, ``SIZE_LOOKUPS`` at a
time.  Files of the plain layout in such a vault read as before.

Concurrency and crash behaviour are the inner remote's: a write is one inner
write (the old object stays until the new one is complete).  The header and
table caches are touched only from the trio thread; the upload sources are
called from worker threads and keep no state between reads that a read
changes.  A crash can lose at most remembered sizes, which are read again.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections import OrderedDict
from pathlib import Path
from typing import AsyncIterator, Callable, Collection

import trio

from cloudgw.crypt import compress
from cloudgw.crypt import format as fmt
from cloudgw.crypt import keep_secrets_out_of_core_dumps
from cloudgw.crypt.names import NameCipher, longest_name
from cloudgw.crypt.vault import VAULT_NAME, Keys, unlock, vault_id
from cloudgw.remotes.crypt_compressed import (ChunkNotReproducible, CompressedDecoder, CompressingDeltaSource,
                                              CompressingSource, measure, reuse_from)
from cloudgw.remotes.crypt_guard import read_vault
from cloudgw.remotes.crypt_plain import ChunkDecoder, EncryptingDeltaSource, EncryptingSource
from cloudgw.remotes.crypt_sizes import SizeStore
from cloudgw.errors import (IntegrityError, RemoteNameInvalid, RemoteNameTooLong, RemoteNotFound, UserError)
from cloudgw.remotes.base import (Capabilities, Change, DeltaSource, Expect, FileAttrs, Kind, Remote, RemoteEntry,
                                  UploadSource, capabilities_at, check_path, delta_base, forward_set_attrs, read_into)
from cloudgw.remotes.base import link as link_in, same_version as same_version_in

log = logging.getLogger(__name__)

HEADER_INLINE = 1 << 20  # a first read this near the start fetches the header with the chunks
HEADER_CACHE = 4096  # (path, rev) -> file header (and a compressed file's size); ~200 bytes each
TABLE_CACHE = 64  # (path, rev, block) -> opened table block of a compressed file; <= 80 KiB each
FIRST_INLINE = 4 << 20  # a first read within this many bytes of the start fetches its chunks with the table
FIRST_FETCH = fmt.TABLE_START + fmt.table_block_size(fmt.TABLE_BLOCK)  # header, size and table block 0
PIECE = 1 << 20  # plaintext handed to a streamed read's sink at a time (at most)
SIZE_PAGE = 256  # listing entries whose sizes are looked up together
SIZE_LOOKUPS = 8  # concurrent first-188-byte reads for sizes

Known = tuple[fmt.FileHeader, "int | None"]  # a file's header, and its plaintext size if compressed


class CryptRemote:
    """``inner`` with contents (and optionally names) encrypted; see the module docstring."""

    encrypted = True  # crypt_guard.guard_plain leaves it as it is

    def __init__(self, inner: Remote, password: bytes, *, label: str = "", state_dir: Path | None = None) -> None:
        self.inner = inner
        self._password: bytes | None = password
        self._label = label or repr(inner)
        self._keys: Keys | None = None
        self._names: NameCipher | None = None
        self._codec = compress.RAW  # the vault's: new files are written compressed unless RAW
        self._headers: OrderedDict[tuple[str, str], Known] = OrderedDict()
        self._tables: OrderedDict[tuple[str, str, int], fmt.TableBlock] = OrderedDict()
        self._sizes = SizeStore(state_dir / "crypt-sizes" if state_dir is not None else None)

    def __repr__(self) -> str:
        return f"CryptRemote({self.inner!r})"

    # -- set-up --------------------------------------------------------------------

    async def check(self) -> None:
        """The inner remote's check, then the vault: unlocked with the password (the KDF, once,
        in a worker thread) the first time, and only found to be the same vault afterwards."""
        await self.inner.check()
        vault = await read_vault(self.inner)
        if vault is None:
            raise UserError(f"{self._label} is not an encrypted remote (no {VAULT_NAME}): create one with "
                            "'cloudgw crypt init', or remove the crypt password")
        if self._keys is not None:
            if vault_id(vault) != self._keys.vault_id:
                raise UserError(f"{self._label}: the vault was replaced since it was unlocked: mount again")
            return
        keep_secrets_out_of_core_dumps()
        password, self._password = self._password, None  # kept no longer than needed
        if password is None:
            raise UserError(f"{self._label}: no password to unlock the vault with")
        self.unlocked(await trio.to_thread.run_sync(unlock, vault, password))

    def unlocked(self, keys: Keys) -> None:
        """Use ``keys`` (tests, and ``check`` after the KDF)."""
        self._keys = keys
        self._names = NameCipher(keys.names_key) if keys.encrypt_names else None
        self._codec = compress.codec_of(keys.compress)

    @property
    def keys(self) -> Keys:
        if self._keys is None:
            raise RuntimeError("CryptRemote used before check()")
        return self._keys

    @property
    def capabilities(self) -> Capabilities:
        caps = self.inner.capabilities
        names = self._names is not None
        return dataclasses.replace(
            caps, hash_kind=None, streaming_reads=True,
            # stored names are lower-case base32: case-only twins never meet on the remote
            case_sensitive=caps.case_sensitive or names,
            max_name_length=longest_name(caps.max_name_length) if names else caps.max_name_length,
            change_feed=caps.change_feed and hasattr(self.inner, "changes"))

    # -- names -----------------------------------------------------------------------

    def _in(self, path: str) -> str:
        return self._names.encrypt_path(path) if self._names is not None and path else path

    def _out_path(self, stored: str) -> str | None:
        """The local path of a stored path; None for what is not shown (the vault, foreign names)."""
        if stored == VAULT_NAME:
            return None
        return self._names.decrypt_path(stored) if self._names is not None else stored

    def _out(self, entry: RemoteEntry, path: str | None = None, size: int | None = None) -> RemoteEntry:
        """``entry`` with its local path and plaintext size (``size``, or computed from the stored size)."""
        if size is None:
            size = entry.size
            if entry.kind is Kind.FILE:  # a size no encrypted file has: shown as stored, so reads fail (EIO)
                plain = fmt.plain_size(entry.size)
                size = entry.size if plain is None else plain
        target = entry.symlink_target
        if target is not None and self._names is not None:
            target = self._names.decrypt_target(target)
        return dataclasses.replace(entry, path=entry.path if path is None else path, size=size, hash=None,
                                   symlink_target=target)

    def check_path(self, path: str) -> None:
        top = path.split("/", 1)[0]
        if top == VAULT_NAME or (not self.inner.capabilities.case_sensitive and top.lower() == VAULT_NAME):
            raise RemoteNameInvalid(f"{VAULT_NAME}: the name of the encryption vault cannot be used")
        if self._names is not None:
            limit = self.capabilities.max_name_length
            for part in path.split("/"):
                if len(part.encode("utf-8", "surrogateescape")) > limit:
                    raise RemoteNameTooLong(f"{part[:40]}...: names of an encrypted remote with encrypted names "
                                            f"can have at most {limit} bytes")
        check_path(self.inner, self._in(path))

    # -- metadata ------------------------------------------------------------------------

    async def stat(self, path: str) -> RemoteEntry:
        if path == VAULT_NAME:
            raise RemoteNotFound(f"{path}: not found")
        return (await self._sized([(await self.inner.stat(self._in(path)), path)]))[0]

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        page: list[tuple[RemoteEntry, str | None]] = []
        async for entry in self.inner.list(self._in(path), recursive=recursive):
            local = self._out_path(entry.path)
            if local is None:
                if entry.path != VAULT_NAME:
                    log.debug("not shown: %s (not an encrypted name)", entry.path)
                continue
            page.append((entry, local))
            if len(page) >= SIZE_PAGE or not self._codec:
                for out in await self._sized(page):
                    yield out
                page = []
        for out in await self._sized(page):
            yield out

    # -- sizes of compressed files -----------------------------------------------------

    async def _sized(self, pairs: list[tuple[RemoteEntry, str | None]]) -> list[RemoteEntry]:
        """Each stored entry as shown at its local path.  In a vault with compression a file's
        plaintext size is not a function of its stored size: it comes from the size store, or
        from the file's first 188 bytes (read once per revision, ``SIZE_LOOKUPS`` at a time)."""
        if not self._codec:
            return [self._out(entry, path) for entry, path in pairs]
        files = [entry for entry, _ in pairs if entry.kind is Kind.FILE]
        sizes = await self._sizes.get_many((e.path, e.rev) for e in files if e.rev is not None)
        misses = [e for e in files if (e.path, e.rev) not in sizes]
        if misses:
            limiter = trio.CapacityLimiter(SIZE_LOOKUPS)

            async def lookup(entry: RemoteEntry) -> None:
                async with limiter:
                    size = await self._read_size(entry)
                if size is not None:
                    sizes[(entry.path, entry.rev)] = size

            async with trio.open_nursery() as nursery:
                for entry in misses:
                    nursery.start_soon(lookup, entry)
        return [self._out(entry, path, sizes.get((entry.path, entry.rev)) if entry.kind is Kind.FILE else None)
                for entry, path in pairs]

    async def _read_size(self, entry: RemoteEntry) -> int | None:
        """The plaintext size of ``entry`` from its first bytes; None (the stored size is shown,
        and reads fail) for an object that is not a valid encrypted file or is gone."""
        try:
            raw = await self.inner.read(entry.path, 0, fmt.TABLE_START, rev=entry.rev)
            header = await trio.to_thread.run_sync(fmt.open_header, raw, self.keys, entry.path)
            size = fmt.read_plain_size(raw[fmt.HEADER_SIZE:], entry.path) if header.compressed else None
        except (IntegrityError, RemoteNotFound) as exc:
            log.debug("size of %s not known: %s", entry.path, exc)
            return None
        self._remember(entry.path, entry.rev, header, size)
        if size is None:  # a file in the plain layout
            size = fmt.plain_size(entry.size)
            if size is None:
                return None
        if entry.rev is not None:
            await self._sizes.put((entry.path, entry.rev), size)
        return size

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        return self._out(await self.inner.mkdir(self._in(path), attrs), path)  # a folder: no size to look up

    async def set_attrs(self, path: str, attrs: FileAttrs, *, expect: str | None = None) -> RemoteEntry:
        """The inner remote's, as ``write`` passes attributes through (they are not encrypted).
        A new revision (file://'s ctime, a copied multipart object) is shown with its plaintext
        size looked up anew (``_sized``): the header cache is not carried over to it, since a
        server that ignores the copy's pin could have copied someone else's content."""
        entry = await forward_set_attrs(self.inner, self._in(path), attrs, expect=expect)
        return (await self._sized([(entry, path)]))[0]

    async def rmdir(self, path: str) -> None:
        await self.inner.rmdir(self._in(path))

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        await self.inner.delete(self._in(path), expect=expect)

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        return (await self._sized([(await self.inner.rename(self._in(src), self._in(dst), expect=expect), dst)]))[0]

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        entry = await self.inner.copy(self._in(src), self._in(dst), rev=rev, expect=expect)
        return (await self._sized([(entry, dst)]))[0]

    async def link(self, src: str, dst: str, *, rev: str | None, expect: Expect | str) -> RemoteEntry:
        """``inner``'s link of the stored names: a second name of the same ciphertext, which reads
        the same under any name (neither a file's header nor a symlink's stored target depends on
        its path).  The source's header and size, where known at ``rev``, are the new name's."""
        stored_src, stored_dst = self._in(src), self._in(dst)
        entry = await link_in(self.inner, stored_src, stored_dst, rev=rev, expect=expect)
        known = self._known(stored_src, rev)
        if known is not None and entry.kind is Kind.FILE:
            self._remember(stored_dst, entry.rev, *known)
            if known[1] is not None and entry.rev is not None:
                await self._sizes.put((stored_dst, entry.rev), known[1])
        return (await self._sized([(entry, dst)]))[0]

    def same_version(self, a: str, b: str, *, path: str | None = None) -> bool:
        """``inner``'s: stored revisions are shown unchanged."""
        return same_version_in(self.inner, a, b, path=None if path is None else self._in(path))

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        stored = self._names.encrypt_target(target) if self._names is not None else target
        entry = await self.inner.symlink(self._in(path), stored)
        return dataclasses.replace(self._out(entry, path), symlink_target=target)

    async def readlink(self, path: str) -> str:
        stored = await self.inner.readlink(self._in(path))
        if self._names is None:
            return stored
        target = self._names.decrypt_target(stored)
        if target is None:
            raise IntegrityError(f"{path}: the symlink's target does not decrypt")
        return target

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        return await self.inner.abort_incomplete_uploads([self._in(p) for p in paths])

    async def change_cursor(self) -> str:
        return await self.inner.change_cursor()  # type: ignore[attr-defined]

    async def changes(self, cursor: str) -> tuple[list[Change], str]:
        found, cursor = await self.inner.changes(cursor)  # type: ignore[attr-defined]
        sized = await self._sized([(c.entry, c.entry.path) for c in found if c.entry is not None])
        sizes = {(e.path, e.rev): e.size for e in sized if e.kind is Kind.FILE}
        out = []
        for change in found:
            entry = change.entry
            if entry is not None:
                name = entry.path
                if change.path is None:  # a name only, under parent_id: the vault is only at the root
                    if name == VAULT_NAME and change.parent_id is None:
                        continue
                    name = self._names.decrypt_path(name) if self._names is not None else name
                if name is None:
                    continue
                entry = self._out(entry, name if change.path is None else None,
                                  sizes.get((entry.path, entry.rev)) if entry.kind is Kind.FILE else None)
            path = change.path
            if path is not None:
                path = self._out_path(path)
                if path is None:
                    continue
                if entry is not None:
                    entry = dataclasses.replace(entry, path=path)
            out.append(dataclasses.replace(change, entry=entry, path=path))
        return out, cursor

    async def aclose(self) -> None:
        self._sizes.close()
        await self.inner.aclose()

    # -- headers -------------------------------------------------------------------------

    def _remember(self, path: str, rev: str | None, header: fmt.FileHeader, plain_size: int | None = None) -> None:
        if rev is None:
            return
        self._headers[(path, rev)] = (header, plain_size)
        self._headers.move_to_end((path, rev))
        while len(self._headers) > HEADER_CACHE:
            self._headers.popitem(last=False)

    def _known(self, path: str, rev: str | None) -> Known | None:
        return self._headers.get((path, rev)) if rev is not None else None

    async def _header(self, stored_path: str, rev: str | None, what: str) -> fmt.FileHeader:
        cached = self._known(stored_path, rev)
        if cached is not None:
            return cached[0]
        raw = await self.inner.read(stored_path, 0, fmt.TABLE_START, rev=rev)
        header = await trio.to_thread.run_sync(fmt.open_header, raw, self.keys, what)
        self._remember(stored_path, rev, header, fmt.read_plain_size(raw[fmt.HEADER_SIZE:], what)
                       if header.compressed else None)
        return header

    async def _table_block(self, stored_path: str, rev: str | None, known: Known, block: int, first: bytes,
                           what: str) -> fmt.TableBlock:
        """Table block ``block`` of a compressed file: cached, in ``first`` (the file's first bytes,
        if they were just read), or read."""
        header, plain_size = known
        assert plain_size is not None
        key = (stored_path, rev or "", block)
        cached = self._tables.get(key) if rev is not None else None
        if cached is not None:
            self._tables.move_to_end(key)
            return cached
        start = fmt.table_block_offset(block)
        size = fmt.table_block_size(fmt.table_block_entries(block, plain_size))
        raw = first[start:start + size] if len(first) >= start + size else await self.inner.read(
            stored_path, start, size, rev=rev)
        opened = fmt.open_table_block(header, block, plain_size, raw, what)
        if rev is not None:
            self._tables[key] = opened
            while len(self._tables) > TABLE_CACHE:
                self._tables.popitem(last=False)
        return opened

    # -- reads ---------------------------------------------------------------------------

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        out = bytearray()
        await self.read_into(path, offset, length, out.extend, rev=rev)
        return bytes(out)

    async def read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                        rev: str | None = None) -> None:
        if length <= 0:
            return
        stored_path = self._in(path)
        known = self._known(stored_path, rev)
        if self._codec or (known is not None and known[0].compressed):
            await self._read_compressed(stored_path, path, offset, length, sink, rev, known)
        else:
            await self._read_plain(stored_path, path, offset, length, sink, rev, known and known[0])

    async def _read_compressed(self, stored_path: str, path: str, offset: int, length: int,
                               sink: Callable[[bytes], None], rev: str | None, known: Known | None) -> None:
        """A read in a vault with compression: the first read of a file takes its header, size and
        table block 0 in one request -- with the chunks wanted too when they are among the first
        ``FIRST_INLINE`` bytes (their stored form is no larger than the raw chunks'), so a small
        file or the start of a file costs one request -- then the chunks wanted are streamed,
        one request per table block they are listed in."""
        first = b""
        if known is None:
            wanted = offset + length <= FIRST_INLINE
            first = await self.inner.read(stored_path, 0, FIRST_FETCH + (
                fmt.chunk_count(offset + length) * (fmt.CHUNK + fmt.OVERHEAD + 1) if wanted else 0), rev=rev)
            header = await trio.to_thread.run_sync(fmt.open_header, first[:fmt.HEADER_SIZE], self.keys, path)
            known = (header, fmt.read_plain_size(first[fmt.HEADER_SIZE:], path) if header.compressed else None)
            self._remember(stored_path, rev, *known)
        header, plain_size = known
        if plain_size is None:  # a file in the plain layout
            await self._read_plain(stored_path, path, offset, length, sink, rev, header)
            return
        end = min(offset + length, plain_size)
        if offset >= end:  # past the end: still one request, so a changed ``rev`` fails as the contract says
            if not first:
                await self.inner.read(stored_path, fmt.HEADER_SIZE, fmt.SIZE_FIELD.size, rev=rev)
            return
        area = fmt.chunk_area(plain_size)
        lo, hi = offset // fmt.CHUNK, (end - 1) // fmt.CHUNK
        for block_index in range(lo // fmt.TABLE_BLOCK, hi // fmt.TABLE_BLOCK + 1):
            block = await self._table_block(stored_path, rev, known, block_index, first, path)
            a = max(lo, block_index * fmt.TABLE_BLOCK)
            b = min(hi, (block_index + 1) * fmt.TABLE_BLOCK - 1)
            start = area + block.span(a)[0]
            stop = area + sum(block.span(b))
            decoder = CompressedDecoder(header, plain_size, block, a, b, offset, end, sink, path)
            if len(first) >= stop:
                decoder.feed(first[start:stop])  # in the trio thread: the sink (the fetcher) must be called here
            else:
                await self._decode_stream(stored_path, start, stop - start, rev, decoder, sink)
            decoder.finish()

    async def _read_plain(self, stored_path: str, path: str, offset: int, length: int, sink: Callable[[bytes], None],
                          rev: str | None, header: fmt.FileHeader | None) -> None:
        first, last = offset // fmt.CHUNK, (offset + length - 1) // fmt.CHUNK
        start, end = fmt.chunk_offset(first), fmt.chunk_offset(last + 1) + 1  # +1: does the file go on?
        decoder = ChunkDecoder(first, offset, offset + length, sink, path)
        if header is None and start <= HEADER_INLINE:
            decoder.header_bytes = fmt.HEADER_SIZE
            decoder.skip = start - fmt.HEADER_SIZE
            decoder.open_header = lambda raw: fmt.open_header(raw, self.keys, path)
            await self._decode_stream(stored_path, 0, end, rev, decoder, sink)
            if decoder.header is not None:
                self._remember(stored_path, rev, decoder.header)
        else:
            decoder.header = header or await self._header(stored_path, rev, path)
            await self._decode_stream(stored_path, start, end - start, rev, decoder, sink)
        ended = decoder.received < end - (0 if decoder.header_bytes else start)
        decoder.finish(ended)
        if decoder.chunks_seen == 0 and first == 0:
            raise IntegrityError(f"{path}: no chunk after the header (the file was cut short)")
        if decoder.chunks_seen == 0 and first > 0:
            await self._check_ends_before(stored_path, first, rev, decoder.header, path)

    async def _decode_stream(self, stored_path: str, start: int, length: int, rev: str | None,
                             decoder: ChunkDecoder | CompressedDecoder, sink: Callable[[bytes], None]) -> None:
        """Stream stored bytes [start, start + length) through ``decoder``, one worker-thread call
        per piece that arrived, while the remote receives the next piece; the plaintext of
        each piece reaches ``sink`` in the trio thread as one piece.

        Decryption so overlaps the network and stays off the thread that answers FUSE.
        Memory: the pieces received but not decoded yet -- none while decryption keeps up
        with the network, at most the request (a fetcher run, 32 MiB) when it does not.
        The decoder is touched by one thread at a time (each call is awaited)."""
        send, receive = trio.open_memory_channel[bytes](math.inf)
        decoded: list[bytes] = []
        decoder.sink = decoded.append

        def decode(data: bytes) -> list[bytes]:
            """``data`` decoded, as pieces of up to ``PIECE`` (chunks joined: one copy, here)."""
            decoder.feed(data)
            out, run, size = [], [], 0
            for chunk in decoded:
                if size + len(chunk) > PIECE and run:
                    out.append(b"".join(run))
                    run, size = [], 0
                run.append(chunk)
                size += len(chunk)
            if run:
                out.append(run[0] if len(run) == 1 else b"".join(run))
            decoded.clear()
            return out

        failed: list[Exception] = []  # the first failure, raised as it is (no exception group)

        async def fetch(scope: trio.CancelScope) -> None:
            try:
                async with send:
                    await read_into(self.inner, stored_path, start, length, send.send_nowait, rev=rev)
            except Exception as exc:
                failed.append(exc)
                scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch, nursery.cancel_scope)
            try:
                async with receive:
                    async for data in receive:
                        for plain in await trio.to_thread.run_sync(decode, data):
                            sink(plain)
            except Exception as exc:
                failed.append(exc)
                nursery.cancel_scope.cancel()
        decoder.sink = sink  # what ``finish`` still emits goes straight out
        if failed:
            raise failed[0]

    async def _check_ends_before(self, stored_path: str, index: int, rev: str | None,
                                 header: fmt.FileHeader | None, path: str) -> None:
        """A read at or past the end found no chunk at ``index``: the file must end with chunk
        ``index - 1`` marked last (else it was cut at a chunk boundary), unless even that one
        is missing (a read far past the end: nothing to check there)."""
        header = header or await self._header(stored_path, rev, path)
        start = fmt.chunk_offset(index - 1)
        stored = await self.inner.read(stored_path, start, fmt.SLOT + 1, rev=rev)
        if stored:
            fmt.open_chunk(header, index - 1, stored, last=len(stored) <= fmt.SLOT, what=path)

    # -- writes --------------------------------------------------------------------------

    async def write(self, path: str, source: UploadSource, *, expect: Expect | str = Expect.ANY,
                    attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        stored_path = self._in(path)
        delta = delta_base(source, expect) if capabilities_at(self.inner, stored_path).delta_writes else None
        if self._codec:
            return await self._write_compressed(path, stored_path, source, delta, expect, attrs)
        base = await self._delta_base(stored_path, delta, path) if delta is not None else None
        if base is not None:
            header, base_size = base
            enc: EncryptingSource = EncryptingDeltaSource(source, header, delta, base_size)  # type: ignore[arg-type]
        else:
            header = await trio.to_thread.run_sync(fmt.new_header, self.keys)
            enc = EncryptingSource(source, header)
        entry = await self.inner.write(stored_path, enc, expect=expect, attrs=attrs)
        self._remember(stored_path, entry.rev, header)
        return self._out(entry, path)

    async def _write_compressed(self, path: str, stored_path: str, source: UploadSource, delta: DeltaSource | None,
                                expect: Expect | str, attrs: FileAttrs) -> RemoteEntry:
        """A write in a vault with compression: every chunk sealed once to learn the table
        (``crypt_compressed.measure``, a worker thread), then the upload; a delta write keeps
        the base's header and copies the chunks that sealed to what the base holds."""
        codec = compress.RAW if compress.already_compressed(path) else self._codec
        base = await self._compressed_base(stored_path, delta, path) if delta is not None else None
        if base is not None:
            header = base[0]
        else:
            header = await trio.to_thread.run_sync(functools.partial(fmt.new_header, self.keys, compressed=True))
        enc: CompressingSource
        if base is not None and delta is not None:
            reuse = reuse_from(delta, source.size, base[1], base[2])
            layout, _ = await trio.to_thread.run_sync(measure, source, header, codec, reuse)
            enc = CompressingDeltaSource(source, header, layout, codec, delta, base[1], base[2])
        else:
            layout, kept = await trio.to_thread.run_sync(measure, source, header, codec)
            enc = CompressingSource(source, header, layout, kept, codec)
        try:
            entry = await self.inner.write(stored_path, enc, expect=expect, attrs=attrs)
        except ChunkNotReproducible as exc:
            if base is None:
                raise
            log.info("%s: %s (written by another compressor version): sending the whole file", path, exc)
            return await self._write_compressed(path, stored_path, source, None, expect, attrs)
        self._remember(stored_path, entry.rev, header, layout.plain_size)
        if entry.rev is not None:
            await self._sizes.put((stored_path, entry.rev), layout.plain_size)
        return self._out(entry, path, layout.plain_size)

    async def _compressed_base(self, stored_path: str, delta: DeltaSource,
                               path: str) -> tuple[fmt.FileHeader, int, list[fmt.TableBlock]] | None:
        """The base revision's header, plaintext size and whole chunk table (16 bytes a chunk),
        if the object is still at that revision and in the compressed layout."""
        try:
            entry = await self.inner.stat(stored_path)
        except RemoteNotFound:
            return None
        if entry.rev is None or entry.rev != delta.base_rev:
            return None
        header = await self._header(stored_path, entry.rev, path)
        known = self._known(stored_path, entry.rev)
        if not header.compressed or known is None or known[1] is None:
            return None
        plain_size = known[1]
        table = await self.inner.read(stored_path, fmt.TABLE_START, fmt.chunk_area(plain_size) - fmt.TABLE_START,
                                      rev=entry.rev)
        blocks = []
        for block in range(fmt.table_blocks(plain_size)):
            start = fmt.table_block_offset(block) - fmt.TABLE_START
            size = fmt.table_block_size(fmt.table_block_entries(block, plain_size))
            blocks.append(fmt.open_table_block(header, block, plain_size, table[start:start + size], path))
        return header, plain_size, blocks

    async def _delta_base(self, stored_path: str, delta: DeltaSource,
                          path: str) -> tuple[fmt.FileHeader, int] | None:
        """The base revision's header and plaintext size, if the object is still at that revision."""
        try:
            entry = await self.inner.stat(stored_path)
        except RemoteNotFound:
            return None
        base_size = fmt.plain_size(entry.size)
        if entry.rev != delta.base_rev or base_size is None:
            return None
        return await self._header(stored_path, entry.rev, path), base_size
