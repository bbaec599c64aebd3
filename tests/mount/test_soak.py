"""Soak: a mixed load on the real mount of S3 (moto) with faults injected, for a while.

``make soak`` runs it for an hour (``CLOUDGW_SOAK_SECONDS``); ``make test`` runs
a short version so the code stays alive.  Throughout: every read returns what the
model says; the daemon's memory (RSS) and open descriptors are sampled and must
stay flat after warm-up; at the end the remote holds exactly the model and a
fresh gateway reads it back.  The figures are printed (``-s``) and written to
``CLOUDGW_SOAK_REPORT`` if set.  To see where memory grows, run it with
``CLOUDGW_MEMORY_SNAPSHOTS=DIR`` (``cloudgw.memory_snapshots``; tracing inflates
the RSS this test bounds, so read the snapshots, not its verdict).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from pathlib import Path

from cloudgw.cache.spares import HIGH
from tests.mount.gateway import Gateway
from tests.mount.util import daemon_pids, wait_for

MiB = 1024 * 1024
SECONDS = float(os.environ.get("CLOUDGW_SOAK_SECONDS", "40"))
FAULTS = "rate=0.05;retry=1;deadline=8;seconds=0.1;seed=11"
EXPECTED = [r"injected", r"upload of .* failed \(will retry\)", r"poll failed", r"fetching .* failed",
            r"remote error", r"deleting .* failed \(will retry\)"]


def sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open descriptors) of the daemon.  The unnamed spare cache files it holds ready
    for creates (``cloudgw.cache.spares``: up to ``HIGH``, refilled as creates take them) are not
    counted: their number swings with the load by design; a leak is any other descriptor."""
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    fds, spares = os.listdir(f"/proc/{pid}/fd"), 0
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if "/data/#" in target and target.endswith(" (deleted)"):
            spares += 1
    assert spares <= HIGH, f"{spares} spare cache files held (at most {HIGH})"
    return rss, len(fds) - spares


class Load:
    """Random file operations through the mount, checked against a model (path -> bytes)."""

    def __init__(self, mnt: Path, view, rng: random.Random) -> None:  # noqa: ANN001
        self.mnt, self.view, self.rng = mnt, view, rng
        self.model: dict[str, bytes] = {}
        self.outside: dict[str, bytes] = {}
        self.ops = 0
        self.bytes_written = self.bytes_read = 0

    def _data(self) -> bytes:
        size = self.rng.choice([0, 100, 4096, 70_000, MiB + 3, 3 * MiB])
        return self.rng.randbytes(size)

    def _name(self) -> str:
        return f"d{self.rng.randrange(6)}/f{self.rng.randrange(60)}.bin"

    def step(self) -> None:
        self.ops += 1
        op = self.rng.choices(["write", "read", "append", "rename", "delete", "list", "outside_write"],
                              weights=[5, 6, 2, 2, 2, 1, 1])[0]
        getattr(self, op)()

    def write(self) -> None:
        path, data = self._name(), self._data()
        (self.mnt / path).parent.mkdir(exist_ok=True)
        (self.mnt / path).write_bytes(data)
        self.model[path] = data
        self.bytes_written += len(data)

    def read(self) -> None:
        pool = list(self.model) + [f"outside/{p}" for p in self.outside]
        if not pool:
            return
        path = self.rng.choice(pool)
        want = self.model.get(path) if not path.startswith("outside/") else self.outside[path[8:]]
        got = (self.mnt / path).read_bytes()
        assert got == want, f"{path}: wrong bytes ({len(got)} read, {len(want)} expected)"
        self.bytes_read += len(got)

    def append(self) -> None:
        if self.model:
            path = self.rng.choice(list(self.model))
            extra = self.rng.randbytes(self.rng.randrange(1, 20_000))
            with open(self.mnt / path, "ab") as f:
                f.write(extra)
            self.model[path] += extra

    def rename(self) -> None:
        if self.model:
            src, dst = self.rng.choice(list(self.model)), self._name()
            if src != dst:
                (self.mnt / dst).parent.mkdir(exist_ok=True)
                os.rename(self.mnt / src, self.mnt / dst)
                self.model[dst] = self.model.pop(src)

    def delete(self) -> None:
        if self.model:
            path = self.rng.choice(list(self.model))
            os.unlink(self.mnt / path)
            del self.model[path]

    def list(self) -> None:
        seen = {str(p.relative_to(self.mnt)) for p in self.mnt.rglob("*") if p.is_file()}
        assert {p for p in seen if not p.startswith("outside/")} == set(self.model)

    def outside_write(self) -> None:
        """Another client writes under outside/ (read-only for this load): must show up."""
        name = f"o{self.rng.randrange(20)}.bin"
        data = self.rng.randbytes(self.rng.choice([10, 50_000, 2 * MiB]))
        self.view.put(f"outside/{name}", data)
        self.outside[name] = data
        wait_for(lambda: _content(self.mnt / "outside" / name) == data, timeout=30, interval=0.3)


