"""quickXorHash, the content hash OneDrive and SharePoint keep for every file.

Microsoft's definition (learn.microsoft.com/onedrive/developer/code-snippets/
quickxorhash): byte ``i`` of the stream is XORed into a 160-bit value after a
left rotation by ``11 * i mod 160`` bits; the value is written little-endian (20
bytes) and the stream's length, as a little-endian 64-bit integer, is XORed
into its last 8 bytes; the result travels base64-encoded.

Rotations repeat every 160 bytes, so the stream is first folded into one
160-byte row (XOR of its 160-byte slices, done on Python integers: ~200 MB/s)
and only that row is rotated, once, in ``digest``.  No maintained package
exists (PyPI's ``quickxorhash`` is a C source distribution last released in
2022), hence this one, checked against the published vectors in tests.
"""

from __future__ import annotations

import base64

WIDTH = 160  # bits in the hash; also the period, in bytes, of the rotations
SHIFT = 11
_MASK = (1 << WIDTH) - 1


class QuickXorHash:
    """``update`` with the bytes in order, then ``digest`` / ``b64``; like ``hashlib``'s objects."""

    def __init__(self) -> None:
        self._row = 0  # the stream so far, folded into 160 bytes (as a little-endian integer)
        self._tail = b""  # bytes past the last whole 160-byte slice
        self._length = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._length += len(view)
        if self._tail:
            take = min(WIDTH - len(self._tail), len(view))
            self._tail += bytes(view[:take])
            view = view[take:]
            if len(self._tail) < WIDTH:
                return
            self._row ^= int.from_bytes(self._tail, "little")
            self._tail = b""
        whole = len(view) - len(view) % WIDTH
        row = self._row
        for offset in range(0, whole, WIDTH):
            row ^= int.from_bytes(view[offset:offset + WIDTH], "little")
        self._row = row
        self._tail = bytes(view[whole:])

    def copy(self) -> QuickXorHash:
        """A hash of the same bytes so far that goes on independently (as ``hashlib``'s ``copy``)."""
        twin = QuickXorHash()
        twin._row, twin._tail, twin._length = self._row, self._tail, self._length
        return twin

    def hexdigest(self) -> str:
        return self.digest().hex()

    def digest(self) -> bytes:
        row = (self._row ^ int.from_bytes(self._tail, "little")).to_bytes(WIDTH, "little")
        value = 0
        for index, byte in enumerate(row):
            if byte:
                shifted = byte << (index * SHIFT % WIDTH)
                value ^= (shifted | shifted >> WIDTH) & _MASK
        out = bytearray(value.to_bytes(WIDTH // 8, "little"))
        for k, byte in enumerate(self._length.to_bytes(8, "little")):
            out[WIDTH // 8 - 8 + k] ^= byte
        return bytes(out)

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode()


def quickxor_b64(data: bytes) -> str:
    """The base64 quickXorHash of ``data`` (what Graph returns in ``file.hashes.quickXorHash``)."""
    h = QuickXorHash()
    h.update(data)
    return h.b64()
