"""WritebackQueue on a virtual clock: every test runs with
trio.testing.MockClock(autojump_threshold=0) (pytest-trio's ``autojump_clock``),
so sleeps are instant and every time below is exact."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from cloudgw.errors import SourceChanged
from cloudgw.sync.writeback import QueueSnapshot, WritebackQueue


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


class Uploader:
    """A fake upload: records (key, start time), takes ``duration`` virtual
    seconds, then raises the next scripted outcome for the key (None = success)."""

    def __init__(self, duration: float = 0.0, outcomes: dict | None = None) -> None:
        self.duration = duration
        self.outcomes = outcomes or {}
        self.calls: list[tuple[object, float]] = []
        self.active: set = set()
        self.max_active = 0
        self.overlaps: list = []
        self.cancelled: list = []

    async def __call__(self, key) -> None:
        self.calls.append((key, trio.current_time()))
        if key in self.active:
            self.overlaps.append(key)
        self.active.add(key)
        self.max_active = max(self.max_active, len(self.active))
        try:
            await trio.sleep(self.duration)
        except trio.Cancelled:
            self.cancelled.append(key)
            raise
        finally:
            self.active.discard(key)
        script = self.outcomes.get(key)
        if script:
            exc = script.pop(0)
            if exc is not None:
                raise exc

    def times(self, key) -> list[float]:
        return [t for k, t in self.calls if k == key]


class FixedJitter:
    """Stands in for random.Random: uniform(a, b) returns a + (b - a) * factor."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return a + (b - a) * self.factor


async def started(nursery, upload, **kw) -> WritebackQueue:
    kw.setdefault("delay", 5.0)
    kw.setdefault("concurrency", 2)
    q = WritebackQueue(upload, **kw)
    await nursery.start(q.run)
    return q


async def idle(q: WritebackQueue, keys=None) -> None:
    """wait_idle with a (virtual) timeout, so a broken queue fails instead of hanging."""
    with trio.fail_after(1e6):
        await q.wait_idle(keys)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


async def test_delay_respected(clock, nursery):
    up = Uploader()
    q = await started(nursery, up, delay=5.0)
    t0 = trio.current_time()
    q.schedule(1)
    await trio.sleep(4.999)
    assert up.calls == []
    assert q.is_pending(1)
    await idle(q)
    assert up.calls == [(1, t0 + 5.0)]
    q.schedule(2, delay=0.5)  # per-call delay overrides the default
    await idle(q)
    assert up.times(2) == [t0 + 5.0 + 0.5]


async def test_repeated_schedule_coalesces_into_one_upload(clock, nursery):
    up = Uploader()
    q = await started(nursery, up, delay=5.0)
    t0 = trio.current_time()
    for _ in range(3):  # closes at t0, t0+3, t0+6: each pushes the upload back
        q.schedule(7)
        await trio.sleep(3)
    assert up.calls == []
    await idle(q)
    assert up.calls == [(7, t0 + 6 + 5.0)]


async def test_concurrency_limit_never_exceeded(clock, nursery):
    up = Uploader(duration=1.0)
    q = await started(nursery, up, delay=0.0, concurrency=3)
    t0 = trio.current_time()
    for key in range(20):
        q.schedule(key)
    await idle(q)
    assert sorted(k for k, _ in up.calls) == list(range(20))  # each exactly once
    assert up.max_active == 3
    assert trio.current_time() == pytest.approx(t0 + 7.0)  # ceil(20 / 3) rounds


async def test_earliest_due_first(clock, nursery):
    up = Uploader(duration=10.0)
    q = await started(nursery, up, concurrency=1)
    q.schedule("busy", delay=0)  # occupies the only slot until t0+10
    await trio.sleep(0.1)
    for key, delay in [("c", 3.0), ("a", 1.0), ("b", 2.0)]:
        q.schedule(key, delay=delay)
    await idle(q)
    assert [k for k, _ in up.calls] == ["busy", "a", "b", "c"]


