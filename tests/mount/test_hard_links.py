"""Hard links through the mount, on file:// and S3, with real programs (docs/hard-links-design.md,
section 5): ``ln`` makes one inode with two names, kept across kill -9 and remounts; the remote
holds one object per name, with equal content (one inode on file://); ``rsync -aH`` round-trips
link groups; an outside change to one name's object splits that name off, an outside delete
removes only that name, and nothing is lost."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.mount.gateway import Gateway
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount

RSYNC = ["rsync", "-aH", "--numeric-ids"]


def run(*args: str | Path) -> str:
    """A program's output; its stderr is in the failure if it fails."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.strip()}"
    return proc.stdout


def ino_groups(root: Path) -> set[frozenset[str]]:
    """The names below ``root`` grouped by inode (regular files only), each group checked
    against its files' link count."""
    by_ino: dict[int, set[str]] = {}
    nlink: dict[int, int] = {}
    for p in root.rglob("*"):
        st = os.lstat(p)
        if p.is_file() and not p.is_symlink():
            by_ino.setdefault(st.st_ino, set()).add(p.relative_to(root).as_posix())
            nlink[st.st_ino] = st.st_nlink
    for ino, names in by_ino.items():
        assert nlink[ino] == len(names), f"{sorted(names)}: st_nlink {nlink[ino]}"
    return {frozenset(names) for names in by_ino.values()}


def assert_one_inode(paths: list[Path], content: bytes) -> None:
    stats = [os.lstat(p) for p in paths]
    assert len({st.st_ino for st in stats}) == 1, paths
    assert [st.st_nlink for st in stats] == [len(paths)] * len(paths)
    for p in paths:
        assert p.read_bytes() == content, p


def assert_remote_holds(gw: Gateway, names: list[str], content: bytes) -> None:
    """One object per name, each with ``content``; on file:// one inode for all of them."""
    view = gw.backend.view  # type: ignore[attr-defined]
    for name in names:
        assert view.get(name) == content, name
    if gw.backend.name == "file":  # type: ignore[attr-defined]
        assert len({os.lstat(view.root / name).st_ino for name in names}) == 1


def test_ln_makes_one_inode_kept_by_the_remote_and_across_kill9_and_remount(gw: Gateway):
    m, view = gw.mnt, gw.backend.view  # type: ignore[attr-defined]
    gw.umount()
    gw.mount("--write-back", "3600")  # nothing reaches the remote before the crash
    (m / "d").mkdir()
    (m / "a").write_bytes(b"first")
    run("ln", m / "a", m / "b")
    assert_one_inode([m / "a", m / "b"], b"first")
    (m / "b").write_bytes(b"written through b")
    assert (m / "a").read_bytes() == b"written through b"
    assert view.files() == {}
    gw.kill9()  # before any upload: the link lives in the metadata store only
    gw.mount()
    assert_one_inode([m / "a", m / "b"], b"written through b")
    gw.sync()
    assert view.files() == {"a": 17, "b": 17}
    assert_remote_holds(gw, ["a", "b"], b"written through b")

    run("ln", m / "b", m / "d" / "c")  # a third name, from the second, in another directory
    with open(m / "d" / "c", "ab") as f:
        f.write(b", then c")
    gw.sync()
    gw.kill9()  # after the upload
    gw.mount()
    names = [m / "a", m / "b", m / "d" / "c"]
    assert_one_inode(names, b"written through b, then c")
    assert view.files() == {"a": 25, "b": 25, "d/c": 25}
    assert_remote_holds(gw, ["a", "b", "d/c"], b"written through b, then c")
    gw.umount()
    gw.mount()
    assert_one_inode(names, b"written through b, then c")
    os.unlink(m / "a")  # the first name goes; the others keep the inode, on the remote too
    assert_one_inode(names[1:], b"written through b, then c")
    gw.sync()
    assert view.files() == {"b": 25, "d/c": 25}
    assert gw.status()["conflicts"] == 0


