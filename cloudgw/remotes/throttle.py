"""One pause for a whole remote: what a cloud's throttling answer asks of every request.

Graph and Drive throttle an app per user (and per tenant or project), not per request:
hammering on with the other requests while one waits only extends the penalty.  So a
throttling answer (429/503 with ``Retry-After`` on Graph; 429 or 403
``userRateLimitExceeded``/``rateLimitExceeded`` on Drive) pauses the remote: every
request waits at the gate before it is sent, uploads and reads alike.  The pause shows
on the health board ("throttled until ..."), and a storm is logged as a WARNING at most
once a minute (INFO otherwise).

Concurrency: trio tasks only (the gate is awaited in the trio thread; ``pause`` is
called there too).  Nothing is persisted: a restarted gateway starts unpaused and learns
again from the server's next answer.
"""

from __future__ import annotations

import logging
import time

import trio

from cloudgw.errors import RemoteUnavailable
from cloudgw.remotes.health import THROTTLED, HealthBoard

log = logging.getLogger(__name__)
DEFAULT_PAUSE = 10.0  # seconds, for a throttling answer without Retry-After
WARN_EVERY = 60.0  # seconds between WARNING lines about one throttling storm


class ThrottleGate:
    """The pause of one remote (``name`` on the health board)."""

    def __init__(self, name: str, health: HealthBoard | None, retry_deadline: float) -> None:
        self.name, self.health, self.retry_deadline = name, health, retry_deadline
        self.paused_until = 0.0  # trio clock: no request is sent before
        self._warned_at = -WARN_EVERY

    async def wait(self) -> None:
        """Wait while the remote is paused; a pause longer than the remote's timeout fails at
        once (EIO, "throttled until ..."), as a request would after its retries: a reader is
        not held for the ten minutes a server may ask for."""
        wait = self.paused_until - trio.current_time()
        if wait > self.retry_deadline:
            until = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
            raise RemoteUnavailable(f"remote {self.name or '(root)'} is throttled until {until}")
        if wait > 0:
            await trio.sleep(wait)

    def pause(self, seconds: float | None, why: str) -> None:
        """A throttling answer (``why``: "429", "403 userRateLimitExceeded") asked to wait
        ``seconds`` (None: it did not say; ``DEFAULT_PAUSE``)."""
        seconds = DEFAULT_PAUSE if seconds is None else seconds
        until = trio.current_time() + seconds
        if until <= self.paused_until:
            return
        self.paused_until = until
        quiet = trio.current_time() - self._warned_at < WARN_EVERY
        if not quiet:
            self._warned_at = trio.current_time()
        log.log(logging.INFO if quiet else logging.WARNING, "remote %s: throttled (%s); pausing every request"
                " for %.0f s", self.name or "(root)", why, seconds)
        if self.health is not None:
            self.health.report(self.name, THROTTLED, f"the server asked to wait {seconds:.0f} s",
                               until=time.time() + seconds)

    def answered(self) -> None:
        """A request got a normal answer: once the pause is over, the condition is cleared."""
        if self.health is not None and self.paused_until <= trio.current_time():
            self.health.clear(self.name, THROTTLED)