async def test_schedule_while_uploading_gives_exactly_one_more_upload(clock, nursery):
    up = Uploader(duration=5.0)
    q = await started(nursery, up, delay=2.0, concurrency=4)
    t0 = trio.current_time()
    q.schedule(1, delay=0)
    await trio.sleep(1)
    assert up.times(1) == [t0]
    for _ in range(3):  # three closes during the upload
        q.schedule(1)
        await trio.sleep(1)
    snap = q.snapshot()
    assert snap.uploading == [1] and snap.queued == []  # not queued twice
    await idle(q)
    # the re-arm applies when the first upload ends (t0+5), with the delay
    assert up.times(1) == [t0, t0 + 5.0 + 2.0]
    assert up.overlaps == [] and up.max_active == 1


async def test_same_key_never_uploaded_concurrently(clock, nursery):
    up = Uploader(duration=3.0)
    q = await started(nursery, up, delay=0.0, concurrency=8)
    t0 = trio.current_time()
    q.schedule("k")
    for _ in range(10):
        await trio.sleep(0.5)
        q.schedule("k")
        q.flush()
    await idle(q)
    assert up.overlaps == [] and up.max_active == 1
    # back to back, never overlapping: starts at 0, 3, 6 (last schedule at t0+5)
    assert up.times("k") == [t0, t0 + 3.0, t0 + 6.0]


async def test_requeue_on_reschedules_without_backoff_or_failure(clock, nursery):
    failures = []
    group = ExceptionGroup("x", [SourceChanged("again")])
    up = Uploader(duration=1.0, outcomes={1: [SourceChanged("modified"), group, None]})
    q = await started(
        nursery, up, delay=2.0, backoff_base=100.0, requeue_on=(SourceChanged,),
        on_failure=lambda k, e: failures.append((k, e)),
    )
    t0 = trio.current_time()
    q.schedule(1, delay=0)
    await trio.sleep(1.5)
    snap = q.snapshot()
    assert snap.failed == [] and snap.queued == [(1, t0 + 1.0 + 2.0)]
    await idle(q)
    # end + delay each time, never the 50..100 s backoff
    assert up.times(1) == [t0, t0 + 3.0, t0 + 6.0]
    assert failures == []
    assert q.snapshot().failed == []


async def test_failures_back_off_exponentially_up_to_the_cap(clock, nursery):
    failures = []
    jitter = FixedJitter(1.0)  # always the top of [0.5, 1]: the nominal backoff
    up = Uploader(outcomes={"f": [OSError(f"boom {i}") for i in range(6)] + [None]})
    q = await started(
        nursery, up, backoff_base=1.0, backoff_cap=8.0, rng=jitter,
        on_failure=lambda k, e: failures.append((k, str(e))),
    )
    q.schedule("f", delay=0)
    await trio.sleep(0.5)
    (failed,) = q.snapshot().failed
    assert (failed.key, failed.attempts, failed.last_error) == ("f", 1, "OSError: boom 0")
    assert failed.next_retry == pytest.approx(up.times("f")[0] + 1.0)
    await idle(q)
    assert gaps(up.times("f")) == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert failures == [("f", f"boom {i}") for i in range(6)]
    assert set(jitter.ranges) == {(0.5, 1.0)}
    assert q.snapshot().failed == []


