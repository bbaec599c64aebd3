"""``HeapTrimmer`` (``cloudgw.heap_trim``): freed heap memory goes back to the system.

The decision on a virtual clock (trio's ``MockClock``), and the effect with the real glibc
in a separate process: a burst of small blocks is not trimmed while in use, and once most
of it is freed (every 64th block kept, so nothing is at an arena's top for glibc to give
back by itself) the next look trims and the resident set falls."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import trio
import trio.testing

from cloudgw.heap_trim import HeapTrimmer


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


async def test_it_trims_when_resident_memory_not_in_use_grew_by_the_threshold(clock, nursery):
    unused = [10 << 20]  # resident bytes glibc is not handing out
    trims: list[float] = []

    def trim() -> None:
        trims.append(trio.current_time())
        unused[0] = 12 << 20  # what the trim left

    async def inline(fn):  # no worker thread: the virtual clock must not jump while one runs
        return fn()

    trimmer = HeapTrimmer(interval=60, threshold=16 << 20, unused=lambda: unused[0], trim=trim, in_thread=inline)
    await nursery.start(trimmer.run)
    start = trio.current_time()
    unused[0] += 10 << 20
    await trio.sleep(150)
    assert trims == []  # 10 MiB more: not worth a trim
    unused[0] += 30 << 20  # a burst was freed
    await trio.sleep(60)
    assert trims == [start + 180]  # at the next look, once
    unused[0] += 10 << 20  # 10 MiB above what the trim left: not yet
    await trio.sleep(600)
    assert trimmer.trims == 1
    unused[0] += 10 << 20  # 20 MiB above it
    await trio.sleep(60)
    assert trimmer.trims == 2


async def test_without_glibc_or_proc_it_does_nothing(clock, nursery):
    no_proc = HeapTrimmer(interval=1, threshold=0, unused=lambda: None, trim=lambda: pytest.fail("trimmed"))
    no_glibc = HeapTrimmer(interval=1, threshold=0, unused=lambda: 1 << 30)
    no_glibc._trim = None
    for trimmer in (no_proc, no_glibc):
        await nursery.start(trimmer.run)
    await trio.sleep(10)
    assert no_proc.trims == no_glibc.trims == 0


BURST = textwrap.dedent("""
    import ctypes, trio
    from cloudgw.heap_stats import heap_stats
    from cloudgw.heap_trim import HeapTrimmer
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    trimmer = HeapTrimmer(threshold=16 << 20)
    trimmer.reset_baseline()  # what run() does at the start
    blocks = [libc.malloc(1000) for _ in range(64_000)]  # a burst: ~64 MB of small blocks, from the arena
    for b in blocks:
        ctypes.memset(b, 1, 1000)  # resident
    during = trio.run(trimmer.trim_if_worth_it)  # all in use: nothing to give back
    for i, b in enumerate(blocks):
        if i % 64:
            libc.free(b)  # every 64th block stays: the arena cannot shrink from its top
    before = heap_stats()["rss_kib"]
    after_burst = trio.run(trimmer.trim_if_worth_it)
    print(during, after_burst, before, heap_stats()["rss_kib"])
""")


def test_a_burst_is_trimmed_once_freed_and_not_while_in_use():
    out = subprocess.run([sys.executable, "-c", BURST], capture_output=True, text=True, check=True,
                         env={"MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin"})
    during, after_burst, before, after = out.stdout.split()
    assert (during, after_burst) == ("False", "True"), out.stdout
    assert int(before) > 60_000, out.stdout  # KiB: the ~64 MB were resident
    assert int(after) < int(before) - 40_000, out.stdout  # most of the freed ~63 MB went back
