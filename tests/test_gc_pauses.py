"""The garbage collector's pause histogram and the startup freeze (``cloudgw.gc_pauses``).

Through the mount: ``tests/mount/test_metrics.py``.  The freeze runs in a child process:
freezing the test runner's own heap would change every later test's collections.
"""

from __future__ import annotations

import gc
import subprocess
import sys

from cloudgw import gc_pauses
from cloudgw.gc_pauses import PauseTimer

BUCKETS = (0.001, 0.005, 0.01, float("inf"))


def test_a_pause_lands_in_the_first_bucket_that_holds_it_and_counts_are_cumulative(monkeypatch):
    clock = iter([10.0, 10.003, 20.0, 20.5, 30.0, 30.0005])
    monkeypatch.setattr(gc_pauses.time, "perf_counter", lambda: next(clock))
    timer = PauseTimer(BUCKETS)
    for generation in (2, 2, 0):
        timer._callback("start", {"generation": generation})
        timer._callback("stop", {"generation": generation})
    buckets, total = timer.histogram(2)
    assert buckets == [(0.001, 0), (0.005, 1), (0.01, 1), (float("inf"), 2)]
    assert abs(total - 0.503) < 1e-9
    young_buckets, young_total = timer.histogram(0)
    assert young_buckets == [(0.001, 1), (0.005, 1), (0.01, 1), (float("inf"), 1)]
    assert abs(young_total - 0.0005) < 1e-9
    assert timer.histogram(1) == ([(b, 0) for b in BUCKETS], 0.0)


def test_real_collections_are_timed_only_while_installed():
    timer = PauseTimer(BUCKETS)
    timer.install()
    try:
        gc.collect(0)
        gc.collect()
    finally:
        timer.remove()
    young, full = timer.histogram(0)[0][-1][1], timer.histogram(2)[0][-1][1]
    assert young >= 1 and full >= 1 and timer.histogram(2)[1] > 0
    gc.collect()
    assert timer.histogram(2)[0][-1][1] == full
    timer.remove()  # twice: nothing to remove, no error


FREEZE = """
import gc, weakref
import trio, pyfuse3, cloudgw.app
from cloudgw.gc_pauses import freeze_startup_heap

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a
gone = weakref.ref(a)
del a, b  # a reference cycle: only the collector frees it
frozen = freeze_startup_heap()
assert gone() is None, "the collection before the freeze missed garbage"
assert frozen == gc.get_freeze_count() > 10_000, frozen
print(frozen)
"""


def test_the_freeze_collects_first_then_exempts_the_startup_heap():
    done = subprocess.run([sys.executable, "-c", FREEZE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10_000
