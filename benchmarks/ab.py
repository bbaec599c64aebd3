"""Two versions of cloudgw, alternately: ``python -m benchmarks.ab OLD [NEW] [--runs N] [--requests]``.

A gain of a few percent drowns in this machine's noise when two versions are measured
minutes apart (the do-nothing filesystem of ``benchmarks.floor`` moved between 2,100 and
2,800 creates/s in one afternoon).  So this mounts the two in turn, OLD then NEW then NEW
then OLD..., each time a fresh cache over ``file://`` (``--write-back 3600``: no upload
runs meanwhile), and runs the same two rows of ``benchmarks.floor`` on each: cold ``stat``
of a folder of ``--entries`` names and creates of ``--files`` files of 64 KiB.

OLD and NEW are git revisions of this repository, checked out into temporary worktrees
(NEW by default: the working tree as it is, uncommitted changes included) and run with
this venv's ``cloudgw`` through ``PYTHONPATH``, their bytecode compiled first.  Prints per
row the median (min–max) of each version, the ratio NEW/OLD and how many of the pairs of
neighbouring runs went the same way as the medians (a ratio whose pairs disagree is noise).

``--requests`` also times each FUSE request of the creates from the kernel's tracepoints
(``fuse_request_send``/``_end``, tracefs; one connection per mount) and prints the median
latency per request type: where a change moved the time.

Needs root (``drop_caches``, FUSE mounts, tracefs).  No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from benchmarks.floor import PAYLOAD, cold_stats, creates
from benchmarks.tracefs import TRACING, ensure_mounted

ROOT = Path(__file__).resolve().parent.parent
CLOUDGW = Path(sys.executable).parent / "cloudgw"
_EVENT = re.compile(r"(\d+\.\d+): fuse_request_(send|end): connection (\d+) req (\d+)(?: opcode \d+ \((\w+)\))?")


@contextlib.contextmanager
def checked_out(rev: str | None) -> Iterator[Path]:
    """The source of ``rev`` (None: the working tree), bytecode compiled."""
    if rev is None:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "cloudgw")], check=True)
        yield ROOT
        return
    with tempfile.TemporaryDirectory(prefix="cloudgw-ab-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
        try:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "cloudgw")], check=True)
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


@contextlib.contextmanager
def mounted(source: Path, work: Path, entries: int) -> Iterator[tuple[Path, dict[str, str]]]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    cloud, mnt = work / "cloud", work / "mnt"
    for d in (cloud, mnt):
        d.mkdir()
    for i in range(entries):
        (cloud / f"f{i:05d}").write_bytes(b"0123456789")
    subprocess.run([str(CLOUDGW), "mount", f"file://{cloud}", str(mnt), "--cache-dir", str(work / "cache"),
                    "--write-back", "3600", "--poll-interval", "3600", "--log-level", "WARNING"],
                   check=True, timeout=120, env=env)
    try:
        os.listdir(mnt)  # listed once: the metadata is local, as in benchmarks.floor
        yield mnt, env
    finally:
        subprocess.run([str(CLOUDGW), "umount", str(mnt), "--timeout", "600"], capture_output=True, timeout=900, env=env)


def _trace(on: bool) -> None:
    """The kernel's FUSE request events on or off.  A buffer that holds a long run whole
    (the default, ~1.4 MB per CPU, holds a few tens of thousands of events, and a full one
    drops the oldest).  The clock is CLOCK_MONOTONIC, so ``benchmarks.request_phases`` can
    set the daemon's own stamps beside the kernel's."""
    if on:
        ensure_mounted()
        (TRACING / "buffer_size_kb").write_text("32768")
        (TRACING / "trace_clock").write_text("mono")
        (TRACING / "trace").write_text("")
        (TRACING / "events/fuse/enable").write_text("1")
    (TRACING / "tracing_on").write_text("1" if on else "0")
    if not on:
        (TRACING / "events/fuse/enable").write_text("0")


def request_latencies(trace: str) -> dict[str, list[float]]:
    """µs per request type, of the connection that sent the most requests."""
    sent: dict[tuple[str, str], tuple[float, str]] = {}
    per_connection: collections.Counter[str] = collections.Counter()
    latencies: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for line in trace.splitlines():
        m = _EVENT.search(line)
        if m is None:
            continue
        ts, kind, conn, req, op = float(m[1]), m[2], m[3], m[4], m[5]
        if kind == "send":
            sent[(conn, req)] = (ts, op)
            per_connection[conn] += 1
        elif (conn, req) in sent:
            start, op = sent.pop((conn, req))
            latencies[(conn, op)].append((ts - start) * 1e6)
    if not per_connection:
        return {}
    busiest = per_connection.most_common(1)[0][0]
    return {op: values for (conn, op), values in latencies.items() if conn == busiest}


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="git revision measured first (e.g. HEAD~3)")
    ap.add_argument("new", nargs="?", help="git revision (default: the working tree)")
    ap.add_argument("--runs", type=int, default=6, help="mounts of each version (default 6)")
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--requests", action="store_true", help="median latency per FUSE request of the creates")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks.ab: needs root (drop_caches, FUSE mounts, tracefs)", file=sys.stderr)
        return 2
    rows: dict[str, dict[str, list[float]]] = {"cold stat (stats/s ↑)": {}, "creates of 64 KiB (files/s ↑)": {}}
    requests: dict[str, dict[str, list[float]]] = {"old": collections.defaultdict(list),
                                                  "new": collections.defaultdict(list)}
    with checked_out(args.old) as old, checked_out(args.new) as new:
        for run in range(args.runs):
            order = [("old", old), ("new", new)] if run % 2 == 0 else [("new", new), ("old", old)]
            for name, source in order:
                with tempfile.TemporaryDirectory(prefix="cloudgw-ab-run-") as tmp, \
                        mounted(source, Path(tmp), args.entries) as (mnt, _):
                    creates(mnt / "warm-up", 200, run)
                    rows["cold stat (stats/s ↑)"].setdefault(name, []).append(cold_stats(mnt, args.entries))
                    if args.requests:
                        _trace(True)
                    try:
                        rate = creates(mnt / "new", args.files, run)
                    finally:
                        if args.requests:
                            _trace(False)
                    rows["creates of 64 KiB (files/s ↑)"].setdefault(name, []).append(rate)
                    if args.requests:
                        for op, values in request_latencies((TRACING / "trace").read_text()).items():
                            requests[name][op].extend(values)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    print(f"{args.old} (old) vs {args.new or 'working tree'} (new): {args.runs} mounts each, alternating; "
          f"{args.entries} entries, {args.files} files of {PAYLOAD // 1024} KiB per run")
    print("| row | old | new | new/old | pairs agreeing |")
    print("|---|---|---|---|---|")
    for row, figures in rows.items():
        ratio = statistics.median(figures["new"]) / statistics.median(figures["old"])
        agreeing = sum((n > o) == (ratio > 1) for o, n in zip(figures["old"], figures["new"]))
        print(f"| {row} | {_summary(figures['old'])} | {_summary(figures['new'])} | {ratio:.2f} | "
              f"{agreeing} of {args.runs} |")
    if args.requests:
        print("\nmedian latency per request of the creates (µs, from the kernel's tracepoints):")
        print("| request | old | new |")
        print("|---|---|---|")
        for op in sorted(requests["old"], key=lambda op: -statistics.median(requests["old"][op])):
            if op in requests["new"] and len(requests["old"][op]) >= args.files // 2:
                print(f"| {op} | {statistics.median(requests['old'][op]):.0f} | "
                      f"{statistics.median(requests['new'][op]):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
