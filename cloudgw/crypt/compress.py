"""Per-chunk compression for the compressed layout of docs/encryption.md.

One codec byte says how a chunk's payload is stored: ``RAW`` (it did not
compress), ``ZSTD`` (one zstd frame) or ``LZ4`` (one LZ4 block).  A chunk is
kept compressed only when that saves at least ``MIN_SAVING`` of it, and files
whose names say they are compressed already are not tried at all.  The choice
depends on the chunk's bytes and the file's name only -- never on the chunks
before it -- so sealing a chunk again gives the same stored bytes, which is
what lets a delta upload copy the unchanged chunks of a compressed file.

zstd (python-zstandard) and LZ4 (python-lz4) release the GIL while they work,
so worker threads compress in parallel.  Both are deterministic for a given
library version; a chunk compressed differently by another version only
stops being copyable (``remotes.crypt`` compares the chunk nonces), it is never
stored inconsistently.
"""

from __future__ import annotations

import os
import threading

import lz4.block
import zstandard

from cloudgw.errors import IntegrityError

RAW, ZSTD, LZ4 = 0, 1, 2
CODECS = {"zstd": ZSTD, "lz4": LZ4}
ZSTD_LEVEL = 3
MIN_SAVING = 16  # keep a compressed chunk only if it saves >= 1/16 (4 KiB of 64 KiB)

# already compressed: trying costs CPU and saves ~1% (benchmarks/compression_estimate.py)
_COMPRESSED_SUFFIXES = frozenset("""
    7z apk avi bz2 cab deb docm docx dotx epub flac gif gz heic heif jar jpeg jpg lz lz4 lzma m4a m4v mkv mov
    mp3 mp4 mpeg mpg odg odp ods odt ogg opus pdf png potx pptm pptx rar rpm tbz2 tgz txz webm webp whl wma
    wmv xlsm xlsx xz zip zst
""".split())


def codec_of(name: str | None) -> int:
    """The codec number of a vault's ``compress`` value (None: no compression)."""
    if name is None:
        return RAW
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown compression {name!r} (use {', '.join(CODECS)})") from None


def already_compressed(path: str) -> bool:
    """Whether ``path``'s suffix names a format that is compressed already (not worth trying)."""
    suffix = os.path.splitext(path)[1][1:].lower()
    return suffix in _COMPRESSED_SUFFIXES


_local = threading.local()  # a zstd (de)compressor serves one thread at a time: one per thread


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    pair = getattr(_local, "zstd", None)
    if pair is None:
        pair = _local.zstd = (zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False),
                              zstandard.ZstdDecompressor())
    return pair


def compress(codec: int, data: bytes) -> tuple[int, bytes]:
    """``(codec used, payload)``: ``codec``'s output if it saves at least 1/MIN_SAVING, else raw."""
    if codec == RAW or not data:
        return RAW, data
    if codec == ZSTD:
        payload = _zstd()[0].compress(data)
    elif codec == LZ4:
        payload = lz4.block.compress(data, store_size=False)
    else:
        raise ValueError(f"unknown codec {codec}")
    if len(payload) > len(data) - len(data) // MIN_SAVING:
        return RAW, data
    return codec, payload


def decompress(codec: int, payload: bytes, length: int, what: str) -> bytes:
    """The chunk's bytes; ``IntegrityError`` unless they are exactly ``length`` long."""
    try:
        if codec == RAW:
            data = payload
        elif codec == ZSTD:
            data = _unzstd(payload, length, what)
        elif codec == LZ4:
            data = lz4.block.decompress(payload, uncompressed_size=length)
        else:
            raise IntegrityError(f"{what}: unknown compression codec {codec}")
    except (zstandard.ZstdError, lz4.block.LZ4BlockError):
        raise IntegrityError(f"{what}: a compressed chunk does not decompress") from None
    if len(data) != length:
        raise IntegrityError(f"{what}: a chunk decompresses to {len(data)} bytes, not {length}")
    return data


def _unzstd(payload: bytes, length: int, what: str) -> bytes:
    """Exactly one zstd frame, decompressing to at most ``length`` bytes.  Frames that state
    their size (cloudgw writes them so) are decompressed once, bounded by that size (libzstd
    refuses a frame that makes more); a frame without one is first decompressed with
    ``length`` as the bound, then again to find where it ends."""
    stated = zstandard.get_frame_parameters(payload).content_size
    if stated not in (zstandard.CONTENTSIZE_UNKNOWN, length):
        raise IntegrityError(f"{what}: a zstd frame of {stated} bytes where {length} were expected")
    if stated == zstandard.CONTENTSIZE_UNKNOWN:
        _zstd()[1].decompress(payload, max_output_size=length)
    frame = _zstd()[1].decompressobj()
    data = frame.decompress(payload)
    if not frame.eof or frame.unused_data:
        raise IntegrityError(f"{what}: not exactly one zstd frame")
    return data
