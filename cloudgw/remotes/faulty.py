"""A fault-injecting wrapper around any remote, for reliability tests.

``FaultyRemote(inner, plan)`` implements the whole ``Remote`` contract by
delegating to ``inner``; before, after or instead of each call it injects what
a ``FaultPlan`` decides.  Every fault is what a real remote client would let
through (``cloudgw.errors`` only, never a bare ``OSError``):

    ERROR       a 5xx: ``TransientRemoteError``, the inner call is not made
    THROTTLE    429/503 SlowDown: ``TransientRemoteError(retry_after=rule.retry_after)``
    TIMEOUT     ``trio.sleep(rule.seconds)``, then ``TransientRemoteError`` (no inner call)
    HANG        like TIMEOUT with a long ``rule.seconds`` (``math.inf``: until cancelled),
                i.e. longer than the caller's deadline
    SLOW        a slow link: sleep ``rule.seconds`` (latency) + ``bytes / plan.bytes_per_second``,
                then the real call
    LOST_REPLY  the inner call is made and succeeds, then ``TransientRemoteError``
                (response lost): the caller cannot know it happened
    LATE_REPLY  the inner call is made, its result returned ``rule.seconds`` later (the
                change is visible to everyone else before the caller hears of it)
    RESET       write: the inner write runs on a source that dies after a random
                prefix (the inner remote aborts: the old object stays, as the
                contract demands); list: entries, then the error mid-listing;
                other calls: like ERROR
    TRUNCATE    read: fewer bytes than asked although not at the end of file.  This
                breaks the contract ("short only at end of file") the way a
                network that closes early does; the wrapper models a client that
                does NOT notice, so the gateway must (``sync.fetcher``)

A ``FaultPlan`` holds ``Rule``s, tried in order for each call; the first that
matches (operation, path pattern, n-th matching call, time window, its own
``active`` switch, ``limit``) and wins its ``probability`` draw (the plan's
seeded ``random.Random``) is injected.  ``plan.enabled`` switches everything.
``plan.injected`` counts ``(op, fault)`` pairs and ``plan.calls`` every call.

``retry=True`` wraps each call in ``cloudgw.remotes.retry.with_retries`` (fault
decided again per attempt): injected transient faults are then absorbed like a
real remote's internal retries do, or end in ``RemoteUnavailable`` when they
outlast ``retry_deadline``.  ``retry=False`` lets every fault reach the caller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import fnmatch
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Collection, Iterable, TypeVar

import trio

from cloudgw.errors import TransientRemoteError
from cloudgw.remotes.base import (DeltaSource, Expect, FileAttrs, Remote, RemoteEntry, UploadSource, check_path,
                                  forward_set_attrs)
from cloudgw.remotes.base import link as link_in, same_version as same_version_in
from cloudgw.remotes.retry import with_retries

T = TypeVar("T")
log = logging.getLogger(__name__)

OPS = ("check", "stat", "list", "read", "write", "mkdir", "rmdir", "delete", "rename", "copy",
       "symlink", "readlink", "abort_incomplete_uploads", "set_attrs", "link")
HANG_FOREVER = math.inf  # Rule(Fault.HANG, seconds=HANG_FOREVER): hangs until cancelled
IDEMPOTENT = (  # safe to repeat after a lost reply (mkdir: unless the directory moved meanwhile)
    "check", "stat", "list", "read", "mkdir", "rmdir", "delete", "readlink", "abort_incomplete_uploads")


class Fault(enum.Enum):
    ERROR = "error"
    THROTTLE = "throttle"
    TIMEOUT = "timeout"
    HANG = "hang"
    SLOW = "slow"
    LOST_REPLY = "lost_reply"
    LATE_REPLY = "late_reply"
    RESET = "reset"
    TRUNCATE = "truncate"


# where a fault means something; elsewhere a rule naming it never matches
_ONLY = {Fault.TRUNCATE: {"read"}}


@dataclass
class Rule:
    """When to inject ``fault``.  ``ops``/``path`` (an fnmatch pattern matched against
    every path of the call) filter calls; ``nth`` picks the n-th filtered call (1-based,
    counted while the plan is enabled; several with a tuple); ``window`` is (t0, t1),
    seconds on the trio clock since the plan's first call; ``limit`` caps the
    injections; ``active`` is the rule's own switch (flip it from the test)."""

    fault: Fault
    ops: Iterable[str] | str | None = None
    probability: float = 1.0
    path: str | None = None
    nth: int | Iterable[int] | None = None
    window: tuple[float, float] | None = None
    limit: int | None = None
    active: bool = True
    seconds: float = 0.05  # TIMEOUT / HANG sleep, SLOW / LATE_REPLY latency
    retry_after: float | None = 0.05  # THROTTLE
    seen: int = 0  # calls that passed the filters
    fired: int = 0  # injections

    def __post_init__(self) -> None:
        ops = {self.ops} if isinstance(self.ops, str) else set(self.ops or OPS)
        unknown = ops - set(OPS)
        assert not unknown, f"unknown operations {unknown}"
        self.ops = frozenset(ops & _ONLY.get(self.fault, ops))
        self.nth = {self.nth} if isinstance(self.nth, int) else (set(self.nth) if self.nth is not None else None)

    def matches(self, op: str, paths: tuple[str, ...], now: float) -> bool:
        if not self.active or op not in self.ops:
            return False
        if self.path is not None and not any(fnmatch.fnmatchcase(p, self.path) for p in paths):
            return False
        self.seen += 1
        if self.nth is not None and self.seen not in self.nth:
            return False
        if self.window is not None and not self.window[0] <= now < self.window[1]:
            return False
        return self.limit is None or self.fired < self.limit


