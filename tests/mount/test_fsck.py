"""cloudgw fsck on real cache dirs left by the real daemon, and the cache-dir guards."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import pytest

from tests.mount.conftest import make_backend
from tests.mount.gateway import run_cli
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount


def fsck(cache_dir: Path, *args: str, env: dict | None = None) -> tuple[int, dict]:
    proc = run_cli("fsck", str(cache_dir), "--json", *args, env=env, check=False)
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def codes(report: dict) -> set[str]:
    return {f["code"] for f in report["findings"]}


def test_fsck_clean_after_normal_use_and_sees_outside_changes(gw):
    (gw.mnt / "d").mkdir()
    (gw.mnt / "d" / "f.txt").write_text("hello")
    gw.sync()
    gw.umount()
    rc, report = fsck(gw.cache_dir, env=gw.env)
    assert rc == 0 and report["errors"] == 0 and codes(report) == set(), report
    gw.backend.view.put("d/outside.txt", b"x")
    gw.backend.view.put("d/f.txt", b"changed elsewhere")
    rc, report = fsck(gw.cache_dir, env=gw.env)
    assert rc == 0 and {"remote-unseen", "remote-changed"} <= codes(report), report
    gw.mount()


def test_fsck_finds_lost_pending_data_and_repairs_strays(file_gw):
    gw = file_gw
    gw.umount()
    gw.mount("--write-back", "3600")
    (gw.mnt / "precious.txt").write_text("only here")
    (gw.mnt / "other.txt").write_text("fine")
    ino = os.stat(gw.mnt / "precious.txt").st_ino
    gw.kill9()
    rc, report = fsck(gw.cache_dir)
    assert rc == 0 and "pending-uploads" in codes(report)
    data = gw.cache_dir / "cache" / "data"
    (data / f"{ino:x}").unlink()  # the disk lost a pending file's data
    (data / "fffff").write_bytes(b"stray")
    rc, report = fsck(gw.cache_dir, "--repair")
    assert rc == 1, report
    by_code = {f["code"]: f for f in report["findings"]}
    assert by_code["dirty-data-missing"]["path"] == "precious.txt"
    assert by_code["stray-cache-file"]["repaired"]
    assert not (data / "fffff").exists()


def test_cache_dir_is_locked_and_bound_to_its_remote(gw, tmp_path: Path):
    gw.expected_warnings += [r"in use by a running cloudgw", r"belongs to"]
    proc = run_cli("fsck", str(gw.cache_dir), env=gw.env, check=False)
    assert proc.returncode != 0 and "in use by a running cloudgw" in proc.stderr
    (tmp_path / "other").mkdir()
    other = make_backend("file", tmp_path / "other", None)
    mnt2 = tmp_path / "mnt2"
    mnt2.mkdir()
    proc = run_cli("mount", other.url, str(mnt2), "--cache-dir", str(gw.cache_dir), check=False)
    assert proc.returncode != 0 and "in use by a running cloudgw" in proc.stderr
    gw.umount()
    proc = run_cli("mount", other.url, str(mnt2), "--cache-dir", str(gw.cache_dir), check=False)
    assert proc.returncode != 0 and "belongs to" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.ismount(mnt2)
    gw.mount()


def test_created_files_survive_kill9_with_nothing_left_behind(file_gw):
    """Creates take ready unnamed cache files (``cache.spares``); a kill -9 leaves no trace of
    the unused ones, and every closed file keeps its bytes."""
    gw = file_gw
    gw.umount()
    gw.mount("--write-back", "3600")
    data = gw.cache_dir / "cache" / "data"

    def spares() -> list[str]:  # unnamed files the daemon holds ready (its filler starts once mounted)
        fds, targets = f"/proc/{gw.pid()}/fd", []
        for fd in os.listdir(fds):
            try:
                targets.append(os.readlink(f"{fds}/{fd}"))
            except FileNotFoundError:  # closed meanwhile
                pass
        return [t for t in targets if t.startswith(f"{data}/#")]

    wait_for(lambda: len(spares()) > 0, timeout=30)
    (gw.mnt / "many").mkdir()
    contents = {f"f{i:03d}.txt": os.urandom(i * 37) for i in range(300)}
    for name, blob in contents.items():
        (gw.mnt / "many" / name).write_bytes(blob)
    gw.kill9()
    rc, report = fsck(gw.cache_dir)
    assert rc == 0 and report["errors"] == 0 and "stray-cache-file" not in codes(report), report
    gw.mount()
    assert {p.name: p.read_bytes() for p in (gw.mnt / "many").iterdir()} == contents
    gw.sync()
    assert {p.name: p.read_bytes() for p in (gw.backend.view.root / "many").iterdir()} == contents


def test_many_files_open_at_once_from_a_daemon_started_with_a_low_limit(file_gw):
    """Started from a shell the daemon gets its soft limit of open files (often 1024), but it
    holds a descriptor per open file plus its spare cache files: it takes the hard limit."""
    gw = file_gw
    gw.umount()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # what the daemon inherits
    try:
        gw.mount()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    limits = Path(f"/proc/{gw.pid()}/limits").read_text().splitlines()
    assert next(line for line in limits if line.startswith("Max open files")).split()[3:5] == [str(hard)] * 2
    files = [open(gw.mnt / f"f{i:03d}", "wb") for i in range(600)]  # more than 256, all open at once
    for i, f in enumerate(files):
        f.write(b"%d" % i)
    for f in files:
        f.close()
    gw.sync()
    assert all((gw.backend.view.root / f"f{i:03d}").read_bytes() == b"%d" % i for i in range(600))
