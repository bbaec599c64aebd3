"""Retrying transient remote failures: capped, full-jitter exponential backoff.

Why full jitter: many tasks (parallel multipart parts, the upload queue) tend to
fail together when a remote throttles; sleeping a uniformly random time in
``[0, min(cap, base * 2**attempt)]`` spreads their retries instead of sending
them back in lock-step (the AWS Architecture Blog's "Exponential Backoff And
Jitter" analysis).  A server's ``Retry-After`` (``TransientRemoteError.retry_after``)
is a lower bound on the next sleep.

Retries are bounded by a total ``deadline`` (seconds, trio clock) rather than an
attempt count, so a caller knows how long a dead remote can hold it up; once the
next sleep would cross the deadline we raise ``RemoteUnavailable`` naming the
operation and the last cause (chained as ``__cause__``).  Anything that is not
a ``TransientRemoteError`` is permanent and propagates at once, and so does a
``RemoteUnavailable`` from a nested retry loop (it already waited its deadline).

Time is trio's clock, so tests drive it with ``trio.testing.MockClock``.
Cancellation simply interrupts the sleep or the attempt.
"""

from __future__ import annotations

import logging
import random
from typing import Awaitable, Callable, TypeVar

import trio

from cloudgw.errors import RemoteUnavailable, TransientRemoteError

log = logging.getLogger(__name__)

T = TypeVar("T")

_rng = random.Random()


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random = _rng) -> float:
    """Full-jitter delay before retry number ``attempt`` (1 = first retry)."""
    return rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 62))))


async def with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    what: str,
    deadline: float = 30.0,
    base: float = 0.2,
    cap: float = 5.0,
    rng: random.Random = _rng,
) -> T:
    """Await ``fn()`` until it does not raise ``TransientRemoteError``.

    ``what`` names the operation for logs and the final error
    (e.g. ``"PUT s3://bucket/key"``).  ``fn`` is called again for each attempt,
    so it must be safe to repeat (every remote call we retry is idempotent or
    conditional).
    """
    start = trio.current_time()
    attempt = 0
    while True:
        try:
            return await fn()
        except RemoteUnavailable:
            raise
        except TransientRemoteError as exc:
            attempt += 1
            delay = backoff_delay(attempt, base=base, cap=cap, rng=rng)
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            elapsed = trio.current_time() - start
            if elapsed + delay > deadline:
                raise RemoteUnavailable(
                    f"{what}: gave up after {attempt} attempt{'s' if attempt > 1 else ''}"
                    f" in {elapsed:.1f} s: {exc}"
                ) from exc
            log.info("%s: %s; retry %d in %.2f s", what, exc, attempt, delay)
            await trio.sleep(delay)
