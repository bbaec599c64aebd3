"""Deterministic crash points for the crash-matrix tests.

``crash_point("name")`` kills the process with SIGKILL (exactly like ``kill -9``)
when the environment variable ``CLOUDGW_CRASH_AT`` names that point; otherwise it
does nothing.  Points are placed between the steps whose crash behaviour the
docstrings promise (see ``sync/uploader.py``), so a test can stop the daemon at
each step instead of guessing with sleeps.
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("CLOUDGW_CRASH_AT", "")


def crash_point(name: str) -> None:
    if _ARMED and _ARMED == name:
        os.kill(os.getpid(), signal.SIGKILL)
