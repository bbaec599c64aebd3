"""fsync(2) on the mount makes the file's metadata durable, not only its data (``cloudgw.wal_sync``).

A power loss cannot be staged here, so the test watches what the daemon asks of the
disk: ``strace -y`` attached to it records every fsync/fdatasync with the file it went
to.  A program's fsync must flush the cache file and the WALs of both databases (the
file's row, size and state; its block map) before it returns; fsync of a directory after
a rename must flush the metadata WAL; a plain write and close must flush nothing (a
close survives ``kill -9`` of the daemon without a disk flush, as the README promises,
and must not pay for one).  Nothing here depends on timing: each phase's requests are
answered before strace is detached, and the daemon's fsyncs happen before its answer.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.mount.conftest import Backend
from tests.mount.gateway import Gateway
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount


class DiskFlushes:
    """The daemon's fsync/fdatasync calls while the block runs: the files they went to."""

    def __init__(self, pid: int, cache_dir: Path, out: Path) -> None:
        self.pid, self.cache_dir, self.out = pid, cache_dir, out

    def __enter__(self) -> DiskFlushes:
        self.proc = subprocess.Popen(["strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,syncfs,sync",
                                      "-o", str(self.out), "-p", str(self.pid)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # attached once the kernel shows strace as the daemon's tracer (its trio thread is the main one)
        wait_for(lambda: self.proc.poll() is not None or re.search(
            r"^TracerPid:\s+[1-9]", Path(f"/proc/{self.pid}/status").read_text(), re.M), timeout=60)
        assert self.proc.poll() is None, f"strace failed: {self.proc.stderr.read().decode()}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def files(self) -> list[str]:
        """The files flushed (``fsync(7</path/to/file>) = 0``), as paths relative to the cache dir."""
        text = self.out.read_text() if self.out.exists() else ""
        paths = re.findall(r"(?:fsync|fdatasync)\(\d+<([^>]*)>\)\s+=\s+0", text)
        return [os.path.relpath(p, self.cache_dir) for p in paths]


def test_fsync_flushes_the_metadata_with_the_data_and_a_close_flushes_nothing(file_backend: Backend,
                                                                              tmp_path: Path):
    gw = Gateway(file_backend.url, tmp_path / "mnt", tmp_path / "cache", env=file_backend.env,
                 args=(*file_backend.args, "--write-back", "3600"))
    try:
        gw.mount()
        pid = gw.pid()
        data = os.urandom(100_000)

        with DiskFlushes(pid, gw.cache_dir, tmp_path / "close.trace") as plain:
            (gw.mnt / "closed.bin").write_bytes(data)
        assert plain.files() == [], "a plain close flushed the disk"

        with DiskFlushes(pid, gw.cache_dir, tmp_path / "fsync.trace") as synced:
            with open(gw.mnt / "synced.bin", "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        flushed = synced.files()
        assert "metadata.db-wal" in flushed, flushed
        assert "cache/cache-index.db-wal" in flushed, flushed
        assert any(p.startswith("cache/data/") for p in flushed), f"the cache file itself was not flushed: {flushed}"

        with DiskFlushes(pid, gw.cache_dir, tmp_path / "again.trace") as again:  # nothing new committed: no second flush
            fd = os.open(gw.mnt / "synced.bin", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        assert [n for n in again.files() if n.endswith("-wal")] == [], again.files()

        with DiskFlushes(pid, gw.cache_dir, tmp_path / "dir.trace") as renamed:
            os.rename(gw.mnt / "closed.bin", gw.mnt / "renamed.bin")
            dfd = os.open(gw.mnt, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        assert "metadata.db-wal" in renamed.files(), renamed.files()
        assert (gw.mnt / "renamed.bin").read_bytes() == data
        gw.umount()
    finally:
        gw.force_cleanup()


def test_a_poll_of_the_remote_flushes_nothing(file_backend: Backend, tmp_path: Path):
    """A poll without a change feed spills its listing into a scratch database (no journal,
    no sync: ``cloudgw.metadata.listing``); creating it must not flush the disk either."""
    file_backend.view.put("from-elsewhere.txt", b"new")
    gw = Gateway(file_backend.url, tmp_path / "mnt", tmp_path / "cache", env=file_backend.env,
                 args=(*file_backend.args, "--poll-interval", "3600"))
    try:
        gw.mount()
        with DiskFlushes(gw.pid(), gw.cache_dir, tmp_path / "poll.trace") as flushes:
            file_backend.view.put("later.txt", b"later")
            gw.poll()
        assert flushes.files() == []
        assert (gw.mnt / "later.txt").read_bytes() == b"later"
        assert not list(gw.cache_dir.glob("*-journal"))
        gw.umount()
    finally:
        gw.force_cleanup()
