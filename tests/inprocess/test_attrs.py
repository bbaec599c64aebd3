"""chmod, chown and touch of what is already on the remote, in-process over file://: the
attributes reach the remote without the content (``Uploader._sync_attrs``), also when they
change around an upload or a move, and never onto someone else's version."""

from __future__ import annotations

import os
import stat

import trio

from cloudgw.remotes.faulty import Fault, FaultPlan, FaultyRemote, Rule
from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import Harness, running

T1, T2 = 1_600_000_000_123_456_789, 1_700_000_000_987_654_321


def remote_attrs(path) -> tuple[int, int, int, int]:  # noqa: ANN001
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns


async def setattr_path(h: Harness, path: str, **changes: int) -> None:
    h.fs.ns.setattr((await h.resolve(path)).ino, **changes)


async def synced_by_itself(h: Harness, path: str, done) -> None:  # noqa: ANN001
    """Wait until ``done()`` and ``path`` needs no sync, with no ``sync`` command (which
    would queue every inode needing sync, hiding one that nothing queued again)."""
    with trio.fail_after(10):
        while not done() or (await h.resolve(path)).needs_sync:
            await trio.sleep(0.02)


async def test_chmod_chown_touch_of_a_clean_file_and_directory_reach_the_remote(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        await h.mkdir("d")
        await h.write_file("d/secret", b"s3cr3t")
        await h.settle()
        rev = (await h.resolve("d/secret")).remote_rev
        await setattr_path(h, "d/secret", mode=0o4750, uid=1234, gid=2345, mtime_ns=T1)
        await setattr_path(h, "d", mode=0o700, mtime_ns=T2)
        inode = await h.resolve("d/secret")
        assert inode.needs_sync and h.fs.ns.getxattr(inode.ino, "user.cloudgw.state") == b"dirty"
        await synced_by_itself(h, "d/secret", lambda: remote_attrs(cloud / "d" / "secret")[0] == 0o4750)
        await synced_by_itself(h, "d", lambda: remote_attrs(cloud / "d")[0] == 0o700)
        assert remote_attrs(cloud / "d" / "secret") == (0o4750, 1234, 2345, T1)  # setuid kept after the chown
        assert remote_attrs(cloud / "d")[3] == T2
        inode = await h.resolve("d/secret")
        assert not inode.needs_sync and inode.remote_rev != rev  # file://: the ctime is in the revision
        entry = h.cache.get(inode.ino)
        assert entry is not None and entry.rev == inode.remote_rev and entry.complete  # cache kept, relabelled
        await h.engine.poll_now()  # our own change is not taken for someone else's
        assert (await h.resolve("d/secret")).remote_rev == inode.remote_rev
        assert await h.read_file("d/secret") == b"s3cr3t"


async def test_attributes_changed_before_a_move_or_during_an_upload_are_not_lost(dirs):
    cloud, cache = dirs
    plan = FaultPlan([Rule(Fault.SLOW, ops="write", seconds=0.3)])
    async with running(FaultyRemote(LocalRemote(cloud), plan), cache) as h:
        await h.write_file("a", b"a")
        await h.settle()
        await setattr_path(h, "a", mode=0o600)
        await h.rename("a", "b")  # the remote moves the old object, with its old mode
        await synced_by_itself(h, "b", lambda: (cloud / "b").exists() and remote_attrs(cloud / "b")[0] == 0o600)
        assert sorted(os.listdir(cloud)) == ["b"]
        for name in ("c", "d"):  # a first upload; another one
            await h.write_file(name, b"c")
            if name == "d":
                await h.settle()
                await h.write_file(name, b"changed")
            with trio.fail_after(5):
                while (await h.resolve(name)).state.value != "uploading":
                    await trio.sleep(0.01)
            await setattr_path(h, name, mode=0o640, mtime_ns=T1)  # while the write carries the old ones
            await synced_by_itself(h, name, lambda: (cloud / name).exists()
                                   and remote_attrs(cloud / name)[::3] == (0o640, T1))
        await h.mkdir("e")
        await setattr_path(h, "e", mode=0o700)  # before its mkdir or during it
        await synced_by_itself(h, "e", lambda: (cloud / "e").exists() and remote_attrs(cloud / "e")[0] == 0o700)


async def test_a_chmod_never_relabels_a_version_written_elsewhere(dirs):
    cloud, cache = dirs
    async with running(LocalRemote(cloud), cache) as h:
        await h.write_file("f", b"mine")
        await h.settle()
        (cloud / "f").write_bytes(b"theirs")  # in place, by another program: a new revision
        os.chmod(cloud / "f", 0o644)
        await setattr_path(h, "f", mode=0o600)
        await h.settle()
        assert remote_attrs(cloud / "f")[0] == 0o644 and (cloud / "f").read_bytes() == b"theirs"
        await h.engine.poll_now()
        assert await h.read_file("f") == b"theirs"


class KeepsNoAttrsAlone:
    """``inner`` without ``set_attrs`` (as WebDAV, OneDrive, Drive)."""

    def __init__(self, inner: LocalRemote) -> None:
        self.inner = inner

    def __getattr__(self, name: str):  # noqa: ANN204
        if name == "set_attrs":
            raise AttributeError(name)
        return getattr(self.inner, name)


async def test_remotes_without_set_attrs_keep_todays_behaviour(dirs):
    cloud, cache = dirs
    async with running(KeepsNoAttrsAlone(LocalRemote(cloud)), cache) as h:  # type: ignore[arg-type]
        await h.write_file("f", b"x")
        await h.settle()
        before = remote_attrs(cloud / "f")
        await setattr_path(h, "f", mode=0o600, mtime_ns=T1)
        await h.settle()
        assert remote_attrs(cloud / "f") == before
        inode = await h.resolve("f")
        assert not inode.needs_sync and (inode.mode, inode.mtime_ns) == (0o600, T1)
