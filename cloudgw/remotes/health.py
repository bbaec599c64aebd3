"""What remotes say about their own condition, for ``cloudgw status`` and the metrics.

A remote that can be throttled as a whole or lose its sign-in (the Graph and Drive
remotes) reports it here instead of only failing requests: an administrator reads
"login required" or "throttled until 14:05:10" in ``cloudgw status`` and knows what to
do.  The board is shared by every remote of one gateway (``Common.health``) and keyed by
the remote's config name; reports may come from worker threads, so it takes a lock.
Conditions are cleared from the trio thread only, and ``on_recovered`` callbacks run
there, when a remote leaves a condition: the engine retries what waited (uploads held back by
a missing login resume at once, not after their backoff).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Condition:
    state: str  # "login required", "throttled"
    detail: str = ""  # one line: what to do, or why
    until: float | None = None  # wall-clock end (throttled), None: until it is fixed
    since: float = 0.0


LOGIN_REQUIRED = "login required"
THROTTLED = "throttled"
SEVERITY = (LOGIN_REQUIRED, THROTTLED)  # what ``snapshot`` shows first when a remote has several


class HealthBoard:
    """The conditions of a gateway's remotes, by remote name (``""``: the only remote) and
    condition: a remote can be throttled and signed out at once, and the end of one does
    not hide the other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conditions: dict[tuple[str, str], Condition] = {}
        self._listeners: list[Callable[[str, str], None]] = []

    def report(self, name: str, state: str, detail: str = "", until: float | None = None) -> None:
        with self._lock:
            old = self._conditions.get((name, state))
            since = old.since if old is not None else time.time()
            self._conditions[(name, state)] = Condition(state, detail, until, since)

    def clear(self, name: str, state: str) -> None:
        """``name`` is out of condition ``state``; listeners are told (trio thread)."""
        with self._lock:
            if self._conditions.pop((name, state), None) is None:
                return
            listeners = list(self._listeners)
        for listener in listeners:
            listener(name, state)

    def on_recovered(self, listener: Callable[[str, str], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def snapshot(self) -> dict[str, dict]:
        """JSON-ready, per remote: its most severe condition still in force (a throttle whose
        time is up is not), with ``also``: the others' states."""
        now = time.time()
        with self._lock:
            live = [(name, c) for (name, _), c in self._conditions.items() if c.until is None or c.until > now]
        shown: dict[str, dict] = {}
        for name, c in sorted(live, key=lambda nc: SEVERITY.index(nc[1].state) if nc[1].state in SEVERITY else 99):
            if name in shown:
                shown[name]["also"].append(c.state)
            else:
                shown[name] = {"state": c.state, "detail": c.detail, "until": c.until, "since": c.since, "also": []}
        return shown
