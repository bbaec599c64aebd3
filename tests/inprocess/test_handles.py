"""What NFS file handles rest on, in-process: LOOKUP of "." and "..", lookup counts,
inode numbers never reused, and the per-database generation.

The kernel side (handles taken and opened across a real remount) is in
``tests/mount/test_nfs_handles.py``.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from cloudgw.filesystem import FsError
from cloudgw.metadata.model import ROOT_INO
from cloudgw.metadata.store import GENERATION_KEY, MetadataStore
from cloudgw.remotes.base import Kind
from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import running


async def test_dot_is_the_inode_itself_and_dotdot_its_parent(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        top = await h.mkdir("top")
        sub = await h.mkdir("top/sub")
        f = await h.write_file("top/sub/f.txt", b"x")
        ns = h.fs.ns
        assert await ns.lookup(f.ino, ".") is f  # a file too: the kernel asks "." of any handle
        assert await ns.lookup(sub.ino, ".") is sub
        assert await ns.lookup(sub.ino, "..") is top
        assert (await ns.lookup(top.ino, "..")).ino == ROOT_INO
        assert (await ns.lookup(ROOT_INO, "..")).ino == ROOT_INO
        assert (await ns.lookup(ROOT_INO, ".")).ino == ROOT_INO
        with pytest.raises(FsError) as err:
            await ns.lookup(f.ino, "..")
        assert err.value.errno == errno.ENOTDIR


async def test_dot_lookups_count_one_lookup_each_and_forget_releases_them(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        sub = await h.mkdir("sub")
        f = await h.write_file("sub/f.txt", b"x")
        ns = h.fs.ns
        before = {ino: ns.lookups.get(ino, 0) for ino in (sub.ino, f.ino)}
        await ns.lookup(f.ino, ".")
        await ns.lookup(f.ino, ".")
        await ns.lookup(sub.ino, "..")  # the root: pinned anyway, counted all the same
        await ns.lookup(sub.ino, ".")
        assert ns.lookups[f.ino] == before[f.ino] + 2
        assert ns.lookups[sub.ino] == before[sub.ino] + 1
        ns.forget(f.ino, 2)
        ns.forget(sub.ino, 1)
        assert ns.lookups.get(f.ino, 0) == before[f.ino]
        assert ns.lookups.get(sub.ino, 0) == before[sub.ino]


async def test_a_deleted_inode_answers_enoent_to_dot_and_is_not_pinned(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        f = await h.write_file("gone.txt", b"x")
        d = await h.mkdir("gone-dir")
        ino, dino = f.ino, d.ino
        ns = h.fs.ns
        ns.forget(ino, ns.lookups[ino])
        ns.forget(dino, ns.lookups[dino])
        await h.unlink("gone.txt")
        await h.rmdir("gone-dir")
        for i in (ino, dino, 10_000):
            for name in (".", ".."):
                with pytest.raises(FsError) as err:
                    await ns.lookup(i, name)
                assert err.value.errno == errno.ENOENT  # the kernel answers ESTALE for the handle
            assert i not in ns.lookups
            assert h.store._live.get(i) is None


async def test_unlinked_but_open_is_stale_for_handles_too(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        f = await h.write_file("open.txt", b"x")
        handle = await h.fs.data.open(f.ino, 0)
        try:
            await h.unlink("open.txt")
            with pytest.raises(FsError) as err:
                await h.fs.ns.lookup(f.ino, ".")
            assert err.value.errno == errno.ENOENT
        finally:
            h.fs.data.release(handle.fh)


def _new_file(store: MetadataStore, name: str) -> int:
    return store.create(parent=ROOT_INO, name=name, kind=Kind.FILE, mode=0o644, uid=0, gid=0).ino


def test_inode_numbers_are_never_reused_even_after_the_highest_is_deleted(tmp_path: Path):
    db = tmp_path / "metadata.db"
    store = MetadataStore(db)
    _new_file(store, "a")
    top = _new_file(store, "b")
    store.delete(store.get(top))
    assert _new_file(store, "c") > top
    highest = _new_file(store, "d")
    store.delete(store.get(highest))
    store.close()
    store = MetadataStore(db)  # a restart
    try:
        assert _new_file(store, "e") > highest
    finally:
        store.close()


def test_the_generation_is_drawn_per_database_and_kept(tmp_path: Path):
    one = MetadataStore(tmp_path / "one.db")
    two = MetadataStore(tmp_path / "two.db")
    gen_one, gen_two = one.generation, two.generation
    one.close()
    two.close()
    assert 0 < gen_one < 2**32 and 0 < gen_two < 2**32  # a FUSE handle keeps 32 bits
    assert gen_one != gen_two  # chance of a clash: 2**-32
    again = MetadataStore(tmp_path / "one.db")
    try:
        assert again.generation == gen_one
    finally:
        again.close()


def test_a_database_made_before_generations_keeps_generation_zero(tmp_path: Path):
    """Handles given out by an older cloudgw carry generation 0: they stay valid."""
    db_path = tmp_path / "metadata.db"
    MetadataStore(db_path).close()
    db = sqlite3.connect(db_path)
    db.execute("DELETE FROM kv WHERE key = ?", (GENERATION_KEY,))
    db.commit()
    db.close()
    for _ in range(2):
        store = MetadataStore(db_path)
        try:
            assert store.generation == 0
        finally:
            store.close()
