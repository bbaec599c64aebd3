"""Faults through the real mount: the daemon's remote is wrapped in ``FaultyRemote``
(test hook ``CLOUDGW_FAULTS``, see ``cloudgw/remotes/faulty.py``) while real programs
work on the mount.

During the fault window every read must return exactly the bytes the remote holds
(truncated replies, resets and lost replies included); once the window is over and
the queue drains, the remote must hold exactly the local tree, with no conflict
copies, no temp files or incomplete multipart uploads, and fsck clean.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.mount.gateway import Gateway, run_cli
from tests.mount.util import wait_for

MiB = 1024 * 1024
FAULT_WINDOW = 25.0  # seconds of faults from the daemon's first remote call (mount)

# What the daemon may log while the remote misbehaves: failed calls it retries.
# A conflict copy, an internal error or a traceback is never expected.
EXPECTED = [r"injected", r"upload of .* failed \(will retry\)", r"poll failed", r"fetching .* failed",
            r"remote error", r"deleting .* failed \(will retry\)", r"could not clean up incomplete uploads"]

SPECS = {
    # a client that retries (as boto3 and our own adapters do): every fault kind, reads included
    "client-retries": "rate=0.3;retry=1;deadline=8;seconds=0.2",
    # no retries below the gateway for changes: the write-back queue's own backoff must absorb
    # them (reads a user waits for are retried by the client, as every real one does)
    "engine-retries": "rate=0.35;retry=0;ops=write,rename,copy,delete,mkdir,rmdir,symlink;seconds=0.2",
}


def digest_tree(root: Path) -> dict[str, str | None]:
    """path -> sha256 of the content (None for directories), as a user would compare two trees."""
    out: dict[str, str | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            out[os.path.normpath(os.path.join(rel, d))] = None
        for f in filenames:
            out[os.path.normpath(os.path.join(rel, f))] = hashlib.sha256(
                Path(dirpath, f).read_bytes()).hexdigest()
    return out


def make_source_tree(root: Path, rng: random.Random, files: int = 40) -> None:
    for i in range(files):
        sub = root / f"d{i % 5}" / f"e{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        size = rng.choice([0, 1, 4096, 100_000, MiB + 17, 2 * MiB + 5])
        (sub / f"f{i}.bin").write_bytes(rng.randbytes(size))


@pytest.mark.parametrize("spec", list(SPECS), ids=list(SPECS))
def test_programs_on_the_mount_under_faults(backend, tmp_path: Path, spec: str):
    rng = random.Random(spec)
    view = backend.view
    seeded = {f"seed/s{i}.bin": rng.randbytes(rng.choice([10, 300_000, 3 * MiB + 1])) for i in range(6)}
    for path, data in seeded.items():  # on the remote before the mount: never cached, read under faults
        view.put(path, data)
    src = tmp_path / "src"
    make_source_tree(src, rng)

    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache",
                 env={**backend.env, "CLOUDGW_FAULTS": f"{SPECS[spec]};seed=7;for={FAULT_WINDOW}"},
                 args=("--path-style",) if backend.name != "file" else (), expected_warnings=EXPECTED)
    started = time.monotonic()
    try:
        gw.mount()
        mnt = gw.mnt
        # reads of never-cached files: truncated or reset replies must never show as wrong bytes
        for path, data in seeded.items():
            assert (mnt / path).read_bytes() == data, f"{path}: wrong bytes read under faults"
        # real programs writing through the mount
        shutil.copytree(src, mnt / "copied")
        subprocess.run(["tar", "-C", str(src), "-cf", str(tmp_path / "src.tar"), "."], check=True)
        (mnt / "untarred").mkdir()
        subprocess.run(["tar", "-C", str(mnt / "untarred"), "-xf", str(tmp_path / "src.tar")], check=True)
        subprocess.run(["rsync", "-a", f"{src}/", str(mnt / "rsynced")], check=True)
        # edits: overwrite, append, rename, delete, rmdir, a seeded file changed in place
        (mnt / "copied/d0/e0/f0.bin").write_bytes(b"rewritten" * 1000)
        with open(mnt / "copied/d1/e1/f1.bin", "ab") as f:
            f.write(b"appended")
        os.rename(mnt / "copied/d2", mnt / "moved-d2")
        os.rename(mnt / "rsynced/d3/e0/f3.bin", mnt / "renamed.bin")
        shutil.rmtree(mnt / "untarred/d4")
        os.unlink(mnt / "seed/s0.bin")
        with open(mnt / "seed/s1.bin", "r+b") as f:
            f.seek(5)
            f.write(b"EDIT")
        os.symlink("moved-d2", mnt / "link")
        expected = digest_tree(mnt)

        # the faults end; the gateway must converge
        time.sleep(max(0.0, FAULT_WINDOW - (time.monotonic() - started)))
        gw.sync(timeout=180)
        gw.poll()
        assert digest_tree(mnt) == expected, "the mount changed after the faults ended"
        gw.umount()
    finally:
        gw.force_cleanup()

    log = gw.log()
    injected = re.search(r"fault injection: (\d+) calls, (\d+) faults injected", log)
    assert injected and int(injected.group(2)) >= 10, f"too few faults were injected: {injected and injected[0]}"
    assert not re.search(r"conflict", log), "a spurious conflict copy was made"
    bad = gw.bad_log_lines()
    assert not bad, "daemon logged unexpected warnings:\n" + "\n".join(bad[:20])

    remote = view.files()
    assert not [p for p in remote if ".conflict-" in p or os.path.basename(p).startswith(".cloudgw")], remote
    # the remote as a fresh gateway sees it (nothing cached) equals what the mount showed
    fresh = Gateway(backend.url, tmp_path / "mnt2", tmp_path / "cache2", env=backend.env,
                    args=gw.args)
    try:
        fresh.mount()
        assert digest_tree(fresh.mnt) == expected, "the remote does not hold what the mount showed"
        fresh.umount()
    finally:
        fresh.force_cleanup()
    assert not fresh.bad_log_lines()
    if hasattr(view, "client"):
        ups = view.client.list_multipart_uploads(Bucket=view.bucket).get("Uploads", [])
        assert not ups, f"incomplete multipart uploads left: {ups}"
    proc = run_cli("fsck", str(gw.cache_dir), "--json", env=backend.env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
