"""The write-back queue: which keys to upload, when, and how many at once.

A generic scheduler. It knows nothing about files: keys are any hashable value
(inode numbers in practice) and ``upload(key)`` is an async callable given at
construction. The life of a key::

    schedule() -> QUEUED --due--> UPLOADING --ok----------------------> (forgotten)
                    ^                |--raised requeue_on (SourceChanged)-> QUEUED, now + delay
                    |                |--raised anything else-----------> QUEUED, now + backoff
                    +-- schedule() while UPLOADING: QUEUED again, now + delay, when it ends

- ``schedule`` (re)arms ``due = now + delay``: every call pushes the key back,
  so many closes of one file make one upload (coalescing). A schedule while
  the key uploads is remembered and applied when that upload ends, whatever
  its outcome. The upload itself is expected to notice the change and abort by
  raising one of ``requeue_on``: not a failure (no backoff, no ``on_failure``).
- Failures are retried after ``min(backoff_cap, backoff_base * 2**(n-1)) * J``
  seconds, ``n`` the number of consecutive failures and ``J`` uniform in
  [0.5, 1]; ``n`` resets on success. ``on_failure(key, exc)`` is called on each
  failure (for logs and status); it must not raise. A ``schedule`` of a failed
  key replaces its backoff (a new version is worth a try) but keeps ``n``.
  ``trio.Cancelled`` is never a failure: it propagates.
- ``cancel`` forgets a key; ``flush`` makes keys due now (backoff included).
- Earliest due first (ties: schedule order); at most ``concurrency`` uploads at
  once; a key is never uploaded twice at the same time (a key is either queued
  or uploading, never both).

Concurrency: everything runs in the one trio thread. The public methods other
than ``run`` and ``wait_idle`` are synchronous, never block and must be called
from that thread (from a worker thread: ``trio.from_thread.run_sync``); they
mutate the state without awaiting in between, so no lock is needed. They wake
the ``run`` task through a ``trio.Event`` that is replaced after each set -- a
``schedule`` only when its key falls due before the time ``run`` already sleeps
until (``_wake_at``): with a write-back delay every close pushes a key behind
the earliest one, and waking ``run`` for nothing costs each close a task switch
(~10 us) that the program's next request waits behind.
``run`` is the only task that starts uploads, each in its own child task of
``run``'s nursery, so cancelling ``run`` (the caller's nursery owns it; there
are no hidden workers elsewhere) cancels the uploads in flight and returns
only when they have all ended. The upload callables must leave the remote
consistent when cancelled. Times are ``trio.current_time()`` (the run's clock,
so ``trio.testing.MockClock`` drives the queue in tests).

Persistence: none. The queue lives in memory; the caller persists which keys
are dirty (metadata store) and re-``schedule``s them at startup. A key whose
upload was interrupted by cancellation is left queued, due at once, so a
``run`` started again retries it.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class FailedKey(Generic[K]):
    key: K
    attempts: int  # consecutive failed uploads
    last_error: str  # "ExceptionType: message"
    next_retry: float | None  # due time; None while a new attempt is uploading


@dataclass(frozen=True)
class QueueSnapshot(Generic[K]):
    """The queue at one instant, for status displays. Times: trio.current_time()."""

    now: float
    queued: list[tuple[K, float]]  # (key, due), earliest first; failed keys included
    uploading: list[K]
    failed: list[FailedKey[K]]

    @property
    def idle(self) -> bool:
        return not self.queued and not self.uploading


class WritebackQueue(Generic[K]):
    """Delayed, coalescing, bounded-concurrency upload queue (see module docstring).

    ``rng`` (default: a fresh ``random.Random``) supplies the backoff jitter;
    tests pass a seeded or fixed one.
    """

    def __init__(
        self,
        upload: Callable[[K], Awaitable[None]],
        *,
        delay: float,
        concurrency: int,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        requeue_on: tuple[type[BaseException], ...] = (),
        on_failure: Callable[[K, BaseException], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if not 0 < backoff_base <= backoff_cap:
            raise ValueError("need 0 < backoff_base <= backoff_cap")
        self.set_delay(delay)
        self.concurrency = concurrency
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._upload = upload
        self._requeue_on = requeue_on
        self._on_failure = on_failure
        self._rng = rng or random.Random()
        self._due: dict[K, tuple[float, int]] = {}  # queued key -> (due, seq)
        self._heap: list[tuple[float, int, K]] = []  # lazy deletion: stale unless in _due
        self._seq = itertools.count()
        self._uploading: dict[K, bool] = {}  # key -> keep (False once cancel()ed)
        self._rearm: dict[K, float] = {}  # uploading key -> delay to requeue with at end
        self._failures: dict[K, tuple[int, str]] = {}  # key -> (attempts, last error)
        self._changed = trio.Event()
        # when ``run`` wakes by itself: its next due time; -inf while the concurrency limit is
        # reached (only an ending upload can start another, and it wakes ``run``)
        self._wake_at = -math.inf
        self._running = False

    def set_delay(self, delay: float) -> None:
        """Change the default delay; applies to later ``schedule`` calls."""
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self.delay = delay

    def schedule(self, key: K, *, delay: float | None = None) -> None:
        """Upload ``key`` ``delay`` seconds from now (default ``self.delay``),
        replacing any earlier due time, including a failed key's backoff."""
        delay = self.delay if delay is None else delay
        if key in self._uploading:
            self._uploading[key], self._rearm[key] = True, delay
        else:
            self._set_due(key, trio.current_time() + delay)

    def cancel(self, key: K) -> None:
        """Forget ``key`` (e.g. file deleted). An upload in flight is not
        interrupted, but it is not rescheduled or reported as failed."""
        self._due.pop(key, None)
        self._failures.pop(key, None)
        self._rearm.pop(key, None)
        if key in self._uploading:
            self._uploading[key] = False
        self._wakeup()

    def flush(self, keys: Iterable[K] | None = None) -> None:
        """Make ``keys`` (default: every queued key, failed ones in backoff
        included) due now. A key uploading with a pending re-schedule is
        re-queued with no delay when its upload ends. Unknown keys are ignored."""
        keys = list(self._due) + list(self._rearm) if keys is None else keys
        now = trio.current_time()
        for key in keys:
            if key in self._rearm:
                self._rearm[key] = 0.0
            elif key in self._due:
                self._set_due(key, now)

    def counts(self) -> tuple[int, int, int]:
        """``(queued, uploading, failed)``, the lengths of ``snapshot()``'s lists, without
        copying or sorting anything: for what runs often (status lines, metrics, ``pending``);
        a snapshot sorts the whole queue (~0.75 s for a million keys)."""
        return len(self._due), len(self._uploading), len(self._failures)

    def snapshot(self) -> QueueSnapshot[K]:
        queued = sorted(((k, d) for k, (d, _) in self._due.items()), key=lambda kd: kd[1])
        failed = [
            FailedKey(k, n, err, self._due[k][0] if k in self._due else None)
            for k, (n, err) in self._failures.items()
        ]
        return QueueSnapshot(trio.current_time(), queued, list(self._uploading), failed)

    def is_pending(self, key: K) -> bool:
        """True while ``key`` is queued (failed ones too) or uploading."""
        return key in self._due or key in self._uploading

    async def wait_idle(self, keys: Iterable[K] | None = None) -> None:
        """Return once ``keys`` are neither queued nor uploading. Default: the
        keys pending now (later schedules are not waited for, so steady writes
        cannot starve ``sync --wait``). A failed key waiting for its retry is
        pending, and nothing drains unless ``run`` runs: wrap in a timeout."""
        wanted = list(self._due) + list(self._uploading) if keys is None else set(keys)
        while any(map(self.is_pending, wanted)):
            await self._changed.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start uploads as they fall due, forever. Use ``nursery.start(q.run)``."""
        if self._running:
            raise RuntimeError("WritebackQueue.run() is already running")
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    deadline = self._start_due(nursery)
                    self._wake_at = -math.inf if self._at_limit() else deadline
                    changed = self._changed
                    with trio.move_on_at(deadline):
                        await changed.wait()
                    self._wake_at = -math.inf  # awake: woken or not, it looks at the queue now
        finally:
            self._running = False

    def _wakeup(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _set_due(self, key: K, due: float) -> None:
        seq = next(self._seq)
        self._due[key] = (due, seq)
        heapq.heappush(self._heap, (due, seq, key))
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._due):
            self._heap = [(d, s, k) for k, (d, s) in self._due.items()]
            heapq.heapify(self._heap)
        if due < self._wake_at:  # else ``run`` looks at the queue by then anyway
            self._wakeup()

    def _start_due(self, nursery: trio.Nursery) -> float:
        """Start every due upload the limit allows; return when to look again."""
        now = trio.current_time()
        while self._heap:
            due, seq, key = self._heap[0]
            if self._due.get(key) != (due, seq):
                heapq.heappop(self._heap)  # stale entry
                continue
            if self._at_limit():
                return math.inf  # an ending upload wakes us
            if due > now:
                return due
            heapq.heappop(self._heap)
            del self._due[key]
            self._uploading[key] = True
            nursery.start_soon(self._upload_one, key, name=f"writeback upload {key!r}")
        return math.inf

    def _at_limit(self) -> bool:
        return len(self._uploading) >= self.concurrency

    def _is_requeue(self, exc: BaseException) -> bool:
        if isinstance(exc, self._requeue_on):
            return True
        if isinstance(exc, BaseExceptionGroup) and self._requeue_on:
            _, rest = exc.split(self._requeue_on)
            return rest is None
        return False

    def _backoff(self, attempts: int) -> float:
        raw = min(self.backoff_cap, self.backoff_base * 2 ** min(attempts - 1, 64))
        return raw * self._rng.uniform(0.5, 1.0)

    async def _upload_one(self, key: K) -> None:
        error: Exception | None = None
        try:
            await self._upload(key)
        except Exception as exc:
            error = exc
        except BaseException:  # trio.Cancelled (run() is cancelled), KeyboardInterrupt
            if self._uploading.pop(key):  # not cancel()ed: leave it queued, due now
                self._rearm.pop(key, None)
                self._set_due(key, trio.current_time())
            self._wakeup()  # a wait_idle for a cancel()ed key ends here: it is no longer pending
            raise
        keep, rearm = self._uploading.pop(key), self._rearm.pop(key, None)
        now = trio.current_time()
        if not keep:
            self._failures.pop(key, None)
        elif error is None or self._is_requeue(error):
            if error is None:
                self._failures.pop(key, None)  # success resets the attempt count
            if error is not None or rearm is not None:
                self._set_due(key, now + (self.delay if rearm is None else rearm))
        else:
            attempts = self._failures.get(key, (0, ""))[0] + 1
            self._failures[key] = (attempts, f"{type(error).__name__}: {error}")
            self._set_due(key, now + (self._backoff(attempts) if rearm is None else rearm))
            if self._on_failure is not None:
                self._on_failure(key, error)
        self._wakeup()