class FaultPlan:
    """What to inject, when; counts what was injected (see the module docstring)."""

    def __init__(self, rules: Iterable[Rule] = (), *, seed: int = 0, retry: bool = False,
                 retry_deadline: float = 2.0, retry_base: float = 0.01, retry_cap: float = 0.1,
                 bytes_per_second: float = 50e6, trace: bool = False) -> None:
        self.rules = list(rules)
        self.rng = random.Random(seed)
        self.retry, self.retry_deadline, self.retry_base, self.retry_cap = retry, retry_deadline, retry_base, retry_cap
        self.bytes_per_second = bytes_per_second
        self.enabled = True
        self.injected: Counter[tuple[str, Fault]] = Counter()
        self.calls: Counter[str] = Counter()
        self.t0: float | None = None  # trio time of the first call: windows and the trace count from it
        self.trace: list[str] | None = [] if trace else None  # every call and its outcome, for debugging

    @classmethod
    def random(cls, rate: float, faults: Iterable[Fault], *, ops: Iterable[str] | None = None, **kwargs) -> FaultPlan:
        """Each call fails with probability ``rate``, the fault drawn evenly from ``faults``."""
        faults = list(faults)
        rules, left = [], 1.0
        for f in faults:  # conditional probabilities, so that each fault gets rate/len overall
            share = rate / len(faults)
            rules.append(Rule(f, ops=ops, probability=min(1.0, share / left)))
            left -= share
        return cls(rules, **kwargs)

    @classmethod
    def from_spec(cls, spec: str) -> FaultPlan:
        """A plan from ``key=value;...`` text, for the daemon's test hook (``CLOUDGW_FAULTS``):

        ``rate`` (0.2), ``faults`` (comma list of ``Fault`` values; default all but HANG),
        ``ops`` (comma list; default all), ``seed`` (0), ``for`` (seconds from the first
        call during which faults are injected; default forever), ``retry`` (1: each call
        retried like a real client does, for up to ``deadline`` seconds; 0: faults reach
        the gateway), ``deadline`` (5), ``seconds`` (0.2: TIMEOUT/SLOW/LATE_REPLY delay).
        Raises ``ValueError`` with a one-line message on bad text."""
        fields: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in spec.split(";"))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"fault spec item {item!r} is not key=value")
            fields[key.strip()] = value.strip()
        unknown = set(fields) - {"rate", "faults", "ops", "seed", "for", "retry", "deadline", "seconds"}
        if unknown:
            raise ValueError(f"unknown fault spec keys: {', '.join(sorted(unknown))}")
        faults = [Fault(f) for f in fields["faults"].split(",")] if "faults" in fields else [
            f for f in Fault if f is not Fault.HANG]
        ops = fields["ops"].split(",") if "ops" in fields else None
        window = (0.0, float(fields["for"])) if "for" in fields else None
        plan = cls.random(float(fields.get("rate", 0.2)), faults, ops=ops, seed=int(fields.get("seed", 0)),
                          retry=fields.get("retry", "1") == "1", retry_deadline=float(fields.get("deadline", 5)))
        for rule in plan.rules:
            rule.window, rule.seconds = window, float(fields.get("seconds", 0.2))
        return plan

    def add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def on(self) -> None:
        self.enabled = True

    def off(self) -> None:
        self.enabled = False

    def total(self, fault: Fault | None = None) -> int:
        return sum(n for (_, f), n in self.injected.items() if fault is None or f is fault)

    def report(self) -> str:
        by_fault = Counter()
        for (_, f), n in self.injected.items():
            by_fault[f.value] += n
        return f"{sum(self.calls.values())} calls, {self.total()} faults injected: {dict(sorted(by_fault.items()))}"

    def note(self, op: str, paths: tuple[str, ...], rule: Rule | None, outcome: str) -> None:
        if self.trace is not None:
            fault = f" [{rule.fault.value}]" if rule is not None else ""
            self.trace.append(f"{trio.current_time() - (self.t0 or 0):8.3f} {op} {' '.join(paths)}{fault} -> {outcome}")

    def choose(self, op: str, paths: tuple[str, ...]) -> Rule | None:
        now = trio.current_time()
        if self.t0 is None:
            self.t0 = now
        self.calls[op] += 1
        if not self.enabled:
            return None
        for rule in self.rules:
            if rule.matches(op, paths, now - self.t0) and self.rng.random() < rule.probability:
                rule.fired += 1
                self.injected[(op, rule.fault)] += 1
                return rule
        return None