def _content(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def test_soak_mixed_load_with_faults(s3_backend, tmp_path: Path):
    rng = random.Random(1)
    gw = Gateway(s3_backend.url, tmp_path / "mnt", tmp_path / "cache",
                 env={**s3_backend.env, "CLOUDGW_FAULTS": FAULTS}, args=("--path-style", "--cache-max-size", "48M"),
                 expected_warnings=EXPECTED)
    samples: list[tuple[float, int, int]] = []
    try:
        gw.mount()
        pid = daemon_pids(gw.mnt)[0]
        load = Load(gw.mnt, s3_backend.view, rng)
        start = last_sample = last_sync = time.monotonic()
        samples.append((0.0, *sample(pid)))
        while (now := time.monotonic()) - start < SECONDS:
            load.step()
            if now - last_sample >= max(1.0, SECONDS / 60):
                samples.append((now - start, *sample(pid)))
                last_sample = now
            if now - last_sync >= max(10.0, SECONDS / 10):
                gw.sync(timeout=300)
                last_sync = time.monotonic()
        gw.sync(timeout=300)
        samples.append((time.monotonic() - start, *sample(pid)))
        gw.umount()
    finally:
        gw.force_cleanup()
    bad = gw.bad_log_lines()
    assert not bad, "daemon logged unexpected warnings:\n" + "\n".join(bad[:20])

    # the remote holds exactly the model (read back through a fresh gateway)
    fresh = Gateway(s3_backend.url, tmp_path / "mnt2", tmp_path / "cache2", args=("--path-style",),
                    env={**s3_backend.env, "CLOUDGW_MEMORY_SNAPSHOTS": ""})  # a diagnosis of the soak is of its gateway only
    try:
        fresh.mount()
        for path, data in load.model.items():
            assert (fresh.mnt / path).read_bytes() == data, f"{path}: the remote lost or changed it"
        mine = {str(p.relative_to(fresh.mnt)) for p in fresh.mnt.rglob("*")
                if p.is_file() and not str(p.relative_to(fresh.mnt)).startswith("outside/")}
        assert mine == set(load.model), f"remote extra/missing: {mine ^ set(load.model)}"
        fresh.umount()
    finally:
        fresh.force_cleanup()

    warm = [s for s in samples if s[0] >= SECONDS * 0.25] or samples
    rss_warm, rss_end = statistics.median(s[1] for s in warm[: max(1, len(warm) // 4)]), samples[-1][1]
    fd_warm, fd_end = min(s[2] for s in warm), samples[-1][2]
    report = {"seconds": round(samples[-1][0], 1), "operations": load.ops, "files": len(load.model),
              "bytes_written": load.bytes_written, "bytes_read": load.bytes_read,
              "rss_kib": {"start": samples[0][1], "after_warmup": rss_warm, "end": rss_end,
                          "max": max(s[1] for s in samples)},
              "fds": {"start": samples[0][2], "after_warmup": fd_warm, "end": fd_end,
                      "max": max(s[2] for s in samples)},
              "faults": next((line.split("fault injection: ", 1)[1] for line in gw.log().splitlines()
                              if "fault injection: " in line and "calls" in line), "")}
    print("\nsoak:", json.dumps(report, indent=1))
    if out := os.environ.get("CLOUDGW_SOAK_REPORT"):
        Path(out).write_text(json.dumps({"report": report, "samples": samples}, indent=1))
    assert "faults injected" in report["faults"]
    assert rss_end <= rss_warm * 1.25 + 16 * 1024, f"memory grew: {report['rss_kib']}"
    assert fd_end <= fd_warm + 8, f"descriptors leaked: {report['fds']}"