async def test_backoff_jitter_stays_within_half_to_full(clock, nursery):
    up = Uploader(outcomes={"f": [OSError("x")] * 8 + [None]})
    q = await started(nursery, up, backoff_base=2.0, backoff_cap=60.0, rng=random.Random(42))
    q.schedule("f", delay=0)
    await idle(q)
    nominal = [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    got = gaps(up.times("f"))
    assert len(got) == len(nominal)
    for g, n in zip(got, nominal):
        assert 0.5 * n <= g <= n
    assert len({g / n for g, n in zip(got, nominal)}) > 1  # really jittered


async def test_success_resets_attempts(clock, nursery):
    up = Uploader(outcomes={"f": [OSError("a"), OSError("b"), None, OSError("c"), None]})
    q = await started(nursery, up, backoff_base=1.0, rng=FixedJitter(1.0))
    q.schedule("f", delay=0)
    await idle(q)
    assert gaps(up.times("f")) == [1.0, 2.0]
    q.schedule("f", delay=0)
    await trio.sleep(0.1)
    assert [f.attempts for f in q.snapshot().failed] == [1]  # counted from 1 again
    await idle(q)
    assert gaps(up.times("f")[3:]) == [1.0]  # not 4.0


async def test_cancel_drops_a_queued_key(clock, nursery):
    up = Uploader()
    q = await started(nursery, up)
    q.schedule(1)
    q.schedule(2)
    q.cancel(1)
    q.cancel(99)  # unknown: no effect
    assert not q.is_pending(1)
    await idle(q)
    await trio.sleep(1000)
    assert [k for k, _ in up.calls] == [2]


async def test_cancel_during_upload_prevents_reschedule_and_failure(clock, nursery):
    failures = []
    up = Uploader(duration=5.0, outcomes={1: [OSError("gone")]})
    q = await started(nursery, up, delay=1.0, on_failure=lambda k, e: failures.append(k))
    q.schedule(1, delay=0)
    await trio.sleep(1)
    q.schedule(1)  # modified during the upload...
    q.cancel(1)  # ...then deleted
    assert q.snapshot().uploading == [1]  # the upload in flight is not interrupted
    await idle(q)
    await trio.sleep(1000)
    assert len(up.calls) == 1 and up.cancelled == []
    assert failures == [] and q.snapshot().failed == []


async def test_flush_makes_keys_due_now_including_failed(clock, nursery):
    up = Uploader(outcomes={"bad": [OSError("down"), None]})
    q = await started(nursery, up, delay=100.0, backoff_base=50.0, rng=FixedJitter(1.0))
    t0 = trio.current_time()
    q.schedule("bad", delay=0)
    q.schedule("a")
    q.schedule("b")
    await trio.sleep(10)
    assert [f.next_retry for f in q.snapshot().failed] == [t0 + 50.0]
    q.flush(["a"])
    await trio.sleep(1)
    assert up.times("a") == [t0 + 10] and up.times("b") == [] and len(up.times("bad")) == 1
    q.flush()
    await idle(q)
    assert up.times("b") == [t0 + 11] and up.times("bad") == [t0, t0 + 11]
    assert trio.current_time() == t0 + 11


async def test_flush_while_uploading_drops_the_rearm_delay(clock, nursery):
    up = Uploader(duration=4.0)
    q = await started(nursery, up, delay=30.0)
    t0 = trio.current_time()
    q.schedule(1, delay=0)
    await trio.sleep(1)
    q.schedule(1)
    q.flush()
    await idle(q)
    assert up.times(1) == [t0, t0 + 4.0]


async def test_wait_idle_waits_while_pending(clock, nursery):
    up = Uploader(duration=2.0, outcomes={"f": [OSError("x"), None]})
    q = await started(nursery, up, delay=5.0, backoff_base=10.0, rng=FixedJitter(1.0))
    t0 = trio.current_time()
    await idle(q)  # empty queue: returns at once
    assert trio.current_time() == t0
    q.schedule("f")
    q.schedule("g")
    done = {}

    async def waiter(name, keys):
        await idle(q, keys)
        done[name] = trio.current_time()

    async with trio.open_nursery() as waiters:
        waiters.start_soon(waiter, "all", None)
        waiters.start_soon(waiter, "g", ["g"])
        waiters.start_soon(waiter, "other", ["nope"])
    # g: due 5, uploads 5..7. f: fails at 7, retried at 17 (backoff 10), done at 19
    assert done == {"other": t0, "g": t0 + 7.0, "all": t0 + 19.0}
    assert up.times("f") == [t0 + 5.0, t0 + 17.0]


async def test_wait_idle_default_is_the_keys_pending_when_called(clock, nursery):
    up = Uploader()
    q = await started(nursery, up, delay=5.0)
    t0 = trio.current_time()
    q.schedule("a")

    async def writer():
        await trio.sleep(3)
        q.schedule("b", delay=100.0)  # scheduled after the wait began

    nursery.start_soon(writer)
    await idle(q)
    assert trio.current_time() == t0 + 5.0 and q.is_pending("b")


async def test_wait_idle_counts_a_key_being_uploaded(clock, nursery):
    up = Uploader(duration=10.0)
    q = await started(nursery, up, concurrency=2)
    t0 = trio.current_time()
    q.schedule("a", delay=0)
    await trio.sleep(1)
    assert q.snapshot().queued == [] and q.is_pending("a")

    async def other_activity():
        await trio.sleep(1)
        q.schedule("b", delay=0)  # wakes every waiter while "a" still uploads

    nursery.start_soon(other_activity)
    await idle(q, ["a"])
    assert trio.current_time() == t0 + 10.0


async def test_schedule_during_a_failing_upload_overrides_backoff(clock, nursery):
    failures = []
    up = Uploader(duration=3.0, outcomes={1: [OSError("x"), None]})
    q = await started(
        nursery, up, delay=2.0, backoff_base=50.0, rng=FixedJitter(1.0),
        on_failure=lambda k, e: failures.append(k),
    )
    t0 = trio.current_time()
    q.schedule(1, delay=0)
    await trio.sleep(1)
    q.schedule(1)  # a newer version exists: try it after the delay, not the backoff
    await trio.sleep(2.5)
    (f,) = q.snapshot().failed
    assert failures == [1] and (f.attempts, f.next_retry) == (1, t0 + 3.0 + 2.0)
    await idle(q)
    assert up.times(1) == [t0, t0 + 5.0]


async def test_schedule_of_a_failed_key_replaces_backoff_keeps_attempts(clock, nursery):
    up = Uploader(outcomes={1: [OSError("a"), OSError("b"), None]})
    q = await started(nursery, up, delay=2.0, backoff_base=50.0, rng=FixedJitter(1.0))
    t0 = trio.current_time()
    q.schedule(1, delay=0)
    await trio.sleep(10)
    assert [f.next_retry for f in q.snapshot().failed] == [t0 + 50.0]
    q.schedule(1)  # rewritten: retry after the delay, not the remaining backoff
    await trio.sleep(2.5)
    (f,) = q.snapshot().failed
    assert up.times(1) == [t0, t0 + 12.0]
    assert (f.attempts, f.next_retry) == (2, t0 + 12.0 + 100.0)  # n kept: 50 * 2
    await idle(q)


async def test_snapshot_contents(clock, nursery):
    up = Uploader(duration=1.0, outcomes={"bad": [RuntimeError("no route")]})
    q = await started(
        nursery, up, delay=5.0, concurrency=1, backoff_base=20.0, rng=FixedJitter(1.0)
    )
    t0 = trio.current_time()
    q.schedule("bad", delay=0)
    await trio.sleep(2)  # bad failed at t0+1, retry at t0+21
    up.duration = 100.0
    q.schedule("up", delay=0)
    q.schedule("later", delay=9.0)
    await trio.sleep(0.5)
    snap = q.snapshot()
    assert isinstance(snap, QueueSnapshot)
    assert snap.now == t0 + 2.5
    assert snap.uploading == ["up"]
    assert snap.queued == [("later", t0 + 11.0), ("bad", t0 + 21.0)]
    (f,) = snap.failed
    assert (f.key, f.attempts, f.last_error, f.next_retry) == (
        "bad", 1, "RuntimeError: no route", t0 + 21.0)
    assert not snap.idle


async def test_cancelling_run_cancels_uploads_and_leaves_no_task(clock):
    def tasks() -> set:
        out, todo = set(), [trio.lowlevel.current_root_task()]
        while todo:
            task = todo.pop()
            out.add(task)
            for n in task.child_nurseries:
                todo.extend(n.child_tasks)
        return out

    before = tasks()
    failures = []
    up = Uploader(duration=1e9)
    q = WritebackQueue(up, delay=0.0, concurrency=2, on_failure=lambda k, e: failures.append(k))
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(q.run)
            with pytest.raises(RuntimeError):
                await nursery.start(q.run)  # one runner per queue
            for key in (1, 2, 3):
                q.schedule(key)
            await trio.sleep(10)
            assert len(tasks() - before) == 3  # run() and its two uploads
            scope.cancel()
    assert tasks() == before
    assert sorted(up.cancelled) == [1, 2] and failures == []
    # interrupted uploads stay queued (due at once), so a new run() retries them
    snap = q.snapshot()
    assert sorted(k for k, _ in snap.queued) == [1, 2, 3] and snap.uploading == []
    up.duration = 0.0
    async with trio.open_nursery() as nursery:
        await nursery.start(q.run)
        await idle(q)
        nursery.cancel_scope.cancel()
    keys = [k for k, _ in up.calls]
    assert sorted(keys[:2]) == [1, 2] and sorted(keys[2:]) == [1, 2, 3]


async def test_counts_are_the_snapshot_lengths_without_taking_a_snapshot(clock, nursery, monkeypatch):
    """``counts`` is what the status line, metrics and ``pending`` read every few seconds:
    the same numbers as a snapshot, which sorts the whole queue, but without one."""
    up = Uploader(duration=3.0, outcomes={"bad": [OSError("boom"), None]})
    q = await started(nursery, up, delay=10.0, concurrency=2, backoff_base=100.0, backoff_cap=100.0)
    assert q.counts() == (0, 0, 0)
    q.schedule("busy", delay=0)
    q.schedule("bad", delay=0)
    q.schedule("later")
    await trio.sleep(1)  # busy and bad uploading, later queued
    assert q.counts() == (1, 2, 0)
    await trio.sleep(3)  # bad failed (retry in >= 50 s, still queued), busy done
    snap = q.snapshot()
    monkeypatch.setattr(q, "snapshot", lambda: pytest.fail("counts() took a snapshot"))
    assert q.counts() == (len(snap.queued), len(snap.uploading), len(snap.failed)) == (2, 0, 1)


class RunWakeups(trio.abc.Instrument):
    """Counts how often the queue's ``run`` task is scheduled to run."""

    def __init__(self) -> None:
        self.count = 0

    def task_scheduled(self, task) -> None:
        if task.name.endswith("WritebackQueue.run"):
            self.count += 1


async def test_a_close_behind_the_earliest_due_key_does_not_wake_run_and_an_earlier_one_does(clock, nursery):
    """Each close schedules its file; waking ``run`` for a key due after the one it already
    sleeps until was a task switch per close that the program's next request waited behind."""
    up = Uploader()
    q = await started(nursery, up, delay=5.0)
    t0 = trio.current_time()
    q.schedule("first")
    await trio.sleep(0.01)  # run sleeps until t0 + 5
    wakeups = RunWakeups()
    trio.lowlevel.add_instrument(wakeups)
    try:
        for key in range(100):  # a copy of 100 files, one close every 10 ms
            q.schedule(key)
            await trio.sleep(0.01)
        assert wakeups.count == 0
        q.schedule("urgent", delay=0.1)  # due before everything queued: run must wake for it
        await trio.sleep(0)
        assert wakeups.count == 1
    finally:
        trio.lowlevel.remove_instrument(wakeups)
    await idle(q)
    assert up.times("urgent") == [pytest.approx(t0 + 0.01 + 1.0 + 0.1)]  # (sums of 0.01: not exact)
    assert up.times("first") == [pytest.approx(t0 + 5.0)]
    assert [up.times(k) for k in (0, 99)] == [[pytest.approx(t0 + 0.01 + 5.0)], [pytest.approx(t0 + 0.01 + 0.99 + 5.0)]]


async def test_a_wait_for_a_cancelled_key_ends_when_run_is_cancelled_during_its_upload(clock, nursery):
    """cancel() of a key being uploaded, a wait_idle for it, then run() cancelled (an unmount):
    the interrupted upload is the key's end, and the waiter must learn it (it waited forever)."""
    up = Uploader(duration=1e9)
    q = WritebackQueue(up, delay=0.0, concurrency=1)
    ended = trio.Event()

    async def wait_for_key() -> None:
        await idle(q, ["gone"])
        ended.set()

    with trio.CancelScope() as run_scope:
        async with trio.open_nursery() as inner:
            await inner.start(q.run)
            q.schedule("gone")
            await trio.sleep(1)
            assert q.snapshot().uploading == ["gone"]
            q.cancel("gone")  # the file was deleted while its upload ran
            nursery.start_soon(wait_for_key)
            await trio.sleep(1)
            assert not ended.is_set()  # the upload still runs
            run_scope.cancel()
    with trio.fail_after(1):
        await ended.wait()
    assert not q.is_pending("gone")