class _ResetSource:
    """The upload source as the dying connection sees it: reading past ``cut`` fails."""

    class Reset(Exception):
        """Not a RemoteError, so no retry loop inside the inner remote swallows it."""

    def __init__(self, source: UploadSource, cut: int) -> None:
        self._source, self._cut, self.size, self.tripped = source, cut, source.size, False

    def read(self, offset: int, length: int) -> bytes:
        if offset + length > self._cut:
            self.tripped = True
            raise self.Reset(f"connection reset after {self._cut} bytes")
        return self._source.read(offset, length)

    def check(self) -> None:
        self._source.check()

    # DeltaSource, when the wrapped source is one (server-side copies send no bytes)
    @property
    def base_rev(self) -> str | None:
        return getattr(self._source, "base_rev", None)

    def unchanged(self, offset: int, length: int) -> bool:
        return isinstance(self._source, DeltaSource) and self._source.unchanged(offset, length)

    def base_offset(self, offset: int) -> int:
        return self._source.base_offset(offset) if isinstance(self._source, DeltaSource) else offset

    def copied(self, offset: int, length: int) -> None:
        if isinstance(self._source, DeltaSource):
            self._source.copied(offset, length)


class FaultyRemote:
    """``inner`` with faults injected according to ``plan`` (see the module docstring)."""

    def __init__(self, inner: Remote, plan: FaultPlan) -> None:
        self.inner, self.plan = inner, plan
        # reads go through ``read`` (whole), where every read fault applies; no streaming
        self.capabilities = dataclasses.replace(inner.capabilities, streaming_reads=False)

    def __repr__(self) -> str:
        return f"FaultyRemote({self.inner!r})"

    async def _call(self, op: str, paths: tuple[str, ...], fn: Callable[[Fault | None], Awaitable[T]],
                    nbytes: int = 0) -> T:
        if not self.plan.retry:
            return await self._attempt(op, paths, fn, nbytes)
        p = self.plan
        return await with_retries(lambda: self._attempt(op, paths, fn, nbytes), what=f"{op} {paths[0]!r} (faulty)",
                                  deadline=p.retry_deadline, base=p.retry_base, cap=p.retry_cap, rng=p.rng)

    async def _attempt(self, op: str, paths: tuple[str, ...], fn: Callable[[Fault | None], Awaitable[T]],
                       nbytes: int) -> T:
        rule = self.plan.choose(op, paths)
        try:
            result = await self._inject(op, paths, fn, nbytes, rule)
        except Exception as exc:
            self.plan.note(op, paths, rule, f"{type(exc).__name__}: {exc}")
            raise
        self.plan.note(op, paths, rule, repr(result)[:200])
        return result

    async def _inject(self, op: str, paths: tuple[str, ...], fn: Callable[[Fault | None], Awaitable[T]],
                      nbytes: int, rule: Rule | None) -> T:
        fault = rule.fault if rule is not None else None
        what = f"injected: {op} {paths[0]!r}"
        if rule is None or fault in (Fault.TRUNCATE, Fault.RESET) and op in ("read", "write", "list"):
            return await fn(fault)
        if fault is Fault.SLOW:
            await trio.sleep(rule.seconds + nbytes / self.plan.bytes_per_second)
            return await fn(None)
        if fault is Fault.LOST_REPLY:
            await fn(None)
            raise TransientRemoteError(f"{what}: connection reset before the response arrived")
        if fault is Fault.LATE_REPLY:
            result = await fn(None)
            await trio.sleep(rule.seconds)
            return result
        if fault is Fault.THROTTLE:
            raise TransientRemoteError(f"{what}: 503 SlowDown", retry_after=rule.retry_after)
        if fault in (Fault.TIMEOUT, Fault.HANG):
            await trio.sleep(rule.seconds)
            raise TransientRemoteError(f"{what}: no response within {rule.seconds} s")
        raise TransientRemoteError(f"{what}: 500 Internal Server Error")

    # -- the contract --------------------------------------------------------------------------

    def check_path(self, path: str) -> None:
        check_path(self.inner, path)  # no network, so no faults

    async def check(self) -> None:
        await self._call("check", ("",), lambda f: self.inner.check())

    async def stat(self, path: str) -> RemoteEntry:
        return await self._call("stat", (path,), lambda f: self.inner.stat(path))

    async def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        # Faults are decided when the listing starts; retries are only possible before
        # the first entry was handed out.  RESET: some entries, then the error.
        fault = await self._call("list", (path,), self._list_start)
        cut = self.plan.rng.randrange(8) if fault is Fault.RESET else -1
        async with contextlib.aclosing(self.inner.list(path, recursive=recursive)) as entries:
            n = 0
            async for entry in entries:
                if n == cut:
                    raise TransientRemoteError(f"injected: list {path!r}: connection reset after {n} entries")
                n += 1
                yield entry
        if fault is Fault.RESET:  # fewer entries than the cut: the reset hits the last page
            raise TransientRemoteError(f"injected: list {path!r}: connection reset after {n} entries")

    @staticmethod
    async def _list_start(fault: Fault | None) -> Fault | None:
        return fault

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        async def attempt(fault: Fault | None) -> bytes:
            data = await self.inner.read(path, offset, length, rev=rev)
            if fault is Fault.TRUNCATE and data:
                return data[: self.plan.rng.randrange(len(data))]  # the client does not notice
            return data

        return await self._call("read", (path,), attempt, nbytes=length)

    async def write(self, path: str, source: UploadSource, *, expect: Expect | str = Expect.ANY,
                    attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        async def attempt(fault: Fault | None) -> RemoteEntry:
            if fault is not Fault.RESET:
                return await self.inner.write(path, source, expect=expect, attrs=attrs)
            if source.size == 0:
                raise TransientRemoteError(f"injected: write {path!r}: connection reset")
            dying = _ResetSource(source, self.plan.rng.randrange(source.size))
            try:
                return await self.inner.write(path, dying, expect=expect, attrs=attrs)
            except Exception as exc:
                if dying.tripped:
                    raise TransientRemoteError(f"injected: write {path!r}: {exc}") from exc
                raise

        return await self._call("write", (path,), attempt, nbytes=source.size)

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        return await self._call("mkdir", (path,), lambda f: self.inner.mkdir(path, attrs))

    async def set_attrs(self, path: str, attrs: FileAttrs, *, expect: str | None = None) -> RemoteEntry:
        return await self._call("set_attrs", (path,), lambda f: forward_set_attrs(self.inner, path, attrs,
                                                                                  expect=expect))

    async def rmdir(self, path: str) -> None:
        await self._call("rmdir", (path,), lambda f: self.inner.rmdir(path))

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        await self._call("delete", (path,), lambda f: self.inner.delete(path, expect=expect))

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        return await self._call("rename", (src, dst), lambda f: self.inner.rename(src, dst, expect=expect))

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        return await self._call("copy", (src, dst), lambda f: self.inner.copy(src, dst, rev=rev, expect=expect))

    async def link(self, src: str, dst: str, *, rev: str | None, expect: Expect | str) -> RemoteEntry:
        return await self._call("link", (src, dst), lambda f: link_in(self.inner, src, dst, rev=rev, expect=expect))

    def same_version(self, a: str, b: str, *, path: str | None = None) -> bool:
        return same_version_in(self.inner, a, b, path=path)  # no network, so no faults

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        return await self._call("symlink", (path,), lambda f: self.inner.symlink(path, target))

    async def readlink(self, path: str) -> str:
        return await self._call("readlink", (path,), lambda f: self.inner.readlink(path))

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        return await self._call("abort_incomplete_uploads", ("",), lambda f: (
            self.inner.abort_incomplete_uploads(paths) if paths else self.inner.abort_incomplete_uploads()))

    async def aclose(self) -> None:
        log.info("fault injection: %s", self.plan.report())
        await self.inner.aclose()

