"""The file-state table: every change of state goes through ``MetadataStore.update``,
which refuses what ``model.TRANSITIONS`` does not allow; CONFLICT is entered and left
where the table says; a conflict copy is made also on a remote without server-side copy."""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from pathlib import Path

import pytest

from cloudgw.errors import RemoteError, RemoteUnavailable
from cloudgw.metadata import model
from cloudgw.metadata.model import TRANSITIONS, FileState, IllegalTransition
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.base import Kind, RemoteEntry
from cloudgw.remotes.local import LocalRemote
from tests.inprocess.harness import running

STATE_XATTR = "user.cloudgw.state"


def _documented() -> set[tuple[FileState, FileState]]:
    """The transitions the module docstring's table draws."""
    edges = set()
    for line in model.__doc__.splitlines():
        m = re.match(r"\s+([A-Z_]+)\s+--.*-->\s+([A-Z_]+)\s", line)
        if m:
            edges.add((FileState[m.group(1)], FileState[m.group(2)]))
    return edges


def test_the_table_in_the_docstring_is_the_table_in_the_code():
    in_code = {(old, new) for old, news in TRANSITIONS.items() for new in news}
    assert _documented() == in_code
    assert set(TRANSITIONS) == set(FileState)


@pytest.mark.parametrize("old, new", list(itertools.product(FileState, FileState)))
def test_the_store_refuses_every_transition_the_table_does_not_allow(tmp_path: Path, old: FileState, new: FileState):
    store = MetadataStore(tmp_path / "metadata.db")
    try:
        inode = store.create(parent=1, name="f", kind=Kind.FILE, mode=0o644, uid=0, gid=0, state=old)
        if new is old or new in TRANSITIONS[old]:
            store.update(inode, state=new, size=7)
            assert (inode.state, inode.size) == (new, 7)
        else:
            with pytest.raises(IllegalTransition):
                store.update(inode, state=new, size=7)
            assert (inode.state, inode.size) == (old, 0)  # nothing written
        assert store.get(inode.ino).state is inode.state
    finally:
        store.close()


class NoServerCopy(LocalRemote):
    """file:// as a remote that cannot copy on the server (plain WebDAV without COPY,
    some S3-compatible stores)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.capabilities = dataclasses.replace(self.capabilities, server_side_copy=False)

    async def copy(self, src: str, dst: str, **conditions) -> RemoteEntry:  # noqa: ANN003
        raise AssertionError("copy() called on a remote without server-side copy")


@pytest.mark.allow_warnings("conflict:")
async def test_a_conflict_copy_on_a_remote_without_server_side_copy(tmp_path: Path):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    theirs = os.urandom(5 * 1024 * 1024 + 3)  # more than one chunk
    (cloud / "report.doc").write_bytes(b"original")
    async with running(NoServerCopy(cloud), tmp_path / "cache", write_back_delay=3600) as h:
        await h.listdir("")
        await h.write_file("report.doc", b"ours")
        (cloud / "report.doc").write_bytes(theirs)  # changed elsewhere meanwhile
        await h.settle()
        assert (cloud / "report.doc").read_bytes() == b"ours"
        copies = [p for p in cloud.iterdir() if p.name.startswith("report.conflict-")]
        assert len(copies) == 1 and copies[0].read_bytes() == theirs
        assert h.fs.ns.getxattr((await h.resolve("report.doc")).ino, STATE_XATTR) == b"clean"


class CopyFails(LocalRemote):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.broken = True

    async def copy(self, src: str, dst: str, **conditions) -> RemoteEntry:  # noqa: ANN003
        if self.broken:
            raise RemoteUnavailable("copy: the remote is down")
        return await super().copy(src, dst, **conditions)


@pytest.mark.allow_warnings("conflict:")
async def test_a_file_stays_conflict_until_the_other_version_is_saved(tmp_path: Path):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    (cloud / "a.txt").write_bytes(b"original")
    remote = CopyFails(cloud)
    async with running(remote, tmp_path / "cache", write_back_delay=3600) as h:
        await h.listdir("")
        await h.write_file("a.txt", b"ours")
        (cloud / "a.txt").write_bytes(b"theirs")
        inode = await h.resolve("a.txt")
        with pytest.raises(RemoteError):
            await h.engine.uploader.reconcile(inode.ino)
        assert inode.state is FileState.CONFLICT
        assert h.fs.ns.getxattr(inode.ino, STATE_XATTR) == b"conflict"
        assert (cloud / "a.txt").read_bytes() == b"theirs"  # nothing overwritten
        remote.broken = False
        await h.settle()
        assert (cloud / "a.txt").read_bytes() == b"ours"
        copies = [p for p in cloud.iterdir() if p.name.startswith("a.conflict-")]
        assert len(copies) == 1 and copies[0].read_bytes() == b"theirs"
        assert inode.state is FileState.CLEAN


@pytest.mark.allow_warnings("upload of big.bin failed")
async def test_a_lost_upload_reply_is_recognised_by_the_remote_hash_without_a_download(tmp_path: Path):
    from cloudgw.remotes.faulty import Fault, FaultPlan, FaultyRemote, Rule
    from tests.inprocess.remotes import HashLocal

    cloud = tmp_path / "cloud"
    cloud.mkdir()
    inner = HashLocal(cloud)
    lost = Rule(Fault.LOST_REPLY, ops="write", limit=1)
    data = os.urandom(9 * 1024 * 1024)
    async with running(FaultyRemote(inner, FaultPlan([lost])), tmp_path / "cache", write_back_delay=0.05) as h:
        await h.write_file("big.bin", data)
        await h.settle()
        assert lost.fired == 1
        assert (cloud / "big.bin").read_bytes() == data
        assert sorted(p.name for p in cloud.iterdir()) == ["big.bin"]  # no conflict copy
        assert inner.calls["read"] == 0  # recognised by its SHA-1, not read back
