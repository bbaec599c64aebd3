"""``HeapTrimmer`` (``cloudgw.heap_trim``): freed heap memory goes back to the system.

The decision on a virtual clock (trio's ``MockClock``), and the effect with the real glibc
in a separate process: a fragmented heap (most small blocks freed, every 64th kept, so
nothing is at an arena's top to give back) leaves the resident set high until a trim."""

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


async def test_it_trims_when_the_resident_set_grew_by_the_threshold_and_not_otherwise(clock, nursery):
    rss = [100 << 20]
    trims: list[float] = []

    def trim() -> None:
        trims.append(trio.current_time())
        rss[0] -= 20 << 20  # what the trim gave back

    async def inline(fn):  # no worker thread: the virtual clock must not jump while one runs
        return fn()

    trimmer = HeapTrimmer(interval=60, threshold=16 << 20, rss=lambda: rss[0], trim=trim, in_thread=inline)
    await nursery.start(trimmer.run)
    start = trio.current_time()
    rss[0] += 10 << 20
    await trio.sleep(150)
    assert trims == []  # grown by 10 MiB: not worth a trim
    rss[0] += 30 << 20  # a burst: 40 MiB above the start
    await trio.sleep(60)
    assert trims == [start + 180]  # at the next look, once
    rss[0] += 10 << 20  # 10 MiB above what the trim left: not yet
    await trio.sleep(600)
    assert trimmer.trims == 1
    rss[0] += 10 << 20  # 20 MiB above it
    await trio.sleep(60)
    assert trimmer.trims == 2


async def test_without_glibc_or_proc_it_does_nothing(clock, nursery):
    no_proc = HeapTrimmer(interval=1, threshold=0, rss=lambda: None, trim=lambda: pytest.fail("trimmed"))
    no_glibc = HeapTrimmer(interval=1, threshold=0, rss=lambda: 1 << 30)
    no_glibc._trim = None
    for trimmer in (no_proc, no_glibc):
        await nursery.start(trimmer.run)
    await trio.sleep(10)
    assert no_proc.trims == no_glibc.trims == 0


FRAGMENTED_HEAP = textwrap.dedent("""
    import ctypes, trio
    from cloudgw.heap_stats import heap_stats
    from cloudgw.heap_trim import HeapTrimmer
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(1000) for _ in range(200_000)]  # ~200 MB of small blocks, from the arena
    for b in blocks:
        ctypes.memset(b, 1, 1000)  # resident
    for i, b in enumerate(blocks):
        if i % 64:
            libc.free(b)  # every 64th block stays: the arena cannot shrink from its top
    before = heap_stats()["rss_kib"]
    trimmer = HeapTrimmer(threshold=16 << 20)  # no baseline yet (run() sets it): the first look trims
    trimmed = trio.run(trimmer.trim_if_worth_it)
    print(before, heap_stats()["rss_kib"], trimmed)
""")


def test_a_trim_gives_a_fragmented_heaps_free_memory_back():
    out = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP], capture_output=True, text=True, check=True,
                         env={"MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin"})
    before, after, trimmed = out.stdout.split()
    assert trimmed == "True"
    assert int(before) > 150_000  # KiB: the ~200 MB were resident
    assert int(after) < int(before) - 100_000, out.stdout  # most of the freed ~194 MB went back
