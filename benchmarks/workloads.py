"""The workloads, grouped into mount sessions, run against one server (S3 or WebDAV).

A *session* is one fresh mount (fresh cache dir, fresh counting proxy) of one
gateway on one bucket prefix, running a few workloads in order:

  read     prefix big/ (shared, uploaded once):  2 cold read -> 1 cached read -> 6 random reads
  write    prefix write/<gw>-r<run>/:              3 sequential write -> 8 4 KiB edit in the middle
  files N  prefix files/<gw>-r<run>-n<N>/:         4 create N small files (9: for each N)
  meta N   prefix meta/n<N>/ (shared, put once):   5 first listing, ls -lR and stat, kernel caches
                                                    cold (after drop_caches) and warm, stat of missing
                                                    names twice (9: for each N)
  prop     prefix prop/<gw>-r<run>/:               7 outside PUT -> visible in the mount

Encrypted gateways (``cloudgw-crypt``, ``rclone-crypt``) run only their
``workloads`` (cold read, write + upload, small files) and read their own copy
of the big file, big-<gw>/ (put through the gateway's own format in ``setup``);
before each mount ``Gateway.prepare`` makes a fresh prefix an encrypted remote
(cloudgw's vault).  What arrived on the server is checked by the gateway's
stored names and sizes (``stored_name``, ``stored_size``).

Each workload runs inside a ``Phase``: the gateway's peak RSS is reset before
(/proc/PID/clear_refs "5" resets VmHWM) and read after (VmHWM, cross-checked
by sampling VmRSS every 50 ms), the counting proxy's bytes are read before and
after, the gateway's CPU time (utime + stime of /proc/PID/stat, all its
threads) can be read at any point (``Phase.cpu``), and a watchdog kills the
gateway if the phase outlives its timeout (a hung FUSE request would otherwise
block the benchmark for ever; killing the daemon makes the blocked system call
fail).

Failures are recorded per workload with the reason; a session whose mount
fails records every workload in it as failed, and a workload that fails marks
the later ones of its session as skipped.  Written prefixes are deleted from
the bucket (the DAV tree) after their session, so the server stays small.  What
is put on, read from or changed on the server outside the gateways goes through
a ``benchmarks.stores`` store (boto3 for S3, the DAV tree on disk for WebDAV).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import random
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from benchmarks.gateways import Gateway, GatewayError
from benchmarks.proxy import CountingProxy
from benchmarks.report import Results
from benchmarks.stores import BUCKET, DavStore, S3Store  # noqa: F401  (BUCKET: benchmarks.profile)

log = logging.getLogger("bench")

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MB, GB = 1e6, 1e9
# the gateway process's CPU time (utime + stime) per GB of file data moved
CPU_METRIC = "daemon CPU"
CPU_METRIC_WRITE = "daemon CPU, write + upload"
CPU_METRIC_FILES = "daemon CPU, create + upload"
BLOCK = 1 * MiB

WORKLOADS = {
    1: "cached-read", 2: "cold-read", 3: "seq-write", 4: "small-files", 5: "metadata",
    6: "random-read", 7: "propagation", 8: "edit", 9: "scaling",
}
TITLES = {
    1: "1 cached seq. read", 2: "2 cold seq. read", 3: "3 seq. write", 4: "4 small files", 5: "5 metadata",
    6: "6 random 4 KiB reads", 7: "7 remote change", 8: "8 4 KiB edit", 9: "9 scaling",
}


@dataclass
class Params:
    """Defaults are scaled so that `make bench` (2 servers x 4 gateways x 3 runs)
    takes about 30 minutes on 2 cores; ``--full`` gives the issue's nominal sizes."""

    size: int = 256 * MiB  # the big file (workloads 1, 2, 3, 6, 8); nominal 1 GiB
    files: int = 300  # workload 4; nominal 10,000
    file_size: int = 64 * KiB
    entries: int = 5000  # workload 5; nominal 10,000
    scale_files: tuple[int, ...] = (50, 300)  # workload 9: N for workload 4; nominal 1k..10k
    scale_entries: tuple[int, ...] = (500, 5000)  # workload 9: N for workload 5; nominal 1k..10k
    random_seconds: float = 2.0  # workload 6, each mode
    small_write_size: int = 64 * MiB  # workload 3, the file written in 4 KiB write(2)s (at most ``size``)
    write_back: float = 1.0
    poll_interval: float = 60.0  # every session but the propagation one
    prop_poll_interval: float = 10.0  # the propagation workload (7)
    phase_timeout: float = 900.0
    quick: bool = False


class PhaseTimeout(Exception):
    pass


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes so far (every thread, live or ended)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / CLOCK_TICKS


