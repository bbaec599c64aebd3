"""The kernel's tracing filesystem, where the benchmarks that count or time FUSE requests
(``fuse_requests``, ``ab --requests``, ``request_phases``) read the ``fuse`` tracepoints."""

from __future__ import annotations

import subprocess
from pathlib import Path

TRACING = Path("/sys/kernel/tracing")


def ensure_mounted() -> None:
    """Mount tracefs at ``TRACING`` if nothing is there yet (needs root)."""
    if not (TRACING / "trace").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=True, capture_output=True)
