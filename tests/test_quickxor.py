"""quickXorHash against published vectors (rclone's test file, the PyPI package's README), fed
in every way a stream arrives (one call, bytes at a time, odd pieces across the 160-byte fold)."""

from __future__ import annotations

import base64
import random

import pytest

from cloudgw.remotes.quickxor import QuickXorHash, quickxor_b64

VECTORS = [  # (input, expected base64)
    (b"", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    (base64.b64decode("Sg=="), "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
    (base64.b64decode("tbQ="), "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
    (base64.b64decode("0pZP"), "0rDEEwAAAAAAAAAAAwAAAAAAAAA="),
    (base64.b64decode("2fuxhBJXtpWFe8dOfdGeHw=="), "O9tHLAghgSvYohKFyMMxnNCHaHg="),
    (base64.b64decode("T6LYJIfDh81JrAK309H2JMJTXis="), "zBTHrspn3mEcohlJdIUAbjGNaNg="),
    (base64.b64decode("jyibxJSzO6ZiZ0O1qe3tG/bvIAYssvukh9suIT5wEy1JBINVgPiqdsTW0cOpP0aUfP7mgqLfADkzI/m/GgCu"
                      "Vhr8oFLrOCoTx1/psBOWwhltCbhUx51Icm9aH8tY4Z3ccU+6BKpYQkLCy0B/A9Zc"),
     "hZfLIilSITC6N3e3tQ/iSgEzkto="),
    (b"hello world", "aCgDG9jwBhDc4Q1yawMZAAAAAAA="),
    (bytes(1 << 20), "AAAAAAAAAAAAAAAAAAAQAAAAAAA="),  # zeros: only the length term
    (bytes(range(256)) * 4, "h7xr2dbCayZCQYR9KKhlwDuT4UI="),
]


@pytest.mark.parametrize("data,expected", VECTORS, ids=[f"{len(d)}B" for d, _ in VECTORS])
def test_published_vectors(data, expected):
    assert quickxor_b64(data) == expected


@pytest.mark.parametrize("piece", [1, 7, 159, 160, 161, 333, 100_000])
def test_any_split_of_the_stream_gives_the_same_hash(piece):
    data = random.Random(piece).randbytes(250_007)
    h = QuickXorHash()
    for offset in range(0, len(data), piece):
        h.update(memoryview(data)[offset:offset + piece])
    assert h.b64() == quickxor_b64(data)


def test_one_changed_byte_changes_the_hash():
    data = bytearray(random.Random(1).randbytes(4096))
    before = quickxor_b64(bytes(data))
    data[1234] ^= 0x10
    assert quickxor_b64(bytes(data)) != before
