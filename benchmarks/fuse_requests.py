"""Count the FUSE requests a command sends to one mount, by opcode:
``python -m benchmarks.fuse_requests MOUNTPOINT -- COMMAND [ARG ...]``.

Why: what a workload costs a FUSE daemon is mostly its number of round trips
(~55 us each through pyfuse3 + trio here), and the kernel decides that number
(attribute timeouts, READDIRPLUS, permission checks, extended attributes asked
per entry).  The kernel's ``fuse:fuse_request_send`` tracepoint (kernel 6.13 and
newer) counts them exactly, without slowing the daemon as strace does.

Needs root and tracefs (mounted at /sys/kernel/tracing if it is not).  Only
requests to ``MOUNTPOINT``'s connection are counted; the command's output goes to
/dev/null.  Not thread-safe against another tracer on the machine.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.tracefs import TRACING, ensure_mounted

EVENT = TRACING / "events" / "fuse" / "fuse_request_send"
_OPCODE = re.compile(r"\((FUSE_[A-Z0-9_]+)\)")


def _tracefs() -> None:
    ensure_mounted()
    if not EVENT.exists():
        raise SystemExit("fuse_requests: this kernel has no fuse:fuse_request_send tracepoint (6.13 or newer)")


def _overruns() -> int:
    """Events the ring buffer dropped (it was full), summed over the CPUs."""
    stats = (TRACING / "per_cpu").glob("cpu*/stats")
    return sum(int(line.split(":")[1]) for f in stats for line in f.read_text().splitlines()
               if line.startswith("overrun:"))


def count(mountpoint: Path, command: list[str]) -> tuple[collections.Counter[str], int]:
    """Requests by opcode sent to ``mountpoint``'s FUSE connection while ``command`` ran, and
    the command's exit code.  The ring buffer is enlarged for the run (64 MiB a CPU: about a
    million requests) and put back after; a run that still overflowed is refused."""
    _tracefs()
    connection = os.stat(mountpoint).st_dev
    size = (TRACING / "buffer_size_kb").read_text().split()[0]
    (TRACING / "tracing_on").write_text("0")
    (TRACING / "buffer_size_kb").write_text("65536")
    (TRACING / "trace").write_text("")
    (EVENT / "filter").write_text(f"connection == {connection}")
    (EVENT / "enable").write_text("1")
    try:
        (TRACING / "tracing_on").write_text("1")
        code = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
        (TRACING / "tracing_on").write_text("0")
        if _overruns():
            raise SystemExit("fuse_requests: the trace buffer overflowed; count a shorter command")
        counts = collections.Counter(_OPCODE.findall((TRACING / "trace").read_text()))
    finally:
        (TRACING / "tracing_on").write_text("0")
        (EVENT / "enable").write_text("0")
        (EVENT / "filter").write_text("0")
        (TRACING / "trace").write_text("")
        (TRACING / "buffer_size_kb").write_text(size)
    return counts, code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mountpoint", type=Path)
    p.add_argument("command", nargs=argparse.REMAINDER, help="after --: the command to run")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command given (after --)")
    if not os.path.ismount(args.mountpoint):
        p.error(f"{args.mountpoint} is not a mountpoint")
    try:
        counts, code = count(args.mountpoint, command)
    except FileNotFoundError:
        p.error(f"no such command: {command[0]}")
    except PermissionError:
        p.error("tracefs needs root")
    for opcode, n in counts.most_common():
        print(f"{n:9,}  {opcode}")
    print(f"{sum(counts.values()):9,}  in all")
    if code:
        print(f"fuse_requests: {command[0]} exited with {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
