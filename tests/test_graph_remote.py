"""The OneDrive/SharePoint remote against the fake Graph server, beyond the contract suite:
SharePoint libraries, personal drives, uploads that survive an outage within one
process, a quickXorHash mismatch, the whole-remote throttle pause, the change feed's
view of items outside the mounted folder."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from cloudgw.errors import RemoteError, RemoteUnavailable, UserError
from cloudgw.remotes import graph_upload
from cloudgw.remotes.base import BytesSource, Expect, Kind
from cloudgw.remotes.registry import Common, open_remote
from tests.graph_support import graph_options, signed_in_copy

FRAGMENT = 327680


def remote_at(server: Any, url: str, tmp_path: Path, **options: Any) -> Any:
    token = signed_in_copy(server.token_template, tmp_path / f"token-{uuid.uuid4().hex[:6]}.json")
    return open_remote(url, graph_options(server, token, chunk_size=FRAGMENT, **options),
                       Common(timeout=10.0, state_dir=tmp_path / "state"), crypt=False)


@pytest.fixture
async def od(graph_server: Any, tmp_path: Path) -> Any:
    folder = f"t-{uuid.uuid4().hex[:8]}"
    graph_server.backdoor.mkdir(folder)
    remote = remote_at(graph_server, f"onedrive://me/{folder}", tmp_path)
    await remote.check()
    remote.folder = folder
    try:
        yield remote
    finally:
        await remote.aclose()


async def test_a_sharepoint_library_is_found_by_its_name(graph_server: Any, tmp_path: Path):
    library = graph_server.library_drive_ids["Documents"]
    graph_server.backdoor.put("Projects/plan.txt", b"team plan", drive=library)
    for name in ("Documents", "Shared Documents"):  # the API name and the one in the web URL
        remote = remote_at(graph_server, f"sharepoint://{graph_server.site_host}{graph_server.site_path}/{name}/Projects",
                           tmp_path)
        try:
            await remote.check()
            assert [e.path async for e in remote.list("")] == ["plan.txt"]
            assert await remote.read("plan.txt", 0, 100) == b"team plan"
        finally:
            await remote.aclose()
    remote = remote_at(graph_server, f"sharepoint://{graph_server.site_host}/sites/Team/Minutes", tmp_path)
    with pytest.raises(UserError, match="the site has no document library named 'Minutes'"):
        await remote.check()
    await remote.aclose()


async def test_a_personal_drive_round_trip_and_feed(personal_graph_server: Any, tmp_path: Path):
    """Personal OneDrive: cTags everywhere (also in delta: no extra reads), other ids."""
    personal_graph_server.backdoor.mkdir("Docs")
    remote = remote_at(personal_graph_server, "onedrive://me/Docs", tmp_path)
    try:
        await remote.check()
        cursor = await remote.change_cursor()
        written = await remote.write("a/b.txt", BytesSource(b"hello"), expect=Expect.ABSENT)
        personal_graph_server.backdoor.move("Docs/a/b.txt", "Docs/a/c.txt")
        personal_graph_server.counters.reset()
        changes, _ = await remote.changes(cursor)
        assert personal_graph_server.counters.requests == {"delta": 1}
        moved = [c for c in changes if c.id == written.id][-1]
        assert moved.entry is not None and moved.entry.name == "c.txt" and moved.entry.rev == written.rev
    finally:
        await remote.aclose()


async def test_business_delta_items_are_read_again_for_their_ctag(od: Any, graph_server: Any):
    cursor = await od.change_cursor()
    written = await od.write("x.txt", BytesSource(b"x"))
    graph_server.backdoor.move(f"{od.folder}/x.txt", f"{od.folder}/y.txt")
    changes, _ = await od.changes(cursor)
    last = [c for c in changes if c.id == written.id][-1]
    assert last.entry is not None and last.entry.rev == written.rev  # a move is not a content change
    assert last.parent_id is None  # directly in the mounted folder


async def test_the_feed_says_which_items_are_directly_in_the_mounted_folder(od: Any, graph_server: Any):
    cursor = await od.change_cursor()
    graph_server.backdoor.put("elsewhere/secret.txt", b"outside the mount")
    graph_server.backdoor.put(f"{od.folder}/inside.txt", b"in")
    changes, _ = await od.changes(cursor)
    inside = [c for c in changes if c.entry is not None and c.entry.name == "inside.txt"]
    outside = [c for c in changes if c.entry is not None and c.entry.name == "secret.txt"]
    assert inside and inside[-1].parent_id is None
    assert outside and outside[-1].parent_id not in (None, "")  # a parent the engine does not know: ignored there


async def test_an_upload_session_survives_dropped_fragments(od: Any, graph_server: Any):
    data = os.urandom(20 * FRAGMENT + 123)
    graph_server.fail_upload_fragments(3)  # connections dropped after the body was read, bytes not stored
    graph_server.counters.reset()
    entry = await od.write("big.bin", BytesSource(data))
    assert await od.read("big.bin", 0, len(data)) == data and entry.size == len(data)
    assert graph_server.counters.get("create_session") == 1  # the same session throughout
    assert graph_server.counters.bytes_uploaded == len(data)  # nothing sent twice that had arrived


@pytest.mark.allow_warnings("quickXorHash differs from the bytes sent")
async def test_a_hash_mismatch_is_sent_again_never_taken_for_done(od: Any, graph_server: Any,
                                                                  monkeypatch: pytest.MonkeyPatch):
    real, calls = graph_upload._read_all, []

    def first_one_wrong(source: Any) -> tuple[bytes, str]:
        data, digest = real(source)
        calls.append(digest)
        return data, ("0" * 40 if len(calls) == 1 else digest)  # as if a proxy had changed a byte

    monkeypatch.setattr(graph_upload, "_read_all", first_one_wrong)
    entry = await od.write("doc.txt", BytesSource(b"contents"))
    assert len(calls) == 2 and entry.kind is Kind.FILE
    assert graph_server.backdoor.read(f"{od.folder}/doc.txt") == b"contents"


@pytest.mark.allow_warnings("throttled (429); pausing every request for 2 s")
async def test_a_429_pauses_every_request_of_the_remote(od: Any, graph_server: Any):
    """One throttled request holds back the others until Retry-After has passed, instead
    of each finding out for itself."""
    await od.write("a.txt", BytesSource(b"a"))
    graph_server.throttle(1, retry_after=2)
    graph_server.counters.reset()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(od.stat, "a.txt")
    assert trio.current_time() - start >= 2.0  # (a lower bound only: the pause is the server's)
    assert graph_server.counters.get("throttled") == 1  # the other three waited at the gate


async def test_a_missing_sign_in_is_a_clear_error(graph_server: Any, tmp_path: Path):
    remote = open_remote("onedrive://me", graph_options(graph_server, tmp_path / "nobody.json"),
                         Common(name="docs"), crypt=False)
    with pytest.raises(UserError, match=r"login required: .* run 'cloudgw login --config CONFIG docs'"):
        await remote.check()
    await remote.aclose()
    loose = tmp_path / "loose.json"
    loose.write_text("{}")
    loose.chmod(0o644)
    remote = open_remote("onedrive://me", graph_options(graph_server, loose), Common(), crypt=False)
    with pytest.raises(UserError, match="readable by others"):
        await remote.check()
    await remote.aclose()


async def test_delete_never_takes_a_folder_with_it(od: Any, graph_server: Any):
    await od.write("d/a.txt", BytesSource(b"a"))
    with pytest.raises(RemoteError) as err:
        await od.delete("d")
    assert err.value.errno == errno.EISDIR
    assert graph_server.backdoor.read(f"{od.folder}/d/a.txt") == b"a"


async def test_rename_replaces_a_file_in_one_request_and_a_symlink_of_that_name(od: Any, graph_server: Any):
    await od.write("a.txt", BytesSource(b"new"))
    await od.write("b.txt", BytesSource(b"old"))
    await od.symlink("c", "target")
    graph_server.counters.reset()
    await od.rename("a.txt", "b.txt")
    assert graph_server.counters.get("patch") == 1 and graph_server.counters.get("delete") == 0
    assert graph_server.backdoor.list(od.folder) == ["b.txt", "c.cloudgw-symlink"]
    assert graph_server.backdoor.read(f"{od.folder}/b.txt") == b"new"
    await od.rename("b.txt", "c")  # a file onto a symlink's name: one name, one object
    assert graph_server.backdoor.list(od.folder) == ["c"]
    assert [(e.path, e.kind) async for e in od.list("")] == [("c", Kind.FILE)]


async def test_the_mtime_of_a_version_someone_saved_meanwhile_is_left_alone(od: Any, graph_server: Any):
    entry = await od.write("r.txt", BytesSource(b"ours"))
    ours = graph_server.backdoor.item(f"{od.folder}/r.txt")
    graph_server.backdoor.put(f"{od.folder}/r.txt", b"theirs, saved right after")
    await od.inner.set_mtime(ours, 1_600_000_000 * 10**9)  # (as our upload does right after its PUT)
    theirs = await od.stat("r.txt")
    assert theirs.rev != entry.rev and theirs.mtime_ns != 1_600_000_000 * 10**9
    assert graph_server.backdoor.read(f"{od.folder}/r.txt") == b"theirs, saved right after"


@pytest.mark.allow_warnings("throttled (429); pausing every request for 600 s")
async def test_a_long_throttle_fails_requests_at_once_instead_of_holding_them(od: Any, graph_server: Any):
    graph_server.throttle(1, retry_after=600)
    start = trio.current_time()
    with pytest.raises(RemoteUnavailable):
        await od.stat("x")
    with pytest.raises(RemoteUnavailable, match=r"throttled until \d\d:\d\d:\d\d"):
        await od.stat("y")
    assert trio.current_time() - start < 60  # not the 600 s the server asked for
    od.inner.http.throttle.paused_until = 0.0  # (the test's remote is used no further)


def test_a_refresh_never_writes_over_a_new_login(tmp_path: Path):
    from cloudgw.remotes.graph_auth import GraphAuth

    token = tmp_path / "t.json"
    token.write_text("old sign-in")
    token.chmod(0o600)
    auth = GraphAuth("cid", "https://localhost/common", token)
    auth._file_id = (0, 0, 0)  # what the daemon read before 'cloudgw login' replaced the file

    class Refreshed:
        has_state_changed = True

        def serialize(self) -> str:
            return "a refresh of the old sign-in"

    auth._cache = Refreshed()
    auth._save()
    assert token.read_text() == "old sign-in"
