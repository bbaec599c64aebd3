"""py-spy the cloudgw daemon during one workload: ``python -m benchmarks.profile [SCENARIO ...]``.

Starts moto (or, with ``--server swift``, Swift with s3api; with ``--server
webdav``, Apache mod_dav_fs) on loopback, mounts cloudgw (its CLI, daemonized,
as in the benchmark), runs each scenario in a loop while ``py-spy record
--format raw --threads`` samples the daemon's PID, and prints per scenario the
rate reached, how busy the trio thread and the worker threads were, the
samples by area (``AREAS``: FUSE requests, AES-GCM, the encrypting/decrypting
plumbing, the fetcher, botocore...), and the top frames by self time (the leaf
of each sample) and by inclusive time, with file:line and the % of samples.
``--gil`` samples only the thread holding the GIL.  The raw stacks are kept in --out (feed them
to flamegraph.pl or speedscope).  Needs root, /dev/fuse and py-spy (the
``bench`` extra).

Scenarios: write4k (sequential 4 KiB write(2)s), stat (lstat of cached
entries), randread (O_DIRECT 4 KiB random reads of a cached file), coldread
(sequential read from the remote), smallfiles (create 64 KiB files),
readfiles (open/read/close cached 64 KiB files), firstls (``ls -l`` of
folders of 5,000 entries never listed before), upload (write 256 MiB in 1 MiB
write(2)s, then ``cloudgw sync --wait``: the write-back upload of a big file).

``--crypt``: the same on an encrypted remote (``cloudgw crypt init`` of the
prefix, ``--crypt-password-file``; the gateway ``cloudgw-crypt`` of the
benchmark).  The data the scenarios find is then written through a first mount
(ciphertext can only come from the gateway), which is unmounted before the
profiled mount, so its cache starts cold as in the plain case; the 5,000-entry
folders are only made when ``stat`` or ``firstls`` is asked for (they upload
at ~60 files/s).
"""

from __future__ import annotations

import argparse
import collections
import mmap
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.gateways import CloudGW, CloudGWCrypt, Settings
from benchmarks.stores import DavStore, S3Store
from benchmarks.workloads import KiB, MiB, drop_caches, read_sequential, write_blob

SCENARIOS = ("write4k", "stat", "randread", "coldread", "smallfiles", "readfiles", "firstls", "upload")
FIRSTLS_DIRS = 4  # folders of 5,000 entries for "firstls"
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
# (area, substrings of a frame): a sample counts for the area of its deepest frame that matches one (the
# first matching area of that frame); "other" if none does
AREAS = (
    ("AES-GCM (seal/open a chunk, incl. building the AESGCM object)", ("seal_chunk", "open_chunk")),
    ("cache fill (fetcher: block buffer, crc32, pwrite)", ("cloudgw/sync/fetcher.py",)),
    ("upload source (pread of the cache file, crc32 notes)", ("cloudgw/sync/uploader.py", "cloudgw/sync/unacked.py")),
    ("encrypt/decrypt plumbing (chunk buffers, slicing, joins)", ("ChunkDecoder", "EncryptingSource", "CompressedDecoder", "CompressingSource")),
    ("SigV4 payload hash (botocore, plain http)", ("SigV4Auth.payload",)),
    ("HTTP (botocore, urllib3, sockets)", ("botocore/", "urllib3/", "http/client.py", "socket.py")),
    ("FUSE requests (pyfuse3, fuse/, filesystem/)", ("_pyfuse3", "cloudgw/fuse/", "cloudgw/filesystem/")),
    ("metadata store (SQLite)", ("cloudgw/metadata/",)),
    ("trio scheduling, thread hand-off", ("trio/",)),
)


def pyspy() -> str:
    return str(Path(sys.executable).parent / "py-spy")


