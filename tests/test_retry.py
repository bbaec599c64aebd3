"""with_retries on a virtual clock (pytest-trio's ``autojump_clock``): sleeps are
instant, so every elapsed time below is the exact backoff the code chose."""

from __future__ import annotations

import random

import pytest
import trio

from cloudgw.errors import RemoteNotFound, RemoteUnavailable, TransientRemoteError
from cloudgw.remotes.retry import backoff_delay, with_retries


class Flaky:
    """Fails with the scripted errors in order, then returns "ok"; records call times."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(trio.current_time())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_succeeds_after_transient_failures(autojump_clock):
    fn = Flaky(TransientRemoteError("503"), TransientRemoteError("503"))
    assert await with_retries(fn, what="GET x", base=0.2, cap=5.0) == "ok"
    assert len(fn.calls) == 3
    gaps = [b - a for a, b in zip(fn.calls, fn.calls[1:])]
    # full jitter: retry n sleeps somewhere in [0, base * 2**n]
    assert 0 <= gaps[0] <= 0.4 and 0 <= gaps[1] <= 0.8


async def test_backoff_is_capped_and_bounded_by_deadline(autojump_clock):
    fn = Flaky(*[TransientRemoteError("timeout") for _ in range(1000)])
    start = trio.current_time()
    with pytest.raises(RemoteUnavailable) as info:
        await with_retries(fn, what="PUT s3://b/k", deadline=60.0, base=1.0, cap=3.0)
    elapsed = trio.current_time() - start
    gaps = [b - a for a, b in zip(fn.calls, fn.calls[1:])]
    assert max(gaps) <= 3.0
    assert elapsed <= 60.0
    assert len(fn.calls) >= 20  # it kept trying for the whole minute (mean gap 1.5 s)
    # the message names the operation and the cause; the cause is chained
    assert "PUT s3://b/k" in str(info.value) and "timeout" in str(info.value)
    assert isinstance(info.value.__cause__, TransientRemoteError)


async def test_retry_after_is_a_lower_bound(autojump_clock):
    fn = Flaky(TransientRemoteError("SlowDown", retry_after=7.0))
    start = trio.current_time()
    assert await with_retries(fn, what="x", base=0.01, cap=0.1) == "ok"
    assert trio.current_time() - start >= 7.0


async def test_retry_after_beyond_deadline_gives_up_without_sleeping(autojump_clock):
    fn = Flaky(TransientRemoteError("429", retry_after=120.0))
    start = trio.current_time()
    with pytest.raises(RemoteUnavailable, match="429"):
        await with_retries(fn, what="x", deadline=30.0)
    assert trio.current_time() - start == 0
    assert len(fn.calls) == 1


async def test_permanent_errors_are_not_retried(autojump_clock):
    fn = Flaky(RemoteNotFound("no such key"))
    with pytest.raises(RemoteNotFound):
        await with_retries(fn, what="x")
    assert len(fn.calls) == 1


async def test_nested_remote_unavailable_is_not_retried_again(autojump_clock):
    fn = Flaky(RemoteUnavailable("inner loop gave up"))
    with pytest.raises(RemoteUnavailable, match="inner loop"):
        await with_retries(fn, what="outer")
    assert len(fn.calls) == 1


async def test_cancellation_interrupts_the_backoff(autojump_clock):
    fn = Flaky(*[TransientRemoteError("503") for _ in range(1000)])
    with trio.move_on_after(2.0) as scope:
        await with_retries(fn, what="x", deadline=1000.0, base=0.5, cap=1.0)
    assert scope.cancelled_caught
    assert trio.current_time() == pytest.approx(2.0)


def test_backoff_delay_is_full_jitter():
    rng = random.Random(1)
    delays = [backoff_delay(3, base=0.5, cap=10.0, rng=rng) for _ in range(2000)]
    assert 0 <= min(delays) < 0.2 and 3.8 < max(delays) <= 4.0  # spread over [0, 0.5 * 2**3]
    assert max(backoff_delay(500, base=0.5, cap=10.0, rng=rng) for _ in range(100)) <= 10.0