def status_kib(pid: int, field_name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Phase:
    """Peak RSS, proxy bytes and a watchdog around one workload."""

    def __init__(self, gw: Gateway, proxy: CountingProxy | None, timeout: float,
                 requests: Callable[[], dict[str, int]] | None = None) -> None:
        self.gw = gw
        self.proxy = proxy
        self.timeout = timeout
        self.requests = requests  # the server's answered requests per method so far (WebDAV: Apache's log)
        self.request_counts: dict[str, int] = {}
        self.timed_out = False
        self.peak_rss_kib = 0
        self.bytes_up = self.bytes_down = 0
        self._stop = threading.Event()

    def __enter__(self) -> "Phase":
        self.pids = self.gw.pids()
        for pid in self.pids:
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM to the current RSS
        self._sampled = 0
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self._up0, self._down0, _ = self.proxy.snapshot() if self.proxy else (0, 0, 0)
        self._requests0 = self.requests() if self.requests else {}
        self._timer = threading.Timer(self.timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._sampled = max(self._sampled, sum(status_kib(p, "VmRSS") for p in self.pids))

    def _expire(self) -> None:
        self.timed_out = True
        log.warning("%s: phase timed out after %.0f s, killing the gateway", self.gw.name, self.timeout)
        self.gw.kill()

    def cpu(self) -> float:
        """The gateway's CPU seconds so far (take differences)."""
        return cpu_seconds(self.pids)

    def bytes_now(self) -> tuple[int, int]:
        up, down, _ = self.proxy.snapshot() if self.proxy else (0, 0, 0)
        return up - self._up0, down - self._down0

    def wait_quiet(self, quiet: float, limit: float) -> None:
        """Wait until the gateway has sent nothing to the server for ``quiet`` seconds (at most ``limit``)."""
        deadline = time.monotonic() + limit
        last, since = self.bytes_now()[0], time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.bytes_now()[0]
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self._timer.cancel()
        hwm = sum(status_kib(p, "VmHWM") for p in self.pids)
        self._stop.set()
        self._sampler.join()
        self.peak_rss_kib = max(hwm, self._sampled)
        self.bytes_up, self.bytes_down = self.bytes_now()
        if self.requests:
            now = self.requests()
            self.request_counts = {m: n - self._requests0.get(m, 0) for m, n in sorted(now.items())
                                   if n > self._requests0.get(m, 0)}
        if self.timed_out and exc_type is not None:
            raise PhaseTimeout(f"timeout after {self.timeout:.0f} s") from exc


@dataclass
class Mount:
    gw: Gateway
    proxy: CountingProxy | None
    prefix: str
    mount_time: float

    @property
    def path(self) -> Path:
        return self.gw.mnt


@dataclass
class Step:
    """One workload inside a session.

    ``marks`` are the (workload, metric, unit, better) it records, so a failure
    can be recorded for each; ``rss`` the (workload, metric) rows its peak RSS
    goes to (none for an untimed setup step)."""

    name: str
    marks: list[tuple[str, str, str, str]]
    fn: Callable[[Mount, "Phase"], None]
    remote_only: set[str] = field(default_factory=set)  # metrics raw cannot have
    rss: list[tuple[str, str]] = field(default_factory=list)


def marks(title: str, *metrics: tuple[str, str, str]) -> list[tuple[str, str, str, str]]:
    return [(title, *m) for m in metrics]


def _short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, (GatewayError, PhaseTimeout)) else str(exc)
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__


class ServerBench:
    """All sessions of all gateways against one running server (S3 or WebDAV)."""

    def __init__(self, server, workdir: Path, params: Params, results: Results,  # noqa: ANN001
                 selected: set[int], gateways: list[Gateway], name: str | None = None) -> None:
        self.server = server
        self.name = name or server.name
        self.workdir = workdir
        self.params = params
        self.results = results
        self.selected = selected
        self.gateways = gateways
        self.store = S3Store(server) if hasattr(server, "endpoint_url") else DavStore(server)
        self.port = self.store.port
        self.word = self.store.word  # in metric names: sent to S3 / WebDAV
        self.blob = random.Random(1).randbytes(32 * MiB)  # the data every writer writes
        self.data_dir = workdir / "data"

    # -- plan ----------------------------------------------------------------------------------

    def sel(self, gw: Gateway) -> set[int]:
        """The selected workloads ``gw`` runs (encrypted gateways: only their own)."""
        return self.selected & gw.workloads if gw.workloads is not None else set(self.selected)

    def read_prefix(self, gw: Gateway) -> str:
        """Where the big file of workloads 1, 2, 6 is: each encrypted gateway has its own copy."""
        return f"big-{gw.name}" if gw.encrypted else "big"

    def files_points(self) -> list[int]:
        points = set()
        if 4 in self.selected:
            points.add(self.params.files)
        if 9 in self.selected:
            points.update(self.params.scale_files)
        return sorted(points)

    def meta_points(self) -> list[int]:
        points = set()
        if 5 in self.selected:
            points.add(self.params.entries)
        if 9 in self.selected:
            points.update(self.params.scale_entries)
        return sorted(points)

    def sessions(self) -> list[tuple[str, Callable[[Gateway, int], None]]]:
        out: list[tuple[str, Callable[[Gateway, int], None]]] = []
        if self.selected & {1, 2, 6}:
            out.append(("read", self.session_read))
        if self.selected & {3, 8}:
            out.append(("write", self.session_write))
        for n in self.files_points():
            out.append((f"files n={n}", lambda gw, run, n=n: self.session_files(gw, run, n)))
        for n in self.meta_points():
            out.append((f"meta n={n}", lambda gw, run, n=n: self.session_meta(gw, run, n)))
        if 7 in self.selected:
            out.append(("prop", self.session_prop))
        return out

    # -- setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the bucket and the shared read-only data (once per server)."""
        self.store.prepare()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.selected & {1, 2, 6}:
            local = self.raw_dir("big") / "file.bin"
            if not local.exists() or local.stat().st_size != self.params.size:
                self._write_local(local, self.params.size)
            t = time.monotonic()
            self.store.upload_file(local, "big/file.bin")
            log.info("[%s] setup: uploaded %s in %.1f s", self.name, _human(self.params.size), time.monotonic() - t)
            for gw in self.gateways:
                if gw.encrypted and self.sel(gw) & {1, 2, 6}:
                    self.seed(gw, local)
        for n in self.meta_points():
            t = time.monotonic()
            self.store.put_many(f"meta/n{n}", [_entry_name(i) for i in range(n)], b"x" * 100)
            d = self.raw_dir(f"meta/n{n}")
            if len(os.listdir(d)) != n:
                for i in range(n):
                    (d / _entry_name(i)).write_bytes(b"x" * 100)
            log.info("[%s] setup: %d objects under meta/n%d in %.1f s", self.name, n, n, time.monotonic() - t)

    def seed(self, gw: Gateway, local: Path) -> None:
        """The big file in ``gw``'s own (encrypted) format under its read prefix, once per server."""
        prefix, size = self.read_prefix(gw), local.stat().st_size
        if self._uploaded(gw, prefix, "file.bin", size):
            return
        t = time.monotonic()
        endpoint = getattr(self.server, "endpoint_url", None) or f"http://127.0.0.1:{self.port}"
        remote = self.store.remote(endpoint, prefix)
        gw.prepare(remote, self._exists)
        gw.seed(remote, local, "file.bin")
        if not self._uploaded(gw, prefix, "file.bin", size):
            raise RuntimeError(f"{gw.name}: the encrypted big file is not on the server after seeding")
        log.info("[%s] setup: %s wrote its encrypted %s in %.1f s", self.name, gw.name, _human(size),
                 time.monotonic() - t)

    def _exists(self, key: str) -> bool:
        return self.store.size(key) is not None

    def _uploaded(self, gw: Gateway, prefix: str, name: str, size: int) -> bool:
        """Whether file ``name`` of ``size`` bytes, written by ``gw`` at the root of ``prefix``, is on
        the server (encrypted names: an object of its stored size is)."""
        want, stored = gw.stored_size(size), gw.stored_name(name)
        if stored is not None:
            return self.store.size(f"{prefix}/{stored}") == want
        return want in self.store.sizes(prefix)

    def raw_dir(self, prefix: str) -> Path:
        d = self.workdir / "raw" / prefix
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _write_local(self, path: Path, size: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_blob(fd, self.blob, size)
        finally:
            os.close(fd)

    def delete_prefix(self, prefix: str) -> None:
        self.store.delete_prefix(prefix)

    # -- sessions ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def mounted(self, gw: Gateway, prefix: str, poll_interval: float) -> Iterator[Mount]:
        proxy = CountingProxy(self.port) if gw.remote else None
        gw.settings = gw.settings.replace(write_back=self.params.write_back, poll_interval=poll_interval)
        try:
            remote = self.store.remote(proxy.endpoint_url if proxy else "", prefix)
            if gw.remote:
                self.store.ensure_prefix(prefix)  # a WebDAV mount's folder must exist (S3: nothing to do)
                gw.prepare(remote, self._exists)  # e.g. an encrypted remote's vault (not timed)
            t = time.monotonic()
            gw.mount(remote)
            mount = Mount(gw, proxy, prefix, time.monotonic() - t)
            try:
                yield mount
            finally:
                try:
                    gw.umount()
                except Exception as exc:  # noqa: BLE001
                    log.warning("%s: unmount failed: %s", gw.name, exc)
                    gw.kill()
        finally:
            if proxy:
                proxy.close()
            if gw.remote:
                shutil.rmtree(gw.cache_dir, ignore_errors=True)

    def run_session(self, gw: Gateway, run: int, prefix: str, steps: list[Step],
                    before: Callable[[], None] | None = None, cleanup: bool = False,
                    poll_interval: float | None = None) -> None:
        p = self.params
        try:
            if before:
                before()
            with self.mounted(gw, prefix, poll_interval or p.poll_interval) as m:
                failed: str | None = None
                for step in steps:
                    if failed:
                        self._fail_step(gw, run, step, failed)
                        continue
                    try:
                        ph = Phase(gw, m.proxy, p.phase_timeout, self.store.requests if gw.remote else None)
                        try:
                            with ph:
                                step.fn(m, ph)
                        finally:  # also for a failed step: what it asked the server is evidence
                            if gw.remote and step.marks:
                                self.record_requests(step, gw, run, ph.request_counts)
                        if gw.remote:
                            for workload, metric in step.rss:
                                self.results.add(self.name, workload, metric, "MiB", "lower", gw.name, run,
                                                 ph.peak_rss_kib / 1024, kind="rss")
                    except Exception as exc:  # noqa: BLE001
                        reason = _short_error(exc)
                        log.warning("[%s] %s, %s: failed: %s", self.name, gw.name, step.name, reason)
                        self._fail_step(gw, run, step, reason)
                        failed = f"skipped ({step.name} failed)"
        except Exception as exc:  # noqa: BLE001  (the mount, or the setup before it)
            reason = _short_error(exc)
            log.warning("[%s] %s: session %s failed: %s", self.name, gw.name, prefix, reason)
            for step in steps:
                self._fail_step(gw, run, step, reason)
        finally:
            if cleanup and gw.remote:
                try:
                    self.delete_prefix(prefix)
                except Exception as exc:  # noqa: BLE001
                    log.warning("[%s] could not delete %s: %s", self.name, prefix, exc)
            if cleanup and not gw.remote:
                shutil.rmtree(self.workdir / "raw" / prefix, ignore_errors=True)

    def record_requests(self, step: Step, gw: Gateway, run: int, counts: dict[str, int]) -> None:
        """The server's requests during a step, per method (a table of their own; WebDAV only)."""
        if self.store.requests is None:
            return
        workload = step.marks[0][0]
        for method in ("total", *counts):
            n = sum(counts.values()) if method == "total" else counts[method]
            self.results.add(self.name, workload, f"{step.name}: {method}", "requests", "lower", gw.name, run, n,
                             kind="requests")
        log.info("[%s] run %d %-8s %-22s requests: %s", self.name, run + 1, gw.name, step.name,
                 ", ".join(f"{m} {n}" for m, n in counts.items()) or "none")

    def _fail_step(self, gw: Gateway, run: int, step: Step, reason: str) -> None:
        for workload, metric, unit, better in step.marks:
            if not gw.remote and metric in step.remote_only:
                continue
            if not self.results.has(self.name, workload, metric, gw.name, run):
                self.results.fail(self.name, workload, metric, unit, better, gw.name, run, reason)

    def record(self, workload: str, metric: str, unit: str, better: str, gw: Gateway, run: int,
               value: float) -> None:
        self.results.add(self.name, workload, metric, unit, better, gw.name, run, value)
        log.info("[%s] run %d %-8s %-22s %-34s %10s %s", self.name, run + 1, gw.name, workload, metric,
                 f"{value:.4g}", unit)

    # 1, 2, 6 ----------------------------------------------------------------------------------

    def session_read(self, gw: Gateway, run: int) -> None:
        p, sel = self.params, self.sel(gw)
        if not sel & {1, 2, 6}:
            return
        size = p.size
        w1, w2, w6 = TITLES[1], TITLES[2], TITLES[6]

        def cold(m: Mount, ph: Phase) -> None:
            path = m.path / "file.bin"
            drop_caches()
            cpu0 = ph.cpu()
            n, seconds, ttfb = read_sequential(path)
            cpu = ph.cpu() - cpu0
            if n != size:
                raise RuntimeError(f"read {n} bytes, expected {size}")
            self.check_sample(path, size)
            if 2 in sel:
                self.record(w2, "throughput", "MB/s", "higher", gw, run, size / seconds / MB)
                self.record(w2, "time to first byte", "ms", "lower", gw, run, ttfb * 1000)
                if gw.remote:
                    up, down = ph.bytes_now()
                    self.record(w2, f"received from {self.word}", "MiB", "lower", gw, run, down / MiB)
                    self.record(w2, CPU_METRIC, "s/GB", "lower", gw, run, cpu / (size / GB))

        def cached(m: Mount, ph: Phase) -> None:
            path = m.path / "file.bin"
            drop_caches()
            n, seconds, _ = read_sequential(path)
            if n != size:
                raise RuntimeError(f"read {n} bytes, expected {size}")
            self.record(w1, "throughput", "MB/s", "higher", gw, run, size / seconds / MB)
            # the same file again without dropping the page cache: the kernel cache warm
            n, seconds, _ = read_sequential(path)
            if n != size:
                raise RuntimeError(f"re-read {n} bytes, expected {size}")
            self.record(w1, "re-read, page cache warm", "MB/s", "higher", gw, run, size / seconds / MB)
            if gw.remote:
                self.record(w1, f"received from {self.word}", "MiB", "lower", gw, run, ph.bytes_now()[1] / MiB)

        def randoms(m: Mount, ph: Phase) -> None:
            path = m.path / "file.bin"
            drop_caches()
            self.record(w6, "buffered", "ops/s", "higher", gw, run, random_reads(path, size, p.random_seconds))
            drop_caches()
            try:
                rate = random_reads(path, size, p.random_seconds, direct=True)
            except OSError as exc:
                self.results.fail(self.name, w6, "O_DIRECT", "ops/s", "higher", gw.name, run,
                                  f"O_DIRECT: {exc.strerror or exc}")
                return
            self.record(w6, "O_DIRECT", "ops/s", "higher", gw, run, rate)

        steps = [Step("cold read", marks(w2, ("throughput", "MB/s", "higher"), ("time to first byte", "ms", "lower"),
                                         (f"received from {self.word}", "MiB", "lower"),
                                         (CPU_METRIC, "s/GB", "lower")) if 2 in sel else [],
                      cold, remote_only={f"received from {self.word}", CPU_METRIC},
                      rss=[(w2, "peak RSS")] if 2 in sel else [])]
        if 1 in sel:
            steps.append(Step("cached read", marks(w1, ("throughput", "MB/s", "higher"),
                                                   ("re-read, page cache warm", "MB/s", "higher"),
                                                   (f"received from {self.word}", "MiB", "lower")),
                              cached, remote_only={f"received from {self.word}"}, rss=[(w1, "peak RSS")]))
        if 6 in sel:
            steps.append(Step("random reads", marks(w6, ("buffered", "ops/s", "higher"), ("O_DIRECT", "ops/s", "higher")),
                              randoms, rss=[(w6, "peak RSS")]))
        self.run_session(gw, run, self.read_prefix(gw), steps)

    def check_sample(self, path: Path, size: int) -> None:
        """Compare a few blocks read through the mount with the expected data."""
        rng = random.Random(size)
        fd = os.open(path, os.O_RDONLY)
        try:
            for off in [0, size - BLOCK, *(rng.randrange(size // BLOCK) * BLOCK for _ in range(3))]:
                off = max(0, off)
                got = os.pread(fd, min(BLOCK, size - off), off)
                if got != expected_at(self.blob, off, len(got)):
                    raise RuntimeError(f"wrong data read at offset {off}")
        finally:
            os.close(fd)

    # 3, 8 -------------------------------------------------------------------------------------

    def session_write(self, gw: Gateway, run: int) -> None:
        p, sel = self.params, self.sel(gw)
        if not sel & {3, 8}:
            return
        size = p.size
        prefix = f"write/{gw.name}-r{run + 1}"
        key = f"{prefix}/big.bin"
        w3, w8 = TITLES[3], TITLES[8]

        def write(m: Mount, ph: Phase) -> None:
            path = m.path / "big.bin"
            cpu0 = ph.cpu()
            t0 = time.monotonic()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_blob(fd, self.blob, size)
            finally:
                os.close(fd)
            t_close = time.monotonic()
            if 3 in sel:
                self.record(w3, "write until close", "MB/s", "higher", gw, run, size / (t_close - t0) / MB)
            if not gw.remote:
                return
            self.wait_uploaded(gw, lambda: self._uploaded(gw, prefix, "big.bin", size))
            t_remote = time.monotonic()
            cpu = ph.cpu() - cpu0
            if 3 in sel:
                self.record(w3, "close → on remote", "s", "lower", gw, run, t_remote - t_close)
                self.record(w3, "write + upload", "MB/s", "higher", gw, run, size / (t_remote - t0) / MB)
                self.record(w3, f"sent to {self.word}", "MiB", "lower", gw, run, ph.bytes_now()[0] / MiB)
                self.record(w3, CPU_METRIC_WRITE, "s/GB", "lower", gw, run, cpu / (size / GB))

        def edit(m: Mount, ph: Phase) -> None:
            path = m.path / "big.bin"
            mid = (size // 2) // (4 * KiB) * (4 * KiB)
            patch = random.Random(f"patch-{run}").randbytes(4 * KiB)  # unlike the data written
            if gw.remote:  # let any upload still going on from workload 3 finish first
                ph.wait_quiet(quiet=2.0, limit=120)
            etag0 = self.store.revision(key) if gw.remote else None
            up0 = ph.bytes_now()[0]
            t0 = time.monotonic()
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, patch, mid)
            finally:
                os.close(fd)
            t_close = time.monotonic()
            self.record(w8, "write + close", "ms", "lower", gw, run, (t_close - t0) * 1000)
            if not gw.remote:
                return
            checked = {etag0}

            def has_patch() -> bool:
                # a new ETag alone is not enough: a gateway may upload the old content once more
                etag = self.store.revision(key)
                if etag is None or etag in checked:
                    return False
                checked.add(etag)
                return self.store.read_range(key, mid, 4 * KiB) == patch

            self.wait_uploaded(gw, has_patch)
            t_remote = time.monotonic()
            up = ph.bytes_now()[0] - up0
            self.record(w8, "edit → on remote", "s", "lower", gw, run, t_remote - t0)
            self.record(w8, f"sent to {self.word}", "MiB", "lower", gw, run, up / MiB)

        small_size = min(size, p.small_write_size)

        def write_4k(m: Mount, ph: Phase) -> None:
            # what cp/tar/most programs do: many small write(2)s (each one FUSE request without writeback cache)
            path = m.path / "small-writes.bin"
            t0 = time.monotonic()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_blob(fd, self.blob, small_size, block=4 * KiB)
            finally:
                os.close(fd)
            self.record(w3, f"4 KiB writes, {_human(small_size)}, until close", "MB/s", "higher", gw, run,
                        small_size / (time.monotonic() - t0) / MB)

        w3_marks = marks(w3, ("write until close", "MB/s", "higher"), ("close → on remote", "s", "lower"),
                         ("write + upload", "MB/s", "higher"), (f"sent to {self.word}", "MiB", "lower"),
                         (CPU_METRIC_WRITE, "s/GB", "lower"))
        steps = [Step("write", w3_marks if 3 in sel else [], write,
                      remote_only={"close → on remote", "write + upload", f"sent to {self.word}", CPU_METRIC_WRITE},
                      rss=[(w3, "peak RSS")] if 3 in sel else [])]
        if 8 in sel:
            steps.append(Step("edit", marks(w8, ("write + close", "ms", "lower"), ("edit → on remote", "s", "lower"),
                                            (f"sent to {self.word}", "MiB", "lower")),
                              edit, remote_only={"edit → on remote", f"sent to {self.word}"}, rss=[(w8, "peak RSS")]))
        if 3 in sel:
            steps.append(Step("4 KiB writes", marks(w3, (f"4 KiB writes, {_human(small_size)}, until close", "MB/s",
                                                         "higher")), write_4k))
        self.run_session(gw, run, prefix, steps, cleanup=True)

    def wait_uploaded(self, gw: Gateway, done: Callable[[], bool], interval: float = 0.1) -> None:
        """cloudgw: ``sync --wait`` (then check); others: poll the bucket until ``done``."""
        timeout = self.params.phase_timeout
        if gw.flush(timeout):
            if not done():
                raise RuntimeError("sync --wait returned but the remote does not have the data")
            return
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"not on the remote after {timeout:.0f} s")
            time.sleep(interval)

    # 4, 9 -------------------------------------------------------------------------------------

    def session_files(self, gw: Gateway, run: int, n: int) -> None:
        p, sel = self.params, self.sel(gw)
        prefix = f"files/{gw.name}-r{run + 1}-n{n}"
        targets = []
        if 4 in sel and n == p.files:
            targets.append((TITLES[4], ""))
        if 9 in sel and n in p.scale_files:
            targets.append((TITLES[9], f" N={n:,}"))
        if not targets:
            return

        def create(m: Mount, ph: Phase) -> None:
            d = m.path / "d"
            d.mkdir()
            cpu0 = ph.cpu()
            t0 = time.monotonic()
            blob, fs = self.blob, p.file_size
            for i in range(n):
                fd = os.open(d / _entry_name(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    off = (i * 4099 * 16) % (len(blob) - fs)
                    os.write(fd, blob[off:off + fs])
                finally:
                    os.close(fd)
            t_close = time.monotonic()
            for title, suffix in targets:
                self.record(title, "creates" + suffix, "files/s", "higher", gw, run, n / (t_close - t0))
            if not gw.remote:
                return
            t_remote = self.wait_listing(gw, prefix, "d", n, fs)
            cpu = ph.cpu() - cpu0
            for title, suffix in targets:
                self.record(title, "close → all on remote" + suffix, "s", "lower", gw, run, t_remote - t_close)
                self.record(title, "create + upload" + suffix, "files/s", "higher", gw, run, n / (t_remote - t0))
                self.record(title, CPU_METRIC_FILES + suffix, "s/GB", "lower", gw, run, cpu / (n * fs / GB))

        step_marks = []
        for title, suffix in targets:
            step_marks += marks(title, ("creates" + suffix, "files/s", "higher"),
                                ("close → all on remote" + suffix, "s", "lower"),
                                ("create + upload" + suffix, "files/s", "higher"),
                                (CPU_METRIC_FILES + suffix, "s/GB", "lower"))
        step = Step(f"{n} files", step_marks, create,
                    remote_only={m for _, m, _, _ in step_marks if not m.startswith("creates")},
                    rss=[(title, f"peak RSS, files{suffix}" if suffix else "peak RSS") for title, suffix in targets])

        def read_back(m: Mount, ph: Phase) -> None:
            # the files just written, read whole (open, read, close) with the page cache dropped:
            # the gateway serves them from its own disk cache
            d = m.path / "d"
            drop_caches()
            t0 = time.monotonic()
            for i in range(n):
                fd = os.open(d / _entry_name(i), os.O_RDONLY)
                try:
                    if len(os.read(fd, p.file_size + 1)) != p.file_size:
                        raise RuntimeError(f"{_entry_name(i)}: short read")
                finally:
                    os.close(fd)
            rate = n / (time.monotonic() - t0)
            for title, suffix in targets:
                self.record(title, "reads (cached)" + suffix, "files/s", "higher", gw, run, rate)

        read_marks = []
        for title, suffix in targets:
            read_marks += marks(title, ("reads (cached)" + suffix, "files/s", "higher"))
        self.run_session(gw, run, prefix, [step, Step(f"{n} files read", read_marks, read_back)], cleanup=True)

    def wait_listing(self, gw: Gateway, prefix: str, folder: str, n: int, size: int) -> float:
        """When all n files of ``size`` in ``folder`` of the mount of ``prefix`` are on the remote
        (monotonic time; objects of the gateway's stored size, below prefix/folder/ or, with
        encrypted names, below prefix/).

        cloudgw: ``sync --wait`` returns, then a listing must confirm.  Others:
        list the prefix until complete; the time is the middle of the first
        complete listing (a listing of 10,000 keys takes moto a few seconds)."""
        timeout = self.params.phase_timeout
        where = f"{prefix}/{folder}/" if gw.names_in_clear() else f"{prefix}/"
        stored = gw.stored_size(size)

        def count() -> int:
            return sum(1 for s in self.store.sizes(where) if s == stored)

        if gw.flush(timeout):
            t = time.monotonic()
            have = count()
            if have != n:
                raise RuntimeError(f"sync --wait returned with {have}/{n} objects on the remote")
            return t
        deadline = time.monotonic() + timeout
        while True:
            t_start = time.monotonic()
            have = count()
            t_end = time.monotonic()
            if have == n:
                return (t_start + t_end) / 2
            if t_end > deadline:
                raise RuntimeError(f"{have}/{n} objects on the remote after {timeout:.0f} s")
            time.sleep(max(0.2, (t_end - t_start)))

    # 5, 9 -------------------------------------------------------------------------------------

    def session_meta(self, gw: Gateway, run: int, n: int) -> None:
        p, sel = self.params, self.sel(gw)
        targets = []
        if 5 in sel and n == p.entries:
            targets.append((TITLES[5], ""))
        if 9 in sel and n in p.scale_entries:
            targets.append((TITLES[9], f" N={n:,}"))
        if not targets:
            return
        names = [_entry_name(i) for i in range(n)]

        def meta(m: Mount, ph: Phase) -> None:
            for title, suffix in targets:
                if gw.remote:
                    self.record(title, "mount" + suffix, "s", "lower", gw, run, m.mount_time)
            t = time.monotonic()
            subprocess.run(["ls", "-l", str(m.path)], stdout=subprocess.DEVNULL, check=True,
                           timeout=p.phase_timeout)
            first = time.monotonic() - t
            have = len(os.listdir(m.path))
            if have != n:
                raise RuntimeError(f"the listing shows {have} entries, expected {n}")
            for title, suffix in targets:
                self.record(title, "first ls -l" + suffix, "s", "lower", gw, run, first)
            # each metadata row twice: with the kernel's dentry/inode caches dropped (every entry
            # is a LOOKUP/READDIRPLUS answered by the gateway's own cache) and warm (the same
            # walk again at once: the kernel answers what its entry/attribute timeouts allow)
            for variant in ("cold", "warm"):
                if variant == "cold":
                    drop_caches()
                t = time.monotonic()
                subprocess.run(["ls", "-lR", str(m.path)], stdout=subprocess.DEVNULL, check=True,
                               timeout=p.phase_timeout)
                rate = n / (time.monotonic() - t)
                for title, suffix in targets:
                    self.record(title, f"ls -lR ({variant})" + suffix, "entries/s", "higher", gw, run, rate)
            for variant in ("cold", "warm"):
                if variant == "cold":
                    drop_caches()
                base = m.path
                t = time.monotonic()
                for name in names:
                    os.lstat(base / name)
                rate = n / (time.monotonic() - t)
                for title, suffix in targets:
                    self.record(title, f"stat ({variant})" + suffix, "stats/s", "higher", gw, run, rate)
            # names that do not exist, asked for twice (Samba's probes, build tools, imports): the
            # second pass shows whether the gateway lets the kernel keep "no such file"
            missing = [m.path / f"missing-{name}" for name in names]
            for variant in ("first", "again"):
                t = time.monotonic()
                for path in missing:
                    try:
                        os.lstat(path)
                    except FileNotFoundError:
                        pass
                    else:
                        raise RuntimeError(f"{path} exists")
                rate = n / (time.monotonic() - t)
                for title, suffix in targets:
                    self.record(title, f"stat missing ({variant})" + suffix, "stats/s", "higher", gw, run, rate)

        step_marks = []
        for title, suffix in targets:
            step_marks += marks(title, ("mount" + suffix, "s", "lower"), ("first ls -l" + suffix, "s", "lower"),
                                ("ls -lR (cold)" + suffix, "entries/s", "higher"),
                                ("ls -lR (warm)" + suffix, "entries/s", "higher"),
                                ("stat (cold)" + suffix, "stats/s", "higher"),
                                ("stat (warm)" + suffix, "stats/s", "higher"),
                                ("stat missing (first)" + suffix, "stats/s", "higher"),
                                ("stat missing (again)" + suffix, "stats/s", "higher"))
        step = Step(f"{n} entries", step_marks, meta,
                    remote_only={m for _, m, _, _ in step_marks if m.startswith("mount")},
                    rss=[(title, f"peak RSS, entries{suffix}" if suffix else "peak RSS") for title, suffix in targets])
        self.run_session(gw, run, f"meta/n{n}", [step])

    # 7 ----------------------------------------------------------------------------------------

    def session_prop(self, gw: Gateway, run: int) -> None:
        if not gw.remote or 7 not in self.sel(gw):
            return
        p = self.params
        prefix = f"prop/{gw.name}-r{run + 1}"
        w7 = TITLES[7]
        old = random.Random(f"old{run}").randbytes(64 * KiB)
        new = random.Random(f"new{run}").randbytes(64 * KiB)

        def before() -> None:
            self.store.put(f"{prefix}/file.bin", old)

        def prop(m: Mount, ph: Phase) -> None:
            path, fresh = m.path / "file.bin", m.path / "new.bin"
            if path.read_bytes() != old:
                raise RuntimeError("the mount does not show the original content")
            time.sleep(1.0)
            self.store.put(f"{prefix}/file.bin", new)
            self.store.put(f"{prefix}/new.bin", new)
            t0 = time.monotonic()
            deadline = t0 + 3 * p.prop_poll_interval + 60
            changed = created = None
            while changed is None or created is None:
                now = time.monotonic()
                if now > deadline:
                    break
                if changed is None and path.read_bytes() == new:
                    changed = time.monotonic() - t0
                    self.record(w7, "changed file visible", "s", "lower", gw, run, changed)
                if created is None:
                    with contextlib.suppress(FileNotFoundError):
                        if fresh.read_bytes() == new:
                            created = time.monotonic() - t0
                            self.record(w7, "new file visible", "s", "lower", gw, run, created)
                time.sleep(0.05)
            if changed is None or created is None:  # what was seen is recorded, the rest fails
                what = "the changed file's new content" if changed is None else "the new file"
                if changed is None and created is None:
                    what = "neither change"
                raise RuntimeError(f"{what} not visible after {time.monotonic() - t0:.0f} s")

        self.run_session(gw, run, prefix, [Step("propagation", marks(w7, ("changed file visible", "s", "lower"),
                                                                     ("new file visible", "s", "lower")),
                                                prop, rss=[(w7, "peak RSS")])],
                         before=before, cleanup=True, poll_interval=p.prop_poll_interval)


# -- I/O helpers ----------------------------------------------------------------------------------

def _entry_name(i: int) -> str:
    return f"f{i:06d}"


def _human(n: int) -> str:
    from benchmarks.report import human_bytes

    return human_bytes(n)


def write_blob(fd: int, blob: bytes, size: int, block: int = BLOCK) -> None:
    """Write ``size`` bytes in ``block``-sized write(2)s; byte i is blob[i % len(blob)]."""
    view = memoryview(blob)
    off = 0
    while off < size:
        start = off % len(blob)
        n = min(block, size - off, len(blob) - start)
        written = os.write(fd, view[start:start + n])
        off += written


def expected_at(blob: bytes, off: int, n: int) -> bytes:
    out = bytearray()
    while n:
        start = off % len(blob)
        k = min(n, len(blob) - start)
        out += blob[start:start + k]
        off += k
        n -= k
    return bytes(out)


def read_sequential(path: Path) -> tuple[int, float, float]:
    """Read the whole file in 1 MiB requests: (bytes, seconds, seconds to the first byte incl. open)."""
    buf = bytearray(BLOCK)
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        n = os.readv(fd, [buf])
        ttfb = time.monotonic() - t0
        total = n
        while n:
            n = os.readv(fd, [buf])
            total += n
    finally:
        os.close(fd)
    return total, time.monotonic() - t0, ttfb


def random_reads(path: Path, size: int, seconds: float, direct: bool = False) -> float:
    """4 KiB reads at random aligned offsets (same sequence every time) for ``seconds``: ops/s."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    buf = mmap.mmap(-1, 4 * KiB)  # page-aligned, as O_DIRECT wants
    rng = random.Random(4096)
    blocks = size // (4 * KiB)
    n = 0
    try:
        t0 = time.monotonic()
        deadline = t0 + seconds
        while True:
            for _ in range(32):
                if os.preadv(fd, [buf], rng.randrange(blocks) * 4 * KiB) != 4 * KiB:
                    raise RuntimeError("short read")
            n += 32
            now = time.monotonic()
            if now >= deadline:
                return n / (now - t0)
    finally:
        os.close(fd)
        buf.close()