class Profiler:
    def __init__(self, pid: int, out: Path, rate: int, native: bool = False, gil: bool = False) -> None:
        self.out = out
        self.proc = subprocess.Popen([pyspy(), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
                                      "--output", str(out), "--threads", *(["--gil"] if gil else []),
                                      *(["--native"] if native else ["--nonblocking"])],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _short(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("/cloudgw/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1] if marker != "/cloudgw/" else "cloudgw/" + path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path}:{m['line']})"


def _area(frames: list[str]) -> str:
    for frame in reversed(frames):
        for area, keys in AREAS:
            if any(k in frame for k in keys):
                return area
    return "other"


def summarize(raw: Path, top: int, seconds: float | None = None, rate: int | None = None) -> str:
    self_counts: collections.Counter[str] = collections.Counter()
    incl_counts: collections.Counter[str] = collections.Counter()
    ours_self: collections.Counter[str] = collections.Counter()
    per_thread: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[tuple[str, str]] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        # the trio thread runs the daemon's main(); every other thread is a worker (trio.to_thread)
        thread = "trio thread" if any(f.startswith("run_daemon ") for f in frames) else "worker threads"
        per_thread[thread] += n
        areas[(thread, _area(frames))] += n
        # the thread name py-spy puts first is not a frame
        frames = [f for f in frames if "(" in f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        self_counts[frames[-1]] += n
        for f in set(frames):
            incl_counts[f] += n
        # the deepest frame of our own code: where cloudgw spends (or waits for) the time
        mine = [f for f in frames if "cloudgw/" in f]
        if mine:
            ours_self[mine[-1]] += n
    if not total:
        return "  (no samples)"
    out = [f"  {total} samples (non-idle)"]
    if seconds and rate:
        out.append("  busy, in samples per wall-clock second of the scenario (1.00 = one thread always running): "
                   + ", ".join(f"{k} {c / (seconds * rate):.2f}" for k, c in per_thread.most_common()))
    out.append("  by area (thread, area, % of samples):")
    out += [f"    {100 * c / total:5.1f}%  {thread}: {area}" for (thread, area), c in areas.most_common(top)]
    out.append("  top self time:")
    out += [f"    {100 * c / total:5.1f}%  {f}" for f, c in self_counts.most_common(top)]
    out.append("  top cloudgw frame (deepest frame in cloudgw/ of each sample):")
    out += [f"    {100 * c / total:5.1f}%  {f}" for f, c in ours_self.most_common(top)]
    out.append("  top inclusive (frames in cloudgw/):")
    out += [f"    {100 * c / total:5.1f}%  {f}" for f, c in incl_counts.most_common(400)
            if "cloudgw/" in f][:top]
    return "\n".join(out)


def run_scenario(name: str, mnt: Path, seconds: float, flush=None) -> str:  # noqa: ANN001  (flush: () -> None)
    blob = random.Random(1).randbytes(32 * MiB)
    view = memoryview(blob)  # slicing bytes copies: a 32 MiB copy per file would dominate
    deadline = time.monotonic() + seconds
    done = 0
    t0 = time.monotonic()
    if name == "write4k":
        i = 0
        while time.monotonic() < deadline:
            fd = os.open(mnt / f"w4k-{i}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_blob(fd, blob, 32 * MiB, block=4 * KiB)
            finally:
                os.close(fd)
            done += 32 * MiB
            i += 1
        return f"{done / (time.monotonic() - t0) / 1e6:.1f} MB/s"
    if name == "stat":
        names = sorted(os.listdir(mnt / "meta"))
        busy = 0.0
        while time.monotonic() < deadline:
            drop_caches()  # the kernel forgets the dentries: every lstat is a FUSE lookup
            t = time.monotonic()
            for n in names:
                os.lstat(mnt / "meta" / n)
            busy += time.monotonic() - t
            done += len(names)
        return f"{done / busy:.0f} stats/s"
    if name == "randread":
        path = mnt / "big.bin"
        size = path.stat().st_size
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, 4 * KiB)
        rng = random.Random(4096)
        try:
            while time.monotonic() < deadline:
                for _ in range(64):
                    os.preadv(fd, [buf], rng.randrange(size // (4 * KiB)) * 4 * KiB)
                done += 64
        finally:
            os.close(fd)
        return f"{done / (time.monotonic() - t0):.0f} ops/s"
    if name == "coldread":
        n, secs, ttfb = read_sequential(mnt / "cold.bin")
        return f"{n / secs / 1e6:.1f} MB/s, first byte {ttfb * 1000:.0f} ms"
    if name == "smallfiles":
        d = mnt / "small"
        d.mkdir(exist_ok=True)
        i = 0
        while time.monotonic() < deadline:
            fd = os.open(d / f"s{i:06d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, view[i * 4096 % (16 * MiB):][:64 * KiB])
            finally:
                os.close(fd)
            i += 1
        return f"{i / (time.monotonic() - t0):.0f} creates/s"
    if name == "readfiles":
        d = mnt / "small"
        if not d.exists():  # run without smallfiles first: make 2,000 files to read
            d.mkdir()
            for i in range(2000):
                (d / f"s{i:06d}").write_bytes(view[i * 4096:][:64 * KiB])
        names = sorted(os.listdir(d))
        while time.monotonic() < deadline:
            for n in names:
                fd = os.open(d / n, os.O_RDONLY)
                try:
                    os.read(fd, 64 * KiB + 1)
                finally:
                    os.close(fd)
                done += 1
        return f"{done / (time.monotonic() - t0):.0f} reads/s (page cache warm after the first pass)"
    if name == "upload":
        size = 256 * MiB
        fd = os.open(mnt / "upload.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_blob(fd, blob, size)
        finally:
            os.close(fd)
        t_close = time.monotonic()
        flush()
        t_end = time.monotonic()
        return (f"write + upload {size / (t_end - t0) / 1e6:.1f} MB/s (write {size / (t_close - t0) / 1e6:.0f} MB/s, "
                f"close -> on remote {t_end - t_close:.1f} s)")
    if name == "firstls":
        times = []
        for k in range(FIRSTLS_DIRS):
            if time.monotonic() >= deadline:
                break
            t = time.monotonic()
            subprocess.run(["ls", "-l", str(mnt / "ls" / f"d{k}")], stdout=subprocess.DEVNULL, check=True)
            times.append(time.monotonic() - t)
        return "first ls -l of 5,000 entries: " + ", ".join(f"{x:.2f} s" for x in times)
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS), metavar="SCENARIO",
                    help="one or more of: " + ", ".join(SCENARIOS) + " (default: all)")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--native", action="store_true",
                    help="sample C/Cython frames too (pyfuse3's request loop, libfuse, SQLite); pauses the daemon "
                    "at each sample, so the rates drop")
    ap.add_argument("--dump", action="store_true", help="also print one `py-spy dump` of the daemon mid-scenario")
    ap.add_argument("--gil", action="store_true",
                    help="sample only threads holding the GIL: 'busy' near 1.00 in total means the GIL is the limit")
    ap.add_argument("--server", choices=["moto", "swift", "webdav"], default="moto")
    ap.add_argument("--crypt", action="store_true", help="an encrypted remote (S3: moto or swift; see above)")
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/cloudgw-profile"))
    ap.add_argument("--out", type=Path, default=Path("/var/tmp/cloudgw-profile-out"),
                    help="raw py-spy stacks per scenario (kept)")
    args = ap.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    if args.crypt and args.server == "webdav":
        ap.error("--crypt: S3 servers only (moto, swift)")
    if args.server == "swift":
        from tests.servers.swift import start_swift as start
    elif args.server == "webdav":
        from tests.servers.apache import start_apache as start
    else:
        from tests.servers.moto import start_moto

        def start():  # noqa: ANN202
            return start_moto(auth=False)

    args.out.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    with start() as server:
        store = DavStore(server) if args.server == "webdav" else S3Store(server)
        store.prepare()
        blob = random.Random(1).randbytes(32 * MiB)
        names = [f"f{i:06d}" for i in range(5000)]
        gw = (CloudGWCrypt if args.crypt else CloudGW)(args.workdir, Settings(write_back=1.0, poll_interval=60.0))
        store.ensure_prefix("p")
        endpoint = getattr(server, "endpoint_url", None) or f"http://127.0.0.1:{server.port}"
        remote = store.remote(endpoint, "p")
        folders = ["meta", *(f"ls/d{k}" for k in range(FIRSTLS_DIRS))] if {"stat", "firstls"} & set(args.scenarios) \
            else []
        if args.crypt:
            gw.prepare(remote, lambda key: store.size(key) is not None)
            gw.mount(remote)  # the seeding mount: ciphertext comes from the gateway
            try:
                (gw.mnt / "cold.bin").write_bytes(blob * 4)
                (gw.mnt / "big.bin").write_bytes(blob * 2)
                for folder in folders:
                    (gw.mnt / folder).mkdir(parents=True)
                    for n in names:
                        (gw.mnt / folder / n).write_bytes(b"x" * 100)
                gw.flush(3600)
            finally:
                gw.umount()
        else:
            store.put("p/cold.bin", blob * 4)  # 128 MiB, read once from the remote
            store.put("p/big.bin", blob * 2)
            store.put_many("p/meta", names, b"x" * 100)
            if "firstls" in args.scenarios:
                for k in range(FIRSTLS_DIRS):
                    store.put_many(f"p/ls/d{k}", names, b"x" * 100)
        gw.mount(remote)
        try:
            mnt = gw.mnt
            (mnt / "big.bin").read_bytes()  # into the disk cache
            if (mnt / "meta").exists():
                for n in os.listdir(mnt / "meta"):
                    os.lstat(mnt / "meta" / n)
            pid = gw.pids()[0]
            print(f"cloudgw daemon pid {pid}", flush=True)
            for name in args.scenarios:
                if name == "coldread":
                    drop_caches()
                prof = Profiler(pid, args.out / f"{name}.txt", args.rate, args.native, args.gil)
                t_start = time.monotonic()
                dumper = None
                if args.dump:
                    dumper = threading.Timer(args.seconds / 2, lambda: print(subprocess.run(
                        [pyspy(), "dump", "--pid", str(pid)], capture_output=True, text=True).stdout, flush=True))
                    dumper.start()
                try:
                    rate = run_scenario(name, mnt, args.seconds, flush=lambda: gw.flush(900))
                finally:
                    elapsed = time.monotonic() - t_start
                    prof.stop()
                    if dumper:
                        dumper.join()
                print(f"\n== {name}: {rate}", flush=True)
                print(summarize(args.out / f"{name}.txt", args.top, elapsed, args.rate), flush=True)
                if name == "write4k":
                    for f in mnt.glob("w4k-*.bin"):
                        f.unlink()
                if name == "upload":
                    (mnt / "upload.bin").unlink()
                gw.flush(600)
        finally:
            gw.umount()
    return 0


if __name__ == "__main__":
    sys.exit(main())
