"""The framework's floor: cloudgw against a pyfuse3 + trio filesystem that does nothing.

``python -m benchmarks.floor [--entries N] [--files N] [--runs N]`` mounts, side by side,
cloudgw on ``file://`` (``--write-back 3600``: no upload runs meanwhile) and a filesystem
on the same pyfuse3 + trio whose handlers only answer (a LOOKUP finds any name
``fNNNNN``, a CREATE/WRITE/FLUSH/RELEASE keeps nothing but a size).  Then, on each:

* cold ``stat``: the kernel's dentries and inodes dropped (``drop_caches``), then one
  ``stat`` per name of a folder of N entries (one LOOKUP each);
* creates: N files of 64 KiB written with Python's ``open`` (LOOKUP, CREATE, IOCTL,
  WRITE, FLUSH, RELEASE and a GETATTR of the folder each).

It prints the median rate of each and the ratio cloudgw/floor: what the request loop
leaves to our own code, and so what a row behind rclone can gain in cloudgw itself (the
README's "Where cloudgw is behind").  Needs root and /dev/fuse; no timing is asserted
anywhere: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import itertools
import os
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from benchmarks.gateways import CLOUDGW, _wait_mounted

PAYLOAD = 64 * 1024


def serve(mountpoint: str) -> None:
    """The do-nothing filesystem, in the foreground until unmounted."""
    import pyfuse3
    import trio

    class Nothing(pyfuse3.Operations):
        def __init__(self) -> None:
            super().__init__()
            self.names: dict[tuple[int, bytes], int] = {}
            self.sizes: dict[int, int] = {}
            self.inos = itertools.count(1_000_000)

        def _attr(self, ino: int) -> pyfuse3.EntryAttributes:
            a = pyfuse3.EntryAttributes()
            a.st_ino, a.entry_timeout, a.attr_timeout = ino, 300, 300
            is_dir = ino == pyfuse3.ROOT_INODE or ino == 2
            a.st_mode = (stat.S_IFDIR | 0o777) if is_dir else (stat.S_IFREG | 0o644)
            a.st_size, a.st_blksize = self.sizes.get(ino, 10), 4096
            return a

        async def lookup(self, parent: int, name: bytes, ctx=None):  # noqa: ANN001, ANN201
            ino = self.names.get((parent, name))
            if ino is None and parent == pyfuse3.ROOT_INODE and name[:1] == b"f" and name[1:].isdigit():
                ino = 3 + int(name[1:])  # the folder of N entries is the root itself
            if ino is None:
                a = pyfuse3.EntryAttributes()
                a.st_ino, a.entry_timeout = 0, 300  # a cached negative entry, as cloudgw answers
                return a
            return self._attr(ino)

        async def getattr(self, ino: int, ctx=None):  # noqa: ANN001, ANN201
            return self._attr(ino)

        async def mkdir(self, parent: int, name: bytes, mode: int, ctx):  # noqa: ANN001, ANN201
            self.names[(parent, name)] = 2
            return self._attr(2)

        async def create(self, parent: int, name: bytes, mode: int, flags: int, ctx):  # noqa: ANN001, ANN201
            ino = next(self.inos)
            self.names[(parent, name)] = ino
            direct = (flags & os.O_ACCMODE) == os.O_WRONLY  # as cloudgw: direct I/O for write-only opens
            return pyfuse3.FileInfo(fh=ino, direct_io=direct), self._attr(ino)

        async def write(self, fh: int, off: int, buf: bytes) -> int:
            self.sizes[fh] = max(self.sizes.get(fh, 0), off + len(buf))
            return len(buf)

        async def flush(self, fh: int) -> None:
            pass

        async def release(self, fh: int) -> None:
            pass

        async def getxattr(self, ino: int, name: bytes, ctx):  # noqa: ANN001, ANN201
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)

    options = set(pyfuse3.default_options) | {"fsname=cloudgw-floor", "default_permissions"}
    pyfuse3.init(Nothing(), mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("2")


def cold_stats(folder: Path, entries: int) -> float:
    drop_caches()
    start = time.perf_counter()
    for i in range(entries):
        os.stat(folder / f"f{i:05d}")
    return entries / (time.perf_counter() - start)


def creates(folder: Path, files: int, run: int) -> float:
    folder.mkdir(exist_ok=True)
    data = os.urandom(PAYLOAD)
    start = time.perf_counter()
    for i in range(files):
        with open(folder / f"r{run}-{i:06d}", "wb") as f:
            f.write(data)
    return files / (time.perf_counter() - start)


@contextlib.contextmanager
def mounted_floor(mnt: Path) -> Iterator[Path]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.floor", "--serve", str(mnt)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_mounted(mnt, proc, None, timeout=30)
        yield mnt
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        proc.wait(timeout=60)


@contextlib.contextmanager
def mounted_cloudgw(work: Path, entries: int) -> Iterator[Path]:
    cloud, mnt, cache = work / "cloud", work / "mnt-cloudgw", work / "cache"
    for d in (cloud, mnt):
        d.mkdir()
    for i in range(entries):
        (cloud / f"f{i:05d}").write_bytes(b"0123456789")
    subprocess.run([CLOUDGW, "mount", f"file://{cloud}", str(mnt), "--cache-dir", str(cache), "--write-back",
                    "3600", "--poll-interval", "3600", "--log-level", "WARNING"], check=True, timeout=120)
    try:
        os.listdir(mnt)  # listed once: the metadata is local from here on, as in the benchmark's "cached"
        yield mnt
    finally:
        subprocess.run([CLOUDGW, "umount", str(mnt), "--timeout", "600"], capture_output=True, timeout=900)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if os.geteuid() != 0:
        print("benchmarks.floor: needs root (drop_caches, FUSE mounts)", file=sys.stderr)
        return 2
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cloudgw-floor-") as tmp:
        work = Path(tmp)
        (work / "mnt-floor").mkdir()
        with mounted_floor(work / "mnt-floor") as floor, mounted_cloudgw(work, args.entries) as ours:
            for name, mnt in (("floor", floor), ("cloudgw", ours)):
                rows.setdefault("cold stat (stats/s)", {})[name] = statistics.median(
                    cold_stats(mnt, args.entries) for _ in range(args.runs))
                rows.setdefault("creates of 64 KiB (files/s)", {})[name] = statistics.median(
                    creates(mnt / "new", args.files, run) for run in range(args.runs))
    print(f"median of {args.runs} runs; {args.entries} entries, {args.files} files per run")
    print("| row | cloudgw | pyfuse3 + trio doing nothing | cloudgw/floor |")
    print("|---|---|---|---|")
    for row, figures in rows.items():
        print(f"| {row} | {figures['cloudgw']:,.0f} | {figures['floor']:,.0f} | "
              f"{figures['cloudgw'] / figures['floor']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
