"""Hard links in-process (file://, and an S3-like remote without hard links where it matters):
the names share one inode, each name is an object of its own on the remote, removing the
first name hands the inode on, and a name changed or deleted elsewhere splits off or goes --
nothing lost, no name showing bytes written to another object."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cloudgw.filesystem import FsError
from cloudgw.filesystem.core import LINK_OFFSET
from cloudgw.metadata.model import ROOT_INO
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import Harness, running


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    (tmp_path / "cloud").mkdir()
    return tmp_path / "cloud"


def _replace(path: Path, data: bytes) -> None:
    """Another object at that name, as an editor saves (write aside, rename over): on file://
    a write in place would change every name of a real hard link, which is one file there."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def _link(h: Harness, src: str, dst: str) -> None:
    inode = await h.resolve(src)
    head, _, name = dst.rpartition("/")
    await h.fs.ns.link(inode.ino, (await h.resolve(head)).ino, name)


async def test_names_share_the_inode_and_each_is_an_object_on_the_remote(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.mkdir("d")
        a = await h.write_file("a", b"one")
        before = a.ctime_ns
        await _link(h, "a", "d/b")
        b = await h.resolve("d/b")
        assert b is a and a.nlink == 2 and a.ctime_ns > before
        await h.write_file("d/b", b"two", create=False)
        assert await h.read_file("a") == b"two"
        await h.settle()
        assert (cloud / "a").read_bytes() == (cloud / "d" / "b").read_bytes() == b"two"
        await h.write_file("a", b"three")
        await h.settle()
        assert (cloud / "d" / "b").read_bytes() == b"three"  # a change of one name reaches every object


async def test_readdir_offsets_keep_two_names_in_one_directory_apart(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        for i in range(5):
            await h.write_file(f"f{i}", b"x")
            await _link(h, f"f{i}", f"g{i}")
        entries = []
        after = 0
        while page := await h.fs.ns.readdir(ROOT_INO, after, limit=3):  # resumed after every page
            entries += page
            after = page[-1][0]
        names = [name for _, name, _ in entries]
        assert sorted(names) == sorted([f"f{i}" for i in range(5)] + [f"g{i}" for i in range(5)])
        assert len({offset for offset, _, _ in entries}) == 10
        assert all(offset > LINK_OFFSET for offset, name, _ in entries if name.startswith("g"))


async def test_unlink_of_a_name_keeps_the_others(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.write_file("a", b"data")
        await _link(h, "a", "b")
        await _link(h, "a", "c")
        await h.settle()
        await h.unlink("b")
        a = await h.resolve("a")
        assert a.nlink == 2
        await h.unlink("a")  # the first name: "c" takes the inode on
        c = await h.resolve("c")
        assert c is a and c.nlink == 1 and await h.read_file("c") == b"data"
        await h.settle()
        assert sorted(os.listdir(cloud)) == ["c"] and (cloud / "c").read_bytes() == b"data"
        with pytest.raises(FsError) as exc:
            await h.resolve("a")
        assert exc.value.errno == errno.ENOENT


async def test_unlink_of_the_first_name_before_the_link_reached_the_remote(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.write_file("a", b"data")
        await h.settle()
        await _link(h, "a", "b")
        await h.unlink("a")  # "b" was never placed: the inode's object moves there
        await h.settle()
        assert sorted(os.listdir(cloud)) == ["b"] and (cloud / "b").read_bytes() == b"data"


async def test_rename_of_a_link_and_onto_another_name_of_the_same_inode(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.mkdir("d")
        await h.write_file("a", b"data")
        await _link(h, "a", "b")
        await h.settle()
        await h.rename("b", "d/c")
        await h.settle()
        assert sorted(os.listdir(cloud)) == ["a", "d"] and (cloud / "d" / "c").read_bytes() == b"data"
        await h.rename("a", "d/c")  # two names of one inode: nothing happens (POSIX)
        assert await h.listdir("") == ["a", "d"] and await h.listdir("d") == ["c"]


async def test_a_directory_with_only_a_link_in_it_is_not_empty(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.mkdir("d")
        await h.write_file("a", b"data")
        await _link(h, "a", "d/b")
        with pytest.raises(FsError) as exc:
            await h.rmdir("d")
        assert exc.value.errno == errno.ENOTEMPTY


async def test_refusals(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        d = await h.mkdir("d")
        await h.write_file("a", b"data")
        for src, dst, code in [("a", "a", errno.EEXIST), ("d", "e", errno.EPERM)]:
            with pytest.raises(FsError) as exc:
                await _link(h, src, dst)
            assert exc.value.errno == code
        assert d.nlink == 1


async def test_a_name_changed_elsewhere_splits_off(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.write_file("a", b"ours")
        await _link(h, "a", "b")
        await h.settle()
        assert os.lstat(cloud / "a").st_ino == os.lstat(cloud / "b").st_ino  # file://: a real hard link
        _replace(cloud / "b", b"theirs")  # elsewhere
        await h.engine.poll_now()
        a, b = await h.resolve("a"), await h.resolve("b")
        assert a.ino != b.ino and a.nlink == b.nlink == 1
        assert await h.read_file("a") == b"ours" and await h.read_file("b") == b"theirs"


async def test_the_first_name_changed_elsewhere_splits_off(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.write_file("a", b"ours")
        await _link(h, "a", "b")
        await h.settle()
        _replace(cloud / "a", b"theirs")
        await h.engine.poll_now()
        a, b = await h.resolve("a"), await h.resolve("b")
        assert a.ino != b.ino and a.nlink == b.nlink == 1
        assert await h.read_file("a") == b"theirs" and await h.read_file("b") == b"ours"
        await h.write_file("b", b"ours again")
        await h.settle()
        assert (cloud / "b").read_bytes() == b"ours again" and (cloud / "a").read_bytes() == b"theirs"


async def test_a_name_deleted_elsewhere_goes_and_the_others_stay(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.write_file("a", b"data")
        await _link(h, "a", "b")
        await _link(h, "a", "c")
        await h.settle()
        os.unlink(cloud / "b")
        os.unlink(cloud / "a")  # the first name too: "c" takes the inode on
        await h.engine.poll_now()
        assert await h.listdir("") == ["c"]
        c = await h.resolve("c")
        assert c.nlink == 1 and await h.read_file("c") == b"data"
        await h.write_file("c", b"more")
        await h.settle()
        assert sorted(os.listdir(cloud)) == ["c"] and (cloud / "c").read_bytes() == b"more"


@pytest.mark.allow_warnings("conflict: b changed on the remote")
async def test_a_local_write_meets_a_name_changed_elsewhere_as_a_conflict(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache", write_back_delay=3600) as h:
        await h.write_file("a", b"v1")
        await _link(h, "a", "b")
        await h.settle()
        _replace(cloud / "b", b"theirs")
        await h.write_file("a", b"ours")  # before the poll: pending here
        await h.engine.poll_now()
        await h.settle()
        assert (cloud / "a").read_bytes() == (cloud / "b").read_bytes() == b"ours"
        copies = [n for n in os.listdir(cloud) if n.startswith("b.conflict-")]
        assert len(copies) == 1 and (cloud / copies[0]).read_bytes() == b"theirs"


async def test_links_survive_a_restart(tmp_path: Path, cloud: Path):
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.write_file("a", b"data")
        await _link(h, "a", "b")
        await h.settle()
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        a, b = await h.resolve("a"), await h.resolve("b")
        assert a is b and a.nlink == 2 and await h.listdir("") == ["a", "b"]
        await h.engine.poll_now()
        assert (await h.resolve("b")) is a  # the link's own object is not taken for a new file


def test_an_older_database_gains_the_link_count(tmp_path: Path):
    import sqlite3

    db = tmp_path / "metadata.db"
    MetadataStore(db).close()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE inodes DROP COLUMN nlink")
    con.execute("DROP TABLE links")
    con.commit()
    con.close()
    store = MetadataStore(db)
    assert store.get(ROOT_INO).nlink == 1
    store.close()


async def test_fsck_finds_and_repairs_a_wrong_link_count(tmp_path: Path, cloud: Path):
    from cloudgw.fsck import Fsck

    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.write_file("a", b"data")
        await _link(h, "a", "b")
        a = await h.resolve("a")
        h.store.update(a, nlink=5)
        for repair in (False, True):
            check = Fsck(tmp_path / "cache", repair=repair)
            check.check_local(h.store, h.cache)
            assert [f.code for f in check.findings if f.severity == "error"] == ["link-count"]
        assert a.nlink == 2
        check = Fsck(tmp_path / "cache", repair=False)
        check.check_local(h.store, h.cache)
        assert not [f for f in check.findings if f.severity == "error"]


async def test_a_write_in_place_on_file_reaches_every_name(tmp_path: Path, cloud: Path):
    """On file:// the names are one file: a program writing into it there changes all of them."""
    async with running(LocalRemote(cloud), tmp_path / "cache") as h:
        await h.write_file("a", b"ours")
        await _link(h, "a", "b")
        await h.settle()
        with open(cloud / "b", "r+b") as f:
            f.write(b"THEIRS, longer")
        await h.engine.poll_now()
        assert await h.read_file("a") == await h.read_file("b") == b"THEIRS, longer"
        assert h.store.conflict_count() == 0
