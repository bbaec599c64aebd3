"""Names a stricter remote cannot store, through a real mount (cloudgw/remotes/names.py).

A file:// remote with ``name_rules = "onedrive"`` stands in for OneDrive (and an SMB
share): the directory must end up holding only names OneDrive accepts, the mount
must show every name as it was written -- also after a remount with the same cache
and with a fresh one, i.e. from the remote's names alone -- and names that cannot be
stored even mapped fail at ``open``/``mkdir``/``rename`` with a clear errno, never
later in an upload.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cloudgw.remotes.names import ONEDRIVE, QUOTE
from tests.mount.gateway import Gateway, run_cli
from tests.mount.test_fsck import fsck

NAMES = {
    **{f"a{c}b": f"a{c}b" for c in '"*:<>?\\|'},
    "tab\there": "", "dot.": "", "space ": "", " lead": "", "~tilde": "",
    "CON": "", "nul.txt": "", "Com1.log": "", ".lock": "", "desktop.ini": "", "~$report.docx": "", "a_vti_b": "",
    "lit＊eral": "", f"quote{QUOTE}": "", f"{QUOTE}*": "", "plain.txt": "",
}
STORED = {"a＂b", "a＊b", "a：b", "a＜b", "a＞b", "a？b", "a＼b", "a｜b", "tab␉here", "dot．", "space␠", "␠lead",
          "～tilde", "ＣON", "ｎul.txt", "Ｃom1.log", "．lock", "ｄesktop.ini", "～$report.docx", "a_ｖti_b",
          f"lit{QUOTE}＊eral", f"quote{QUOTE}", f"{QUOTE}{QUOTE}＊", "plain.txt"}
AT_LIMIT = "a" * 252 + "*"  # stored as 255 bytes, the directory's limit
OVER_LIMIT = "a" * 253 + "*"


@pytest.fixture
def od(tmp_path: Path):  # noqa: ANN201
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    config = tmp_path / "cloudgw.toml"
    config.write_text(f'[remotes.od]\nurl = "file://{cloud}"\nname_rules = "onedrive"\n')
    gateways: list[Gateway] = []

    def gateway(cache: str) -> Gateway:
        gw = Gateway(f"--config={config}", tmp_path / "mnt", tmp_path / cache)
        gateways.append(gw)
        gw.mount()
        return gw

    yield cloud, gateway
    for gw in gateways:
        gw.force_cleanup()
        assert not gw.bad_log_lines(), gw.bad_log_lines()[:10]


def _contents(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def test_names_the_remote_cannot_store_are_mapped_and_shown_as_written(od):
    cloud, gateway = od
    gw = gateway("cache")
    top = gw.mnt / "od"
    for name in NAMES:
        (top / name).write_bytes(name.encode())
    (top / "dir?").mkdir()
    (top / "dir?" / "in:side.").write_bytes(b"nested")
    (top / AT_LIMIT).write_bytes(b"255 bytes as stored")
    os.symlink("dir?/in:side.", top / "link|")
    written = _contents(top)
    gw.sync()

    stored = set(os.listdir(cloud))
    assert STORED <= stored
    assert stored - STORED == {"dir？", "a" * 252 + "＊", "link｜"}
    assert os.listdir(cloud / "dir？") == ["in：side．"]
    assert all(ONEDRIVE.storable(n) for n in stored)
    assert os.readlink(cloud / "link｜") == "dir?/in:side."  # the target is content, not a name
    assert sorted(os.listdir(top)) == sorted([*NAMES, "dir?", AT_LIMIT, "link|"])

    gw.umount()
    rc, report = fsck(gw.cache_dir)
    assert rc == 0 and report["errors"] == 0 and report["findings"] == [], report
    for cache in ("cache", "fresh-cache"):  # from the cache, then from the remote's names alone
        again = gateway(cache)
        assert _contents(again.mnt / "od") == written
        assert os.readlink(again.mnt / "od" / "link|") == "dir?/in:side."
        again.umount()
    rc, report = fsck(gw.cache_dir.with_name("fresh-cache"))
    assert rc == 0 and report["errors"] == 0 and report["findings"] == [], report


def _errno_of(fn) -> int:  # noqa: ANN001
    with pytest.raises(OSError) as info:
        fn()
    return info.value.errno


def test_names_that_cannot_be_stored_fail_at_create_and_rename(od):
    cloud, gateway = od
    gw = gateway("cache")
    top = gw.mnt / "od"
    (top / "ok").write_bytes(b"x")
    too_long = top / OVER_LIMIT
    assert _errno_of(lambda: os.open(too_long, os.O_CREAT | os.O_WRONLY, 0o644)) == errno.ENAMETOOLONG
    assert _errno_of(lambda: os.mkdir(too_long)) == errno.ENAMETOOLONG
    assert _errno_of(lambda: os.rename(top / "ok", too_long)) == errno.ENAMETOOLONG
    assert _errno_of(lambda: os.symlink("ok", too_long)) == errno.ENAMETOOLONG
    deep = top / ("d" * 99) / ("d" * 99) / ("d" * 99)
    deep.mkdir(parents=True)  # 299 UTF-16 units below the remote's root; OneDrive allows 400
    assert _errno_of(lambda: open(deep / ("f" * 101), "w")) == errno.ENAMETOOLONG
    (deep / ("f" * 100)).write_bytes(b"400 units")
    latin1 = os.fsencode(top) + b"/caf\xe9"  # not UTF-8: OneDrive names are Unicode
    assert _errno_of(lambda: os.open(latin1, os.O_CREAT | os.O_WRONLY, 0o644)) == errno.EINVAL
    (top / "Report.doc").write_bytes(b"one")
    assert _errno_of(lambda: open(top / "report.DOC", "x")) == errno.EEXIST  # OneDrive has no case
    assert _errno_of(lambda: os.rename(top / "ok", top / "REPORT.doc")) == errno.EEXIST
    os.rename(top / "Report.doc", top / "REPORT.DOC")  # a case-only rename of the file itself
    gw.sync()
    assert sorted(os.listdir(cloud)) == ["REPORT.DOC", "d" * 99, "ok"]
    assert gw.status()["failed_files"] == 0
    gw.umount()
    rc, report = fsck(gw.cache_dir)
    assert rc == 0 and report["findings"] == [], report


def test_the_option_is_checked(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text(f'[remotes.od]\nurl = "file://{tmp_path}"\nname_rules = "ntfs"\n')
    (tmp_path / "mnt").mkdir()
    proc = run_cli("mount", "--config", str(config), str(tmp_path / "mnt"), "--cache-dir", str(tmp_path / "c"),
                   check=False)
    assert proc.returncode == 2 and "name_rules must be one of none, windows, onedrive, not 'ntfs'" in proc.stderr
    assert "Traceback" not in proc.stderr
