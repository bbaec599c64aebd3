"""A cold sequential read of a large file on S3 is served by few, long, streamed GETs.

Through the real mount, on moto and on Swift's s3api, with every request the daemon
sends counted by a TCP proxy.  Read-ahead grows while the reader stays sequential;
once the window is full it is topped up a whole run (32 MiB) at a time, each run one
ranged GET whose body lands block by block as it streams in.  One-block GETs cost a
request round trip per MiB (and moto reads the whole object for every range).
"""

from __future__ import annotations

import hashlib
import os

import pytest

pytestmark = pytest.mark.mount

MiB = 1 << 20
SIZE = 160 * MiB + 12345  # a tail block shorter than the others


def test_a_cold_sequential_read_is_a_few_streamed_gets(counted):
    gw, backend, proxy = counted
    data = os.urandom(SIZE)
    backend.view.put("big.bin", data)
    gw.mount()

    def gets_of_the_file() -> int:
        return sum("/big.bin" in line for line in proxy.gets)

    digest = hashlib.sha256()
    with open(gw.mnt / "big.bin", "rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    gets = gets_of_the_file()

    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    # the window's ramp-up (2, 4, ... 64 blocks) takes ~8 GETs, then one per 32 MiB
    assert gets <= 16, f"{gets} GETs for a {SIZE >> 20} MiB sequential read"
    # and the cache now holds it: a second read sends nothing
    with open(gw.mnt / "big.bin", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest.hexdigest()
    assert gets_of_the_file() == gets
