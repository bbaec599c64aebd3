"""The poller's strategies: a change feed (cursor persisted with the changes), a pruned
listing (folder revs that propagate), and moves made elsewhere seen as moves (stable
ids): what a user sees in the tree, and what each poll costs in remote calls."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cloudgw.sync.poller import CURSOR_KEY
from tests.inprocess.harness import running
from tests.inprocess.remotes import FeedLocal, IdLocal, PropagatingLocal


def _tree(cloud: Path) -> None:
    (cloud / "docs" / "sub").mkdir(parents=True)
    (cloud / "other").mkdir()
    (cloud / "docs" / "a.txt").write_text("alpha")
    (cloud / "docs" / "sub" / "b.txt").write_text("beta")
    (cloud / "top.txt").write_text("top")


async def test_a_change_feed_poll_applies_changes_by_id_and_commits_its_cursor(tmp_path: Path):
    cloud = tmp_path / "cloud"
    _tree(cloud)
    remote = FeedLocal(cloud)
    async with running(remote, tmp_path / "cache") as h:
        assert h.engine.poller.strategy == "change-feed"
        assert sorted(await h.listdir("docs")) == ["a.txt", "sub"]
        await h.listdir("docs/sub")
        await h.listdir("other")
        first = await h.engine.poller.poll()  # no cursor yet: take one, then list everything
        assert remote.calls["change_cursor"] == 1 and h.store.get_kv(CURSOR_KEY) is not None
        assert first.changed == 0
        a = await h.resolve("docs/a.txt")
        assert await h.read_file("docs/a.txt") == b"alpha"
        reads = remote.calls["read"]
        sub_ino = (await h.resolve("docs/sub")).ino

        lists = remote.calls["list"]
        assert (await h.engine.poller.poll()).changed == 0  # idle: one request
        assert remote.calls["changes"] == 1 and remote.calls["list"] == lists

        os.rename(cloud / "docs" / "a.txt", cloud / "other" / "renamed.txt")  # moved elsewhere
        os.rename(cloud / "docs" / "sub", cloud / "other" / "sub2")  # a folder, with its content
        (cloud / "top.txt").write_text("top, edited elsewhere")
        (cloud / "docs" / "new.txt").write_text("new")
        result = await h.engine.poller.poll()
        assert result.changed >= 4
        assert sorted(await h.listdir("docs")) == ["new.txt"]
        assert sorted(await h.listdir("other")) == ["renamed.txt", "sub2"]
        assert (await h.resolve("other/renamed.txt")).ino == a.ino  # same inode ...
        assert await h.read_file("other/renamed.txt") == b"alpha"
        assert remote.calls["read"] == reads  # ... and its cached data kept: no download
        assert (await h.resolve("other/sub2")).ino == sub_ino
        assert await h.read_file("other/sub2/b.txt") == b"beta"
        assert await h.read_file("top.txt") == b"top, edited elsewhere"

        (cloud / "docs" / "new.txt").unlink()
        os.rename(cloud / "other" / "renamed.txt", tmp_path / "outside.txt")  # out of the mounted folder
        await h.engine.poller.poll()
        assert await h.listdir("docs") == [] and await h.listdir("other") == ["sub2"]
        cursor = h.store.get_kv(CURSOR_KEY)
    async with running(remote, tmp_path / "cache") as h:  # the cursor survives a restart
        assert h.store.get_kv(CURSOR_KEY) == cursor
        calls = remote.calls["change_cursor"]
        await h.engine.poller.poll()
        assert remote.calls["change_cursor"] == calls


async def test_an_expired_cursor_lists_everything_again_and_keeps_local_edits(tmp_path: Path):
    cloud = tmp_path / "cloud"
    _tree(cloud)
    remote = FeedLocal(cloud)
    async with running(remote, tmp_path / "cache", write_back_delay=3600) as h:
        await h.listdir("docs")
        await h.engine.poller.poll()
        await h.write_file("docs/a.txt", b"edited here, not uploaded", create=False)
        (cloud / "docs" / "from-elsewhere.txt").write_text("x")
        (cloud / "top.txt").unlink()
        remote.expire()
        cursors = remote.calls["change_cursor"]
        await h.engine.poller.poll()
        assert remote.calls["change_cursor"] == cursors + 1
        assert sorted(await h.listdir("")) == ["docs", "other"]
        assert sorted(await h.listdir("docs")) == ["a.txt", "from-elsewhere.txt", "sub"]
        assert await h.read_file("docs/a.txt") == b"edited here, not uploaded"
        await h.settle()
        assert (cloud / "docs" / "a.txt").read_bytes() == b"edited here, not uploaded"


async def test_a_listing_with_stable_ids_sees_a_rename_elsewhere_as_a_move(tmp_path: Path):
    cloud = tmp_path / "cloud"
    _tree(cloud)
    remote = IdLocal(cloud)
    async with running(remote, tmp_path / "cache") as h:
        assert h.engine.poller.strategy == "full-listing"
        await h.listdir("docs")
        await h.listdir("other")
        ino = (await h.resolve("docs/a.txt")).ino
        assert await h.read_file("docs/a.txt") == b"alpha"
        reads = remote.calls["read"]
        os.rename(cloud / "docs" / "a.txt", cloud / "other" / "a-renamed.txt")
        assert (await h.engine.poller.poll()).changed == 1
        assert (await h.resolve("other/a-renamed.txt")).ino == ino
        assert await h.read_file("other/a-renamed.txt") == b"alpha"
        assert remote.calls["read"] == reads
        assert "a.txt" not in await h.listdir("docs")


async def test_a_pruned_poll_is_one_request_when_idle_and_walks_only_changed_folders(tmp_path: Path):
    cloud = tmp_path / "cloud"
    _tree(cloud)
    (cloud / "docs" / "sub" / "deep").mkdir()
    (cloud / "docs" / "sub" / "deep" / "c.txt").write_text("gamma")
    remote = PropagatingLocal(cloud)
    async with running(remote, tmp_path / "cache") as h:
        assert h.engine.poller.strategy == "pruned-listing"
        for d in ("", "docs", "docs/sub", "docs/sub/deep", "other"):
            await h.listdir(d)
        await h.engine.poller.poll()  # learns the folder revs
        remote.calls.clear()
        remote.listed.clear()
        assert (await h.engine.poller.poll()).changed == 0
        assert dict(remote.calls) == {"stat": 1}  # idle: one request (a Depth-0 PROPFIND on WebDAV)

        (cloud / "docs" / "sub" / "deep" / "c.txt").write_text("gamma, edited elsewhere")
        (cloud / "docs" / "sub" / "deep" / "d.txt").write_text("delta")
        assert (await h.engine.poller.poll()).changed == 2
        assert sorted(remote.listed) == ["", "docs", "docs/sub", "docs/sub/deep"]  # not "other"
        assert await h.read_file("docs/sub/deep/c.txt") == b"gamma, edited elsewhere"
        assert await h.listdir("docs/sub/deep") == ["c.txt", "d.txt"]

        (cloud / "other").rmdir()
        assert (await h.engine.poller.poll()).changed == 1
        assert sorted(await h.listdir("")) == ["docs", "top.txt"]
        remote.calls.clear()
        assert (await h.engine.poller.poll()).changed == 0
        assert dict(remote.calls) == {"stat": 1}


async def test_a_folder_deleted_elsewhere_leaves_with_its_contents_on_a_pruned_poll(tmp_path: Path):
    """The pruned walk does not list a folder that is gone, only its parent: the folder's
    children must go with it, not make it look like a folder with local content (which
    was made again on the remote, empty, with its old children still shown here)."""
    cloud = tmp_path / "cloud"
    _tree(cloud)
    (cloud / "other" / "keep.txt").write_text("kept")
    remote = PropagatingLocal(cloud)
    async with running(remote, tmp_path / "cache", write_back_delay=3600) as h:
        for d in ("", "docs", "docs/sub", "other"):
            await h.listdir(d)
        await h.engine.poller.poll()
        await h.write_file("other/keep.txt", b"edited here", create=False)
        shutil.rmtree(cloud / "docs" / "sub")
        shutil.rmtree(cloud / "other")
        await h.engine.poller.poll()
        assert await h.listdir("docs") == ["a.txt"]
        assert await h.listdir("other") == ["keep.txt"]  # local edits keep their folder
        await h.settle()
        assert not (cloud / "docs" / "sub").exists()
        assert (cloud / "other" / "keep.txt").read_bytes() == b"edited here"


async def test_a_change_feed_move_into_a_folder_not_listed_here_leaves_the_old_place(tmp_path: Path):
    """A feed item that is not followed as a move (here: into a folder created elsewhere in
    the same batch, not listed yet) must still take the item from its old place: the feed
    never says so again (a listing would see the old path gone).  It stayed there, stale,
    and showed up a second time once the new folder was listed."""
    cloud = tmp_path / "cloud"
    _tree(cloud)
    remote = FeedLocal(cloud)
    async with running(remote, tmp_path / "cache") as h:
        await h.listdir("docs")
        await h.engine.poller.poll()
        (cloud / "docs" / "new").mkdir()
        os.rename(cloud / "docs" / "a.txt", cloud / "docs" / "new" / "a.txt")
        await h.engine.poller.poll()
        assert await h.listdir("docs") == ["new", "sub"]
        assert await h.listdir("docs/new") == ["a.txt"]
        assert await h.read_file("docs/new/a.txt") == b"alpha"


async def test_a_pruned_poll_looks_again_at_what_it_left_alone_for_our_own_change(tmp_path: Path):
    """A change seen while our own sync was changing that path is left alone; the folders
    above it must be walked again by the next poll, or it is never seen (their revs would
    say "nothing changed" for good)."""
    cloud = tmp_path / "cloud"
    _tree(cloud)
    remote = PropagatingLocal(cloud)
    async with running(remote, tmp_path / "cache") as h:
        for d in ("", "docs", "docs/sub"):
            await h.listdir(d)
        await h.engine.poller.poll()
        h.engine.ctx.in_flight.add("docs/sub/new.txt")  # an upload of ours to that path is under way
        (cloud / "docs" / "sub" / "new.txt").write_text("theirs")
        assert (await h.engine.poller.poll()).changed == 0  # left alone: it may be ours
        h.engine.ctx.in_flight.discard("docs/sub/new.txt")  # ours was abandoned
        assert (await h.engine.poller.poll()).changed == 1
        assert await h.read_file("docs/sub/new.txt") == b"theirs"