def test_rsync_aH_round_trip_keeps_link_groups(gw: Gateway, tmp_path: Path):
    src, out, dest = tmp_path / "src", tmp_path / "out", gw.mnt / "tree"
    for d in ("one", "two", "three", "same"):
        (src / d).mkdir(parents=True)
    (src / "one" / "a").write_bytes(b"three names in three directories")
    os.link(src / "one" / "a", src / "two" / "b")
    os.link(src / "one" / "a", src / "three" / "c")
    (src / "same" / "x").write_bytes(b"two names in one directory")
    os.link(src / "same" / "x", src / "same" / "y")
    (src / "same" / "alone").write_bytes(b"one name")
    os.utime(src / "same" / "alone", ns=(1_500_000_000_123_456_789,) * 2)
    groups = ino_groups(src)
    assert frozenset({"one/a", "two/b", "three/c"}) in groups and frozenset({"same/x", "same/y"}) in groups

    run(*RSYNC, f"{src}/", f"{dest}/")
    assert run(*RSYNC, "-n", "-i", "--delete", f"{src}/", f"{dest}/") == ""
    assert ino_groups(dest) == groups
    gw.sync()
    run(*RSYNC, f"{dest}/", f"{out}/")
    assert run(*RSYNC, "-n", "-i", "--delete", f"{src}/", f"{out}/") == ""
    assert ino_groups(out) == groups
    assert_remote_holds(gw, ["tree/one/a", "tree/two/b", "tree/three/c"], b"three names in three directories")
    assert_remote_holds(gw, ["tree/same/x", "tree/same/y"], b"two names in one directory")
    assert len(gw.backend.view.files()) == 6  # type: ignore[attr-defined]


def _two_groups(gw: Gateway) -> None:
    """``p/a`` + ``p/b`` and ``q/a`` + ``q/b``, each pair one inode, all on the remote."""
    for d in ("p", "q"):
        (gw.mnt / d).mkdir()
        (gw.mnt / d / "a").write_bytes(b"ours")
        os.link(gw.mnt / d / "a", gw.mnt / d / "b")
    gw.sync()
    assert gw.backend.view.files() == {"p/a": 4, "p/b": 4, "q/a": 4, "q/b": 4}  # type: ignore[attr-defined]


def _split(changed: Path, other: Path, content: bytes) -> bool:
    try:
        return (changed.read_bytes() == content and os.lstat(changed).st_nlink == 1
                and os.lstat(other).st_nlink == 1)
    except FileNotFoundError:
        return False


def test_an_outside_change_to_one_name_splits_it_off(gw: Gateway):
    """The second name changed elsewhere (p/b), and the first (q/a): that name takes the
    new content as a file of its own, the other keeps ours; no conflict, nothing lost."""
    m, view = gw.mnt, gw.backend.view  # type: ignore[attr-defined]
    _two_groups(gw)
    view.put("p/b", b"theirs, longer")
    view.put("q/a", b"theirs, longer")
    gw.poll()
    wait_for(lambda: _split(m / "p" / "b", m / "p" / "a", b"theirs, longer")
             and _split(m / "q" / "a", m / "q" / "b", b"theirs, longer"))
    for changed, kept in (("p/b", "p/a"), ("q/a", "q/b")):
        assert os.lstat(m / changed).st_ino != os.lstat(m / kept).st_ino
        assert (m / changed).read_bytes() == b"theirs, longer" and (m / kept).read_bytes() == b"ours"
    (m / "p" / "a").write_bytes(b"ours, edited")  # the names are independent now
    (m / "q" / "b").write_bytes(b"ours, edited")
    assert (m / "p" / "b").read_bytes() == b"theirs, longer" and (m / "q" / "a").read_bytes() == b"theirs, longer"
    gw.sync()
    assert view.files() == {"p/a": 12, "p/b": 14, "q/a": 14, "q/b": 12}
    assert view.get("p/b") == view.get("q/a") == b"theirs, longer"
    assert view.get("p/a") == view.get("q/b") == b"ours, edited"
    assert gw.status()["conflicts"] == 0


def test_an_outside_delete_of_one_name_removes_only_that_name(gw: Gateway):
    """The second name deleted elsewhere (p/b), and the first (q/a): it disappears, the other
    keeps the content with one link, on the remote too."""
    m, view = gw.mnt, gw.backend.view  # type: ignore[attr-defined]
    _two_groups(gw)
    view.delete("p/b")
    view.delete("q/a")
    gw.poll()
    wait_for(lambda: not os.path.lexists(m / "p" / "b") and not os.path.lexists(m / "q" / "a")
             and os.lstat(m / "p" / "a").st_nlink == 1 and os.lstat(m / "q" / "b").st_nlink == 1)
    assert sorted(os.listdir(m / "p")) == ["a"] and sorted(os.listdir(m / "q")) == ["b"]
    assert (m / "p" / "a").read_bytes() == b"ours" and (m / "q" / "b").read_bytes() == b"ours"
    (m / "q" / "b").write_bytes(b"still ours")  # the name that was left is a plain file, and syncs as one
    gw.sync()
    assert view.files() == {"p/a": 4, "q/b": 10}
    assert view.get("p/a") == b"ours" and view.get("q/b") == b"still ours"
    assert gw.status()["conflicts"] == 0
