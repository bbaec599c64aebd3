"""Helpers shared by the real-mount tests: waiting for conditions, extra gateways,
finding daemon processes, hashing big files in bounded memory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from tests.mount.gateway import Gateway

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.0fs" % timeout)
        time.sleep(interval)


def quick_status(gw: Gateway) -> dict:
    """``cloudgw status --json`` without starting a process (for tight wait loops)."""
    from cloudgw.control import request

    return next(request(gw.mnt, {"op": "status"}, timeout=30))


def daemon_pids(mnt: Path) -> list[int]:
    """Every ``cloudgw mount`` process whose command line names ``mnt`` (exactly)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        if any(a.endswith("/cloudgw") for a in args) and "mount" in args and str(mnt) in args:
            pids.append(int(entry))
    return pids


@contextlib.contextmanager
def extra_gateway(backend, tmp_path: Path, *args: str, name: str = "gw2",  # noqa: ANN001
                  mount: bool = True) -> Iterator[Gateway]:
    """A gateway of its own (mount point and cache under ``tmp_path/name``) with extra
    mount arguments; unmounted at the end, and its log must hold no unexpected warnings."""
    extra = ("--path-style",) if backend.name != "file" else ()
    gw = Gateway(backend.url, tmp_path / name / "mnt", tmp_path / name / "cache", env=backend.env,
                 args=(*extra, *args))
    gw.backend = backend  # type: ignore[attr-defined]
    try:
        if mount:
            gw.mount()
        yield gw
        gw.umount()
    finally:
        gw.force_cleanup()
    bad = gw.bad_log_lines()
    assert not bad, "daemon logged unexpected warnings:\n" + "\n".join(bad[:20])


def sha256_file(path: Path, chunk: int = 64 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def drop_page_cache() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
