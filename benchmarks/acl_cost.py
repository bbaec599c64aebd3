"""What ``mount --acl`` costs: ``python -m benchmarks.acl_cost`` (root, /dev/fuse).

With FUSE_POSIX_ACL the kernel caches no ACL for a FUSE inode, so each permission check of
an entry the caller does not own (the usual case behind Samba: files owned by one account,
read by others through group and other bits) is a GETXATTR round trip to the daemon.  This
mounts a file:// remote twice -- without and with ``--acl`` -- and times, as uid 2000,
``stat`` and ``open``+``close`` of one cached file owned by uid 1000, and prints the per-call
times side by side (the ratio is the cost of ACLs on that path).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.mount.gateway import Gateway

PROBE = """
import os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
for _ in range(n):
    os.stat(path)
stat_us = (time.perf_counter() - t) / n * 1e6
t = time.perf_counter()
for _ in range(n // 4):
    os.close(os.open(path, os.O_RDONLY))
print(f"{stat_us:.1f} {(time.perf_counter() - t) / (n // 4) * 1e6:.1f}")
"""


def measure(base: Path, acl: bool, calls: int) -> tuple[float, float]:
    cloud = base / "cloud"
    gw = Gateway(f"file://{cloud}", base / f"mnt-{acl}", base / f"cache-{acl}", args=("--acl",) if acl else ())
    gw.mount()
    try:
        target = gw.mnt / "d" / "f"
        os.stat(target)  # listed and cached once by root
        out = subprocess.run(["setpriv", "--reuid=2000", "--regid=2000", "--clear-groups", sys.executable, "-c",
                              PROBE, str(target), str(calls)], capture_output=True, text=True, check=True).stdout
        stat_us, open_us = (float(x) for x in out.split())
        return stat_us, open_us
    finally:
        gw.force_cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cloudgw-acl-"))
    os.chmod(base, 0o755)  # uid 2000 walks to the mountpoints
    try:
        (base / "cloud" / "d").mkdir(parents=True)
        f = base / "cloud" / "d" / "f"
        f.write_bytes(b"x")
        os.chown(f, 1000, 1000)
        os.chmod(f, 0o664)
        plain, with_acl = measure(base, False, args.calls), measure(base, True, args.calls)
        print(f"{'as uid 2000, a file of uid 1000':34} {'without --acl':>14} {'with --acl':>11} {'ratio':>6}")
        for name, a, b in (("stat", plain[0], with_acl[0]), ("open+close", plain[1], with_acl[1])):
            print(f"{name:34} {a:11.1f} us {b:8.1f} us {b / a:6.1f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
