"""SMB re-export: smbd sharing a cloudgw mount vs the same smbd share on plain ext4.

``python -m benchmarks.run --server smb`` (part of the default ``--server all``).
For each run and each target (``cloudgw``: a mount of a moto bucket, ``raw``: a
directory on the same disk as cloudgw's cache), a private smbd
(tests/servers/samba.py, the settings of contrib/samba/smb.conf.example) shares
the target on a loopback port and:

* warm-up: after dropping the page cache, one 1 MiB put (and delete), so that
  smbd's and the daemon's own pages are back, as on a running server;
* write: ``smbclient put`` of a big file (1 GiB; ``--size`` when given, the
  ``--quick`` size with ``--quick``), timed until smbclient returns (the file is
  closed); cloudgw: then the time until it is on the remote (``sync --wait``),
  and the object's size on the remote is checked;
* read: page cache dropped, ``smbclient get`` of it to /dev/null;
* SMB2 FLUSH (``strict sync = yes`` makes it an fsync on the share): 64 KiB
  written then flushed, 100 times, through the ``smbprotocol`` client
  (smbclient never sends FLUSH); median latency;
* fsync on the share directly (no SMB): the same 64 KiB write + fsync.

The ratio column cloudgw/raw is the figure the issue asks for (throughput
through smbd on the mount at least 70% of plain ext4), and the FLUSH/fsync
latency shows that fsync on the mount means "safe in the local cache", not
"uploaded".
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import time
from pathlib import Path

from benchmarks.gateways import CloudGW, Remote, Settings, _lazy_unmount
from benchmarks.report import Results
from benchmarks.workloads import GiB, KiB, MB, MiB, Params, drop_caches

log = logging.getLogger("bench")
logging.getLogger("smbprotocol").setLevel(logging.WARNING)  # it logs every SMB message at INFO
logging.getLogger("spnego").setLevel(logging.WARNING)
WORKLOAD = "SMB re-export"
FLUSHES = 100
FLUSH_WRITE = 64 * KiB
WARM = Path("warm-up.bin")  # next to the source file


def smb_size(params: Params, explicit_size: bool) -> int:
    return params.size if (params.quick or explicit_size) else 1 * GiB


def _make_source(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            f.write(block[i % 251:] + block[:i % 251])  # not one repeated MiB (no dedup anywhere)
        f.write(os.urandom(size % MiB))


def _flush_latencies(smb) -> list[float]:  # noqa: ANN001
    from tests.servers.smb2 import smb2_create, smb2_tree

    data = os.urandom(FLUSH_WRITE)
    out = []
    with smb2_tree(smb) as tree, smb2_create(tree, "flushed.bin") as f:
        for i in range(FLUSHES):
            f.write(data, i * FLUSH_WRITE)
            t = time.perf_counter()
            f.flush()
            out.append(time.perf_counter() - t)
    return out


def _fsync_latencies(path: Path) -> list[float]:
    data = os.urandom(FLUSH_WRITE)
    out = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(FLUSHES):
            os.write(fd, data)
            t = time.perf_counter()
            os.fsync(fd)
            out.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    return out


def _timed(argv: list[str], timeout: float) -> float:
    t = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - t
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "NT_STATUS_" in out:
        raise RuntimeError(f"smbclient failed ({proc.returncode}): {out.strip()[-300:]}")
    return elapsed


def _one(target: str, share: Path, source: Path, size: int, results: Results, run: int, params: Params,
         gw: CloudGW | None, remote_size=None) -> None:  # noqa: ANN001 (remote_size: name -> size on the remote)
    from tests.servers.samba import start_samba

    def add(metric: str, unit: str, better: str, value: float) -> None:
        results.add("smb", WORKLOAD, metric, unit, better, target, run, value)

    with start_samba(share) as smb:
        drop_caches()
        # the page cache was dropped so that both targets read the source from disk; but on a
        # server smbd's and cloudgw's own pages are warm: one small put brings them back first
        _timed(smb.smbclient_argv(f'lcd "{source.parent}"; put {WARM.name} warm.bin; del warm.bin'), 120)
        elapsed = _timed(smb.smbclient_argv(f'lcd "{source.parent}"; put {source.name} big.bin'),
                         params.phase_timeout)
        add("write (smbclient put)", "MB/s", "higher", size / MB / elapsed)
        if gw is not None:
            t = time.monotonic()
            gw.flush(params.phase_timeout)
            add("close → on remote", "s", "lower", time.monotonic() - t)
            if remote_size("big.bin") != size:
                raise RuntimeError(f"big.bin on the remote holds {remote_size('big.bin')} bytes, not {size}")
        drop_caches()
        elapsed = _timed(smb.smbclient_argv("get big.bin /dev/null"), params.phase_timeout)
        add("read (smbclient get)", "MB/s", "higher", size / MB / elapsed)
        add(f"SMB2 FLUSH after {FLUSH_WRITE // KiB} KiB (median)", "ms", "lower",
            statistics.median(_flush_latencies(smb)) * 1000)
        add(f"fsync on the share after {FLUSH_WRITE // KiB} KiB, no SMB (median)", "ms", "lower",
            statistics.median(_fsync_latencies(share / "fsynced.bin")) * 1000)
    for name in ("big.bin", "flushed.bin", "fsynced.bin"):
        (share / name).unlink(missing_ok=True)
    if gw is not None:
        gw.flush(params.phase_timeout)  # the deletes too, before the next run


def run_smb(workdir: Path, params: Params, results: Results, runs: int, settings: Settings, *,
            explicit_size: bool = False, targets: tuple[str, ...] = ("cloudgw", "raw")) -> None:
    from tests.servers.moto import start_moto

    size = smb_size(params, explicit_size)
    base = workdir / "smb"
    base.mkdir(parents=True, exist_ok=True)
    source = base / "source.bin"
    _make_source(source, size)
    (base / WARM.name).write_bytes(os.urandom(MiB))
    results.params["smb_size"] = size
    results.notes.append(
        f"smb: smbd {_smbd_version()} (tests/servers/samba.py, the settings of contrib/samba/smb.conf.example) "
        f"shares the cloudgw mount of a moto bucket, or a plain directory on the same ext4 disk (raw); "
        f"smbclient puts and gets a {size / MiB:g} MiB file over loopback (SMB3); SMB2 FLUSH through "
        f"smbprotocol after each {FLUSH_WRITE // KiB} KiB write, {FLUSHES} times; fsync the same, on the share "
        "directly. Page cache dropped before each put and get.")
    log.info("[smb] starting moto")
    with start_moto(auth=False) as server:
        results.versions.setdefault("cloudgw", CloudGW(base, settings).version())
        results.versions.setdefault("samba", _smbd_version())
        client = server.client()
        client.create_bucket(Bucket="smb")
        remote = Remote(server.endpoint_url, server.access_key, server.secret_key, server.region, "smb", "share")
        for run in range(runs):
            order = list(targets) if run % 2 == 0 else list(reversed(targets))
            for target in order:
                t = time.monotonic()
                try:
                    if target == "cloudgw":
                        gw = CloudGW(base, settings)
                        gw.mount(remote)
                        try:
                            _one(target, gw.mnt, source, size, results, run, params, gw,
                                 lambda name: client.head_object(Bucket="smb", Key=f"share/{name}")["ContentLength"])
                        finally:
                            gw.umount()
                    else:
                        raw = base / "raw"
                        raw.mkdir(exist_ok=True)
                        _one(target, raw, source, size, results, run, params, None)
                except Exception as exc:  # noqa: BLE001
                    log.error("[smb] run %d, %s failed: %s", run + 1, target, exc)
                    results.fail("smb", WORKLOAD, "write (smbclient put)", "MB/s", "higher", target, run,
                                 str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
                    if os.path.ismount(base / "mnt-cloudgw"):
                        _lazy_unmount(base / "mnt-cloudgw")
                log.info("[smb] run %d/%d, %s: %.1f s", run + 1, runs, target, time.monotonic() - t)
    source.unlink(missing_ok=True)
    (base / WARM.name).unlink(missing_ok=True)


def _smbd_version() -> str:
    out = subprocess.run(["/usr/sbin/smbd", "--version"], capture_output=True, text=True).stdout.strip()
    return out.removeprefix("Version ") or "?"
