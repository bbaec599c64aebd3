"""Which allocation sites grew: ``python -m benchmarks.memory_growth DIR [--base N] [--top K]``.

DIR holds the snapshots a daemon wrote under ``CLOUDGW_MEMORY_SNAPSHOTS=DIR``
(``cloudgw.memory_snapshots``), named by the seconds since its mount.  Prints the
traced total of each snapshot, then the sites whose live memory grew most from a
base snapshot (``--base``: the first taken at or after N seconds; default the
second snapshot, i.e. after one interval of warm-up) to the last one, grouped by
the full allocation traceback, innermost frame first.  A steady leak shows as a
site that grows in every interval; a one-off step (a cache filling to its bound)
grows once and stays.  The per-interval growth of the top sites is printed too.
Before them, from each snapshot's ``.heap.json``: RSS and its C-heap parts
(``cloudgw.heap_stats``), to tell Python growth from SQLite's, from memory glibc
hands out (in use) and from memory freed but kept resident (RSS growing while the
rest stays; glibc's free figure counts trimmed pages too).
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from pathlib import Path

KiB = 1024
IGNORED = ("<frozen importlib._bootstrap", "<frozen importlib._bootstrap_external>", tracemalloc.__file__)


def _seconds(path: Path) -> int:
    return int(path.stem.split("-")[1])


def _load(path: Path) -> tracemalloc.Snapshot:
    return tracemalloc.Snapshot.load(str(path)).filter_traces(
        [tracemalloc.Filter(False, pattern) for pattern in IGNORED])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", type=Path)
    ap.add_argument("--base", type=int, default=None, help="the base snapshot: the first at or after N seconds")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args(argv)
    paths = sorted(args.directory.glob("snapshot-*.tracemalloc"), key=_seconds)
    if len(paths) < 2:
        print(f"memory_growth: need two snapshots in {args.directory}, found {len(paths)}", file=sys.stderr)
        return 2
    snapshots = {path: _load(path) for path in paths}
    print("traced Python memory per snapshot (s since mount: KiB):")
    print("  " + ", ".join(f"{_seconds(p)}: {sum(t.size for t in s.traces) // KiB:,}" for p, s in snapshots.items()))
    _print_heap(paths)
    if args.base is None:
        base = paths[1] if len(paths) > 2 else paths[0]
    else:
        base = next((p for p in paths if _seconds(p) >= args.base), paths[-2])
    last = paths[-1]
    grown = [d for d in snapshots[last].compare_to(snapshots[base], "traceback") if d.size_diff > 0]
    print(f"\ngrowth from {_seconds(base)} s to {_seconds(last)} s: "
          f"{sum(d.size_diff for d in grown) // KiB:,} KiB in {len(grown)} sites; the top {args.top}:")
    steps = [p for p in paths if _seconds(p) >= _seconds(base)]
    sizes = {p: {s.traceback: s.size for s in snapshots[p].statistics("traceback")} for p in steps}
    for diff in grown[:args.top]:
        trail = " ".join(f"{sizes[p].get(diff.traceback, 0) // KiB:,}" for p in steps)
        print(f"\n  +{diff.size_diff // KiB:,} KiB (+{diff.count_diff:,} blocks), KiB per snapshot from the base: {trail}")
        for line in diff.traceback.format(limit=4, most_recent_first=True):
            print("    " + line.strip())
    return 0


def _heap(path: Path) -> dict | None:
    """A snapshot's heap figures; None if it has none or they were cut (a full disk, a kill)."""
    try:
        return json.loads(path.with_suffix(".heap.json").read_text())
    except (OSError, ValueError):
        return None


def _print_heap(paths: list[Path]) -> None:
    rows = [(p, h) for p in paths if (h := _heap(p)) is not None]
    if not rows:
        return
    mib = lambda v: "–" if v is None else f"{v / 2**20:,.1f}"  # noqa: E731
    print("\nheap per snapshot (MiB; glibc's free bytes include pages a trim gave back: not all resident):")
    print("| s | RSS | Python traced | glibc in use | glibc free | glibc mmapped | SQLite |")
    print("|---|---|---|---|---|---|---|")
    for path, h in rows:
        rss = None if h.get("rss_kib") is None else h["rss_kib"] * 1024
        print(f"| {_seconds(path)} | {mib(rss)} | {mib(h.get('python_traced'))} | {mib(h.get('malloc_in_use'))} | "
              f"{mib(h.get('malloc_free_held'))} | {mib(h.get('malloc_mmapped'))} | {mib(h.get('sqlite'))} |")
    print()


if __name__ == "__main__":
    sys.exit(main())
