"""Memory and idle-poll cost at scale (issue 15): ``python -m benchmarks.scale [--entries 10000,100000]
[--large] [--remotes file,moto] [--with-rclone | --no-with-rclone] [--polls 2] [--out DIR]``.

The claim under test: the daemon's memory is flat in the number of entries beyond what the
kernel's inode cache holds (``cloudgw/metadata/store.py``: the kernel's inodes are pinned,
everything else is held weakly), and an idle poll of a large unchanged tree costs time and
requests in proportion to the listing.

For each remote (``file``: a local directory; ``moto``: a fresh loopback moto server per size,
``start_moto(auth=False)`` as ``benchmarks.run``) and each N, the tree is put on the remote
directly, never through a mount: directories of ``--per-dir`` (1,000) files of 6 bytes each
(file://: plain writes; S3: ``S3Store.put_many``, boto3 from 8 threads, timed).  Then cloudgw
is mounted as a user does it (its CLI, daemonized, ``--poll-interval 86400`` so polls run only
when triggered, ``--metrics-addr``) and its daemon is read at each step (VmRSS, VmHWM, open
descriptors, threads from ``/proc/PID``; ``inodes_in_memory`` from ``cloudgw status``):

1. after the mount;
2. after ``ls -lR`` of the whole tree (the first one: every folder is listed from the remote),
   whose time gives entries/s;
3. after each of ``--polls`` triggered polls (the control socket's ``poll`` op, which returns
   when the poll finished; the same as the poll loop runs), with the poll's time, the daemon's
   CPU time, its remote calls (the daemon's ``cloudgw_remote_requests_total`` by op), on S3 its
   HTTP requests, and the changes it applied (its log line; an idle poll applies none);
4. after ``echo 3 > /proc/sys/vm/drop_caches``: the kernel FORGETs its inodes, so cloudgw then
   holds only what is pinned (waited for until ``inodes_in_memory`` stops moving);
5. after a second ``ls -lR`` (served from the metadata store): whether memory freed in 4 is
   taken again or more is needed;
6. after a remount with the same cache dir, and after one poll there: the kernel knows nothing,
   the store everything, so the poll's peak over the remount's RSS is the poll's own memory.

"peak" is VmHWM during the step (reset through ``/proc/PID/clear_refs`` before it).  Per-entry
memory = (RSS after ls -lR − RSS after mount) / N; "left after drop_caches" = RSS after
drop_caches − RSS after mount.  CPython keeps an arena of small objects while any object in it
lives, so freed memory often stays resident (and is reused): read it with ``inodes_in_memory``,
which says what is still referenced, and with step 5.

HTTP requests: each gateway reaches moto through its own ``CountingProxy``
(``benchmarks/proxy.py``), which counts connections; moto closes every connection after one
response, so connections are requests.  That is checked before each S3 run (3 requests made
through the proxy must show as 3 connections); if it does not, a note under the tables says that
the column counts connections.  The daemon's own counters count contract calls (a paged ``list`` is one).

``--with-rclone`` (default: on when rclone is installed): ``rclone mount --vfs-cache-mode full``
on the same remote (local backend on file://; through its own proxy on S3), measured at steps
1, 2 and 4, for RSS side by side.  Each gateway starts after a drop_caches.

``--large`` adds 1,000,000 entries (outside CI; on moto over an hour: it takes ~300 puts/s on
2 cores, and each page of a listing walks every key of the bucket).  Results: a table on stdout
and ``scale-STAMP.json`` / ``.md`` in ``--out`` (``benchmarks/results``).  Needs root and
/dev/fuse; drops the page cache machine-wide.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from benchmarks.gateways import (CLOUDGW, CloudGW, Gateway, GatewayError, Rclone, Remote, Settings, _wait_mounted,
                                 rclone_binary)
from benchmarks.mount_time import LocalRclone
from benchmarks.proxy import CountingProxy, counting_proxy
from benchmarks.report import fmt, load_average, machine_description

BODY = b"scale\n"  # 6 bytes per file
LARGE = 1_000_000
PREFIX = "tree"  # the S3 prefix mounted
POLL_TIMEOUT = 3600.0


@dataclass
class Point:
    """The gateway process at one step (KiB; pinned/held: cloudgw's ``inodes_in_memory``)."""

    step: str
    rss_kib: int
    peak_kib: int
    fds: int
    threads: int
    pinned: int | None = None
    held: int | None = None


@dataclass
class Poll:
    step: str  # "poll 1", ..., "poll after remount"
    seconds: float
    calls: dict[str, float]  # the daemon's remote calls during the poll, by op
    http: int | None  # S3: connections through the proxy (requests: see the module docstring)
    changes: int  # what the daemon's log says the poll applied (0: idle)
    cpu_s: float  # the daemon's CPU time (user + system) during the poll: its own cost, not the server's


@dataclass
class Run:
    remote: str
    entries: int
    gateway: str
    mount_s: float = 0.0
    ls_s: float = 0.0
    ls_cpu_s: float = 0.0  # the gateway's CPU time during ls -lR
    listed: int = 0  # files and folders in the ls -lR output
    ls_again_s: float = 0.0  # cloudgw: ls -lR after drop_caches (metadata from its store, no remote)
    points: list[Point] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    error: str | None = None

    def at(self, step: str) -> Point | None:
        return next((p for p in self.points if p.step == step), None)


# -- the gateway process ----------------------------------------------------------------------

def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def _cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


def _in_memory(mnt: Path) -> tuple[int, int]:
    from cloudgw.control import request

    counts = next(request(mnt, {"op": "status"}))["inodes_in_memory"]
    return counts["pinned"], counts["held"]


def _point(step: str, pid: int, mnt: Path | None) -> Point:
    s = _proc_status(pid)
    p = Point(step, s["VmRSS"], s["VmHWM"], len(os.listdir(f"/proc/{pid}/fd")), s["Threads"])
    if mnt is not None:
        p.pinned, p.held = _in_memory(mnt)
    return p


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3")


def _settle(mnt: Path | None) -> None:
    """Wait until the FORGETs of a drop have reached the daemon (its pinned count stops moving)."""
    if mnt is None:
        time.sleep(2)
        return
    last, deadline = None, time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _in_memory(mnt)
        if now == last:
            return
        last = now


def _calls(port: int) -> dict[str, float]:
    """The daemon's ``cloudgw_remote_requests_total`` so far, summed by op."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as resp:
        text = resp.read().decode()
    calls: dict[str, float] = {}
    for m in re.finditer(r"^cloudgw_remote_requests_total\{([^}]*)\} (\S+)$", text, re.M):
        op = re.search(r'op="([^"]*)"', m.group(1))
        if op:
            calls[op.group(1)] = calls.get(op.group(1), 0.0) + float(m.group(2))
    return calls


class ScaleCloudGW(CloudGW):
    """cloudgw with its metrics served (a poll's remote calls), on S3 or on ``file://`` a directory."""

    metrics_port = 0
    keep_cache = False  # a remount: same cache dir and metadata (``_fresh_dirs`` would wipe them)

    def _fresh_dirs(self) -> None:
        if not self.keep_cache:
            super()._fresh_dirs()

    def _extra_mount_args(self) -> list[str]:
        return ["--metrics-addr", f"127.0.0.1:{self.metrics_port}"]

    def mount(self, remote: Remote | Path) -> None:  # type: ignore[override]
        from tests.servers import free_port

        self.metrics_port = free_port()
        if not isinstance(remote, Path):
            return super().mount(remote)
        self._fresh_dirs()  # as benchmarks.mount_time.LocalCloudGW, plus the metrics address
        self._env_cache = dict(os.environ)
        proc = subprocess.run([CLOUDGW, "mount", f"file://{remote}", str(self.mnt), "--cache-dir", str(self.cache_dir),
                               "--write-back", str(self.settings.write_back),
                               "--poll-interval", str(self.settings.poll_interval), "--log-level", self.log_level,
                               *self._extra_mount_args()], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise GatewayError(f"cloudgw mount failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
        _wait_mounted(self.mnt, None, self.cache_dir / "cloudgw.log", timeout=10)


def _poll(step: str, gw: ScaleCloudGW, pid: int, proxy: CountingProxy | None) -> Poll:
    """One triggered poll: the control socket's ``poll`` returns when it finished."""
    from cloudgw.control import request

    log = gw.cache_dir / "cloudgw.log"
    offset = log.stat().st_size
    calls, http = _calls(gw.metrics_port), proxy.snapshot()[2] if proxy else 0
    t, cpu = time.monotonic(), _cpu(pid)
    answers = list(request(gw.mnt, {"op": "poll"}, timeout=POLL_TIMEOUT))
    seconds, cpu = time.monotonic() - t, _cpu(pid) - cpu
    if not any(a.get("done") for a in answers):
        raise GatewayError(f"poll: {answers}")
    after = _calls(gw.metrics_port)
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    if "poll failed" in text:
        raise GatewayError("poll failed: " + text[text.index("poll failed"):][:300])
    changes = sum(int(n) for n in re.findall(r"poll: (\d+) remote changes applied", text))
    return Poll(step, seconds, {op: n - calls.get(op, 0.0) for op, n in after.items() if n - calls.get(op, 0.0)},
                proxy.snapshot()[2] - http if proxy else None, changes, cpu)


# -- the remotes --------------------------------------------------------------------------------

def _names(entries: int, per_dir: int) -> list[str]:
    return [f"d{i // per_dir:04d}/f{i % per_dir:04d}" for i in range(entries)]


def populate_file(root: Path, names: list[str]) -> None:
    made: set[str] = set()
    for name in names:
        folder = name.rpartition("/")[0]
        if folder not in made:
            (root / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        fd = os.open(root / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, BODY)
        finally:
            os.close(fd)


@contextlib.contextmanager
def moto_store() -> Iterator:
    """A fresh moto server (``S3Store`` of it, bucket made): one per size, so no size lists another's keys."""
    from benchmarks.stores import S3Store
    from tests.servers.moto import start_moto

    with start_moto(auth=False) as server:
        store = S3Store(server)
        store.prepare()
        yield store


def _connections_are_requests(proxy: CountingProxy, store) -> bool:  # noqa: ANN001  (benchmarks.stores.S3Store)
    """Three requests through the proxy show as three connections (moto closes after each response)."""
    import boto3

    from benchmarks.stores import BUCKET

    s = store.server
    client = boto3.session.Session().client("s3", endpoint_url=proxy.endpoint_url, region_name=s.region,
                                            aws_access_key_id=s.access_key, aws_secret_access_key=s.secret_key)
    before = proxy.snapshot()[2]
    for _ in range(3):
        client.head_bucket(Bucket=BUCKET)
    time.sleep(0.2)
    return proxy.snapshot()[2] - before == 3


# -- one gateway on one tree ----------------------------------------------------------------------

def _mount(gw: Gateway, remote: Remote | Path) -> tuple[int, float]:
    """Mount after a drop_caches: (the gateway's one process, seconds)."""
    drop_caches()
    t = time.monotonic()
    gw.mount(remote)  # type: ignore[arg-type]
    seconds = time.monotonic() - t
    pids = gw.pids()
    if len(pids) != 1:
        raise GatewayError(f"{gw.name}: {len(pids)} processes on {gw.mnt}")
    return pids[0], seconds


def _ls(gw: Gateway, pid: int, expect: int) -> tuple[float, float, int]:
    """``ls -lR`` of the whole mount: (seconds, the gateway's CPU seconds, files and folders seen)."""
    _reset_peak(pid)
    t, cpu = time.monotonic(), _cpu(pid)
    out = subprocess.run(["ls", "-lR", str(gw.mnt)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=7200)
    seconds, cpu = time.monotonic() - t, _cpu(pid) - cpu
    listed = sum(1 for line in out.stdout.splitlines() if line[:1] in (b"-", b"d"))
    if out.returncode != 0 or listed != expect:
        raise GatewayError(f"ls -lR: exit {out.returncode}, {listed} of {expect} entries: "
                           f"{out.stderr.decode(errors='replace')[-300:]}")
    return seconds, cpu, listed


def measure(gw: Gateway, remote: Remote | Path, kind: str, entries: int, folders: int, polls: int,
            proxy: CountingProxy | None) -> Run:
    """The steps of the module docstring; rclone: mount, ls -lR and drop_caches only."""
    run = Run(kind, entries, gw.name)
    mnt = gw.mnt if isinstance(gw, ScaleCloudGW) else None  # cloudgw's status (inodes_in_memory)

    def polled(step: str, pid: int) -> None:
        _reset_peak(pid)
        run.polls.append(_poll(step, gw, pid, proxy))  # type: ignore[arg-type]
        run.points.append(_point(step, pid, mnt))

    try:
        pid, run.mount_s = _mount(gw, remote)
        run.points.append(_point("mount", pid, mnt))
        run.ls_s, run.ls_cpu_s, run.listed = _ls(gw, pid, entries + folders)
        run.points.append(_point("ls -lR", pid, mnt))
        if isinstance(gw, ScaleCloudGW):
            for i in range(polls):
                polled(f"poll {i + 1}", pid)
        drop_caches()
        _settle(mnt)
        run.points.append(_point("drop_caches", pid, mnt))
        if isinstance(gw, ScaleCloudGW):
            run.ls_again_s = _ls(gw, pid, entries + folders)[0]  # freed memory reused, or more taken?
            run.points.append(_point("ls -lR again", pid, mnt))
            gw.umount()
            gw.keep_cache = True  # the kernel knows nothing now, the store everything: a poll's own memory
            try:
                pid = _mount(gw, remote)[0]
            finally:
                gw.keep_cache = False
            run.points.append(_point("remount", pid, mnt))
            polled("poll after remount", pid)
    except Exception as exc:  # noqa: BLE001  (recorded; the other runs go on)
        run.error = f"{type(exc).__name__}: {exc}"
        print(f"  {gw.name} {kind} N={entries}: {run.error}", file=sys.stderr)
    finally:
        try:
            gw.umount()
        except GatewayError as exc:
            run.error = run.error or f"umount: {exc}"
            gw.kill()
    return run


def run_size(kind: str, entries: int, args: argparse.Namespace, workdir: Path, settings: Settings,
             population: list[dict], notes: list[str]) -> list[Run]:
    """Populate one tree of ``entries`` files, then measure cloudgw (and rclone) on it."""
    names = _names(entries, args.per_dir)
    folders = len({n.rpartition("/")[0] for n in names})
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        t = time.monotonic()
        if kind == "file":
            root = workdir / f"file-{entries}"
            populate_file(root, names)
            os.sync()
        else:
            store = stack.enter_context(moto_store())
            store.put_many(PREFIX, names, BODY)
        seconds = time.monotonic() - t
        population.append({"remote": kind, "entries": entries, "folders": folders, "seconds": round(seconds, 1)})
        print(f"{kind} N={entries}: populated in {seconds:.1f} s ({entries / seconds:,.0f} files/s)", file=sys.stderr)
        del names
        kinds: list[type[Gateway]] = [ScaleCloudGW]
        if args.with_rclone:
            kinds.append(LocalRclone if kind == "file" else Rclone)
        for cls in kinds:
            gw = cls(workdir, settings)
            with contextlib.ExitStack() as per_gw:
                proxy = None
                if kind == "file":
                    remote: Remote | Path = root
                else:
                    proxy = per_gw.enter_context(counting_proxy(store.port))
                    if not _connections_are_requests(proxy, store):
                        notes.append(f"{kind} N={entries}, {gw.name}: connections through the proxy are NOT one per "
                                     "request; the HTTP column counts connections")
                    remote = store.remote(proxy.endpoint_url, PREFIX)
                print(f"  {gw.name} ...", file=sys.stderr)
                runs.append(measure(gw, remote, kind, entries, folders, args.polls, proxy))
                print("  " + _line(runs[-1]), file=sys.stderr)
    if kind == "file" and not args.keep_workdir:
        shutil.rmtree(root, ignore_errors=True)
    return runs


def _line(run: Run) -> str:
    parts = [f"{run.gateway}: mount {run.mount_s:.2f} s, ls -lR {run.ls_s:.1f} s (CPU {run.ls_cpu_s:.1f} s)"]
    parts += [f"{p.step} {p.rss_kib / 1024:.1f} MiB (peak {p.peak_kib / 1024:.1f}, pinned {p.pinned}, held {p.held})"
              for p in run.points]
    parts += [f"{p.step}: {p.seconds:.2f} s (CPU {p.cpu_s:.2f} s), {p.http} HTTP, calls {p.calls}, "
              f"{p.changes} changes" for p in run.polls]
    return "; ".join(parts) + (f"; ERROR {run.error}" if run.error else "")


# -- output -----------------------------------------------------------------------------------------

def _mib(kib: float | None) -> str:
    return "–" if kib is None else fmt(kib / 1024)


def _num(x: float | None) -> str:
    return "–" if x is None else fmt(x)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "–"


def _diff(run: Run, step: str, base: str, peak: bool = False) -> float | None:
    """KiB between ``step`` (its RSS, or its peak) and ``base``'s RSS."""
    a, b = run.at(base), run.at(step)
    return None if a is None or b is None else (b.peak_kib if peak else b.rss_kib) - a.rss_kib


def _per_entry(run: Run, kib: float | None) -> str:
    return "–" if kib is None else fmt(kib * 1024 / run.entries)


def _rate(run: Run, seconds: float) -> float | None:
    return run.listed / seconds if seconds and run.listed else None


def _memory_table(ours: list[Run]) -> list[str]:
    out = ["### cloudgw: memory through the kernel's inode cache (RSS, MiB; pinned/held = inodes_in_memory)", "",
           "| remote | N | after mount | after ls -lR | ls -lR: per entry (B) | after drop_caches "
           "| left after drop_caches: MiB (B/entry) | after ls -lR again | pinned/held: ls -lR → drop → again "
           "| fds: mount / ls / drop |", "|" + "---|" * 10]
    for r in ours:
        m, ls, drop, again = (r.at(s) for s in ("mount", "ls -lR", "drop_caches", "ls -lR again"))
        left = _diff(r, "drop_caches", "mount")
        pins = " → ".join(f"{p.pinned}/{p.held}" for p in (ls, drop, again) if p is not None)
        fds = " / ".join(str(p.fds) for p in (m, ls, drop) if p is not None)
        out.append(f"| {r.remote} | {r.entries:,} | {_mib(m and m.rss_kib)} | {_mib(ls and ls.rss_kib)} "
                   f"| {_per_entry(r, _diff(r, 'ls -lR', 'mount'))} | {_mib(drop and drop.rss_kib)} "
                   f"| {_mib(left)} ({_per_entry(r, left)}) | {_mib(again and again.rss_kib)} | {pins} | {fds} |")
    out += ["", "### cloudgw: memory of idle polls (MiB; peak = VmHWM during the poll)", "",
            "| remote | N | after ls -lR | peak in poll 1 | after each poll | after remount "
            "| peak in the poll after remount | that poll's own: MiB (B/entry) | after it | pinned/held in it |",
            "|" + "---|" * 10]
    for r in ours:
        ls, p1, re_, pr = (r.at(s) for s in ("ls -lR", "poll 1", "remount", "poll after remount"))
        each = ", ".join(_mib(p.rss_kib) for p in r.points if p.step.startswith("poll ") and "remount" not in p.step)
        own = _diff(r, "poll after remount", "remount", peak=True)
        out.append(f"| {r.remote} | {r.entries:,} | {_mib(ls and ls.rss_kib)} | {_mib(p1 and p1.peak_kib)} "
                   f"| {each or '–'} | {_mib(re_ and re_.rss_kib)} | {_mib(pr and pr.peak_kib)} "
                   f"| {_mib(own)} ({_per_entry(r, own)}) | {_mib(pr and pr.rss_kib)} "
                   f"| {f'{pr.pinned}/{pr.held}' if pr else '–'} |")
    return out


def _time_table(ours: list[Run], population: list[dict]) -> list[str]:
    out = ["### cloudgw: time and requests (idle poll = a poll of the unchanged tree; HTTP = requests the server "
           "got; calls = the daemon's remote calls)", "",
           "| remote | N | populate s (files/s) | mount s | ls -lR s (entries/s) | daemon CPU in ls -lR s "
           "| ls -lR again s (entries/s) | idle polls s | daemon CPU per poll s | HTTP requests per poll "
           "| remote calls per poll | changes applied |", "|" + "---|" * 12]
    for r in ours:
        pop = next((p for p in population if p["remote"] == r.remote and p["entries"] == r.entries), None)
        popcell = f"{pop['seconds']:g} ({r.entries / pop['seconds']:,.0f})" if pop and pop["seconds"] else "–"
        polls = ", ".join(fmt(p.seconds) for p in r.polls) or "–"
        cpu = ", ".join(fmt(p.cpu_s) for p in r.polls) or "–"
        http = ", ".join(str(p.http) for p in r.polls if p.http is not None) or "–"
        calls = "; ".join(sorted({", ".join(f"{op} {n:g}" for op, n in sorted(p.calls.items())) for p in r.polls}))
        changes = ", ".join(str(p.changes) for p in r.polls) or "–"
        out.append(f"| {r.remote} | {r.entries:,} | {popcell} | {fmt(r.mount_s)} | {fmt(r.ls_s)} "
                   f"({_num(_rate(r, r.ls_s))}) | {fmt(r.ls_cpu_s)} | {fmt(r.ls_again_s)} "
                   f"({_num(_rate(r, r.ls_again_s))}) | {polls} | {cpu} | {http} | {calls or '–'} | {changes} |")
    return out


def _rclone_table(ours: list[Run], theirs: dict[tuple[str, int], Run]) -> list[str]:
    out = ["### Side by side with rclone mount (RSS MiB; ratio = cloudgw ÷ rclone: ↓ better, but for entries/s)",
           "", "| remote | N | after mount: cloudgw | rclone | after ls -lR: cloudgw | rclone | ratio "
           "| per entry B: cloudgw | rclone | ratio | after drop_caches: cloudgw | rclone | ratio "
           "| ls -lR entries/s: cloudgw | rclone | ratio |", "|" + "---|" * 16]
    for r in ours:
        o = theirs.get((r.remote, r.entries))
        if o is None:
            continue
        (ma, mb), (a, b), (da, db) = ((r.at(s), o.at(s)) for s in ("mount", "ls -lR", "drop_caches"))
        pa, pb = _diff(r, "ls -lR", "mount"), _diff(o, "ls -lR", "mount")
        ra, rb = _rate(r, r.ls_s), _rate(o, o.ls_s)
        out.append(f"| {r.remote} | {r.entries:,} | {_mib(ma and ma.rss_kib)} | {_mib(mb and mb.rss_kib)} "
                   f"| {_mib(a and a.rss_kib)} | {_mib(b and b.rss_kib)} | {_ratio(a and a.rss_kib, b and b.rss_kib)} "
                   f"| {_per_entry(r, pa)} | {_per_entry(o, pb)} | {_ratio(pa, pb)} | {_mib(da and da.rss_kib)} "
                   f"| {_mib(db and db.rss_kib)} | {_ratio(da and da.rss_kib, db and db.rss_kib)} | {_num(ra)} "
                   f"| {_num(rb)} | {_ratio(ra, rb)} |")
    return out


def tables(runs: list[Run], population: list[dict]) -> list[str]:
    ours = [r for r in runs if r.gateway == "cloudgw"]
    out = _memory_table(ours) + [""] + _time_table(ours, population)
    theirs = {(r.remote, r.entries): r for r in runs if r.gateway == "rclone"}
    if theirs:
        out += [""] + _rclone_table(ours, theirs)
    errors = [r for r in runs if r.error]
    if errors:
        out += ["", "Failures:", ""] + [f"- {r.gateway} {r.remote} N={r.entries:,}: {r.error}" for r in errors]
    return out


def _versions(workdir: Path, settings: Settings, with_rclone: bool) -> dict[str, str]:
    versions = {"cloudgw": ScaleCloudGW(workdir, settings).version()}
    if with_rclone:
        versions["rclone"] = Rclone(workdir, settings).version()
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        versions["moto"] = importlib.metadata.version("moto")
    versions["python"] = sys.version.split()[0]
    return versions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", default="10000,100000", help="tree sizes, comma separated (default 10000,100000)")
    p.add_argument("--large", action="store_true", help=f"also {LARGE:,} entries (outside CI)")
    p.add_argument("--remotes", default="file,moto", help="file, moto or both (default file,moto)")
    p.add_argument("--with-rclone", action=argparse.BooleanOptionalAction, default=None,
                   help="rclone mount side by side (default: when rclone is installed)")
    p.add_argument("--polls", type=int, default=2, help="idle polls triggered per tree (default 2)")
    p.add_argument("--per-dir", type=int, default=1000, help="files per folder (default 1000)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="where JSON + Markdown go")
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("--workdir", type=Path, default=None, help="trees, caches, mountpoints (default: a temp dir)")
    p.add_argument("--keep-workdir", action="store_true", help="keep trees, caches and the gateways' logs")
    args = p.parse_args(argv)
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        sys.exit("benchmarks.scale: needs root and /dev/fuse (FUSE mounts, /proc/sys/vm/drop_caches)")
    sizes = [int(x.replace("_", "")) for x in args.entries.split(",") if x.strip()] + ([LARGE] if args.large else [])
    remotes = [r.strip() for r in args.remotes.split(",") if r.strip()]
    if set(remotes) - {"file", "moto"}:
        sys.exit(f"benchmarks.scale: unknown remote(s) {sorted(set(remotes) - {'file', 'moto'})}")
    if args.with_rclone is None:
        args.with_rclone = rclone_binary() is not None
    elif args.with_rclone and rclone_binary() is None:
        sys.exit("benchmarks.scale: rclone not installed (make deps-bench)")
    settings = Settings(write_back=1.0, poll_interval=86400.0)  # polls only when triggered
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="cloudgw-scale-"))).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    started, t0 = time.time(), time.monotonic()
    machine = machine_description(workdir)
    versions = _versions(workdir, settings, args.with_rclone)
    population: list[dict] = []
    notes: list[str] = []
    runs: list[Run] = []
    try:
        for kind in remotes:
            for entries in sizes:
                runs += run_size(kind, entries, args, workdir, settings, population, notes)
    finally:
        machine["load_at_end"] = load_average()
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    command = "python -m benchmarks.scale " + " ".join(sys.argv[1:] if argv is None else argv)
    head = [f"# cloudgw at scale: memory and idle polls ({time.strftime('%Y-%m-%d %H:%M', time.localtime(started))})",
            "", f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']} RAM, {machine['kernel']}, "
            f"disk {machine['disk']}; load average at the start {machine['load_at_start']}, at the end "
            f"{machine['load_at_end']} (other jobs may share the machine).",
            "Versions: " + "; ".join(f"{k} {v}" for k, v in versions.items()) + ".",
            f"Command: `{command.strip()}`; {args.per_dir:,} files of {len(BODY)} bytes per folder; "
            f"total time {(time.monotonic() - t0) / 60:.1f} min. How it is measured: the docstring of "
            "benchmarks/scale.py.", *[f"- {n}" for n in notes], ""]
    text = "\n".join(head + tables(runs, population)) + "\n"
    print(text)
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
        doc = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
               "duration_s": round(time.monotonic() - t0, 1), "command": command.strip(), "machine": machine,
               "versions": versions, "params": {"entries": sizes, "remotes": remotes, "per_dir": args.per_dir,
                                                "polls": args.polls, "with_rclone": args.with_rclone,
                                                "body_bytes": len(BODY)},
               "notes": notes, "population": population, "runs": [asdict(r) for r in runs]}
        (args.out / f"scale-{stamp}.json").write_text(json.dumps(doc, indent=1) + "\n")
        (args.out / f"scale-{stamp}.md").write_text(text)
        print(f"written: {args.out / f'scale-{stamp}.md'} (+ .json)", file=sys.stderr)
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
