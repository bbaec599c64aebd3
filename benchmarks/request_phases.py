"""Where each FUSE request of a create spends its time: ``python -m benchmarks.request_phases``.

Per request type, the medians of three phases, from two clocks that agree
(CLOCK_MONOTONIC: the kernel's tracer with ``trace_clock=mono``, and the daemon's
``time.monotonic_ns``):

* **queued**: from the kernel's ``fuse_request_send`` until our handler begins: the
  daemon waking, reading ``/dev/fuse`` and dispatching, and any time the request waits
  for the daemon's thread to be free or to get a CPU;
* **handler**: the handler's own time (``FuseOperations``, or the do-nothing one);
* **reply**: from the handler's return until the kernel's ``fuse_request_end``.

Runs cloudgw on ``file://`` (``--write-back 3600``) and the do-nothing filesystem of
``benchmarks.floor``, each in a child process whose handlers are wrapped to stamp
their entry and exit, and creates ``--files`` files of 64 KiB with Python's ``open``
on each, with the writing program and the daemon placed by ``--placement``: ``same``
(both on CPU 0), ``split`` (daemon on CPU 0, program on CPU 1) or ``free``.

What it showed (2026-12-07, 2 vCPUs, medians of 1,000 creates): a RELEASE (asynchronous:
the program's ``close`` returns before it is served) and the next file's GETATTR sat
queued 67-71 µs on cloudgw and ~48 µs on the do-nothing filesystem when program and
daemon shared a CPU, 18-33 and 22-24 µs when they did not; the handlers' own times
did not move.  So the time last measured as "outside our handlers" is the program's
own run time on the daemon's CPU, and it is the same for any FUSE daemon.

Needs root (FUSE mounts, tracefs).  No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import atexit
import bisect
import collections
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from benchmarks.ab import _EVENT, _trace
from benchmarks.floor import PAYLOAD
from benchmarks.gateways import _wait_mounted
from benchmarks.tracefs import TRACING, ensure_mounted

HANDLERS = ("lookup", "getattr", "create", "write", "flush", "release", "ioctl", "open", "getxattr")
PLACEMENTS = {"same": ("0", "0"), "split": ("0", "1"), "free": (None, None)}  # (daemon CPU, program CPU)

Stamp = tuple[str, int, int]  # (handler, entry ns, exit ns)


def _stamped(cls: type, stamps: list[Stamp]) -> None:
    """Wrap ``cls``'s own async handlers to append a ``Stamp`` per call."""
    def wrap(name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        async def stamped(*args: Any, **kwargs: Any) -> Any:
            entered = time.monotonic_ns()
            try:
                return await handler(*args, **kwargs)
            finally:
                stamps.append((name, entered, time.monotonic_ns()))
        return stamped

    for name in HANDLERS:
        if name in cls.__dict__:
            setattr(cls, name, wrap(name, cls.__dict__[name]))


def _serve(kind: str, stamps_file: str, argv: list[str]) -> int:
    """The child: a daemon in the foreground whose stamps go to ``stamps_file`` at exit."""
    stamps: list[Stamp] = []
    atexit.register(lambda: Path(stamps_file).write_text(json.dumps(stamps)))
    if kind == "cloudgw":
        from cloudgw.cli import main as cloudgw_main
        from cloudgw.fuse.operations import FuseOperations
        _stamped(FuseOperations, stamps)
        return cloudgw_main(argv)
    import pyfuse3

    from benchmarks import floor
    init = pyfuse3.init

    def stamping_init(ops: Any, mountpoint: str, options: Any) -> None:
        _stamped(type(ops), stamps)
        init(ops, mountpoint, options)

    pyfuse3.init = stamping_init
    floor.serve(argv[0])
    return 0


@contextlib.contextmanager
def _mounted(kind: str, work: Path, cpu: str | None) -> Iterator[tuple[Path, Path]]:
    mnt, stamps = work / "mnt", work / "stamps.json"
    mnt.mkdir()
    argv = [str(mnt)]
    if kind == "cloudgw":
        (work / "cloud").mkdir()
        argv = ["mount", f"file://{work / 'cloud'}", str(mnt), "--cache-dir", str(work / "cache"), "--foreground",
                "--write-back", "3600", "--poll-interval", "3600", "--log-level", "WARNING"]
    pin = ["taskset", "-c", cpu] if cpu is not None else []
    proc = subprocess.Popen([*pin, sys.executable, "-m", "benchmarks.request_phases", "--serve", kind, str(stamps),
                             "--", *argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_mounted(mnt, proc, None, timeout=60)
        os.stat(mnt)
        yield mnt, stamps
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        proc.wait(timeout=120)


def _creates(folder: Path, files: int) -> float:
    folder.mkdir()
    data = os.urandom(PAYLOAD)
    start = time.perf_counter()
    for i in range(files):
        with open(folder / f"{folder.name}-{i:06d}", "wb") as f:  # (the floor keeps one namespace for all folders)
            f.write(data)
    return files / (time.perf_counter() - start)


def phases(trace: str, stamps: list[Stamp]) -> dict[str, dict[str, list[float]]]:
    """µs per phase per request type: each stamp matched to the kernel request of its type
    that was sent last before the handler began and ended after it returned."""
    sent: dict[tuple[str, str], tuple[int, str]] = {}
    requests: list[tuple[int, int, str]] = []  # (send ns, end ns, handler name)
    for line in trace.splitlines():
        m = _EVENT.search(line)
        if m is None:
            continue
        ns, key = round(float(m[1]) * 1e9), (m[3], m[4])
        if m[2] == "send":
            sent[key] = (ns, (m[5] or "").lower().removeprefix("fuse_"))
        elif key in sent:
            start, op = sent.pop(key)
            requests.append((start, ns, op))
    requests.sort()
    starts = [r[0] for r in requests]
    out: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for name, entered, left in stamps:
        i = bisect.bisect_right(starts, entered) - 1
        # the tracer stamps to the microsecond: allow 1 µs of rounding on either side
        while i >= 0 and not (requests[i][2] == name and requests[i][1] >= left - 1000):
            i -= 1
        if i < 0 or entered - requests[i][0] > 50_000_000:
            continue
        start, end, _ = requests[i]
        row = out[name.upper()]
        row["queued"].append(max(0, entered - start) / 1e3)
        row["handler"].append((left - entered) / 1e3)
        row["reply"].append(max(0, end - left) / 1e3)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        kind, stamps_file, rest = argv[1], argv[2], argv[4:]
        return _serve(kind, stamps_file, rest)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--placement", choices=sorted(PLACEMENTS), default="free")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks.request_phases: needs root (FUSE mounts, tracefs)", file=sys.stderr)
        return 2
    ensure_mounted()
    daemon_cpu, program_cpu = PLACEMENTS[args.placement]
    if program_cpu is not None:
        os.sched_setaffinity(0, {int(program_cpu)})
    print(f"{args.files} creates of {PAYLOAD // 1024} KiB; placement {args.placement}; medians in µs")
    print("| filesystem | request | queued | handler | reply | requests |")
    print("|---|---|---|---|---|---|")
    for kind in ("floor", "cloudgw"):
        with tempfile.TemporaryDirectory(prefix="cloudgw-phases-") as tmp:
            with _mounted(kind, Path(tmp), daemon_cpu) as (mnt, stamps_file):
                _creates(mnt / "warm-up", 100)
                _trace(True)
                try:
                    rate = _creates(mnt / "new", args.files)
                finally:
                    _trace(False)
                trace = (TRACING / "trace").read_text()
            stamps = [tuple(s) for s in json.loads(stamps_file.read_text())]
        for op, row in sorted(phases(trace, stamps).items()):  # type: ignore[arg-type]
            if len(row["handler"]) >= args.files // 2:
                print(f"| {kind} | {op} | {statistics.median(row['queued']):.1f} | "
                      f"{statistics.median(row['handler']):.1f} | {statistics.median(row['reply']):.1f} | "
                      f"{len(row['handler'])} |")
        print(f"| {kind} | (creates/s) | {rate:,.0f} | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
