"""What the Google Drive remote does beyond the contract suite, against the fake Drive
(tests/servers/gdrive) with the real googleapiclient and google-auth: duplicate names
through the feed, Docs, shortcuts, shared drives, service accounts, resumable uploads
that survive failures and cancellation, quotas."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from cloudgw.errors import CursorExpired, PreconditionFailed, RemotePermissionDenied, RemoteUnavailable
from cloudgw.remotes.base import BytesSource, Expect, Kind
from cloudgw.remotes.health import THROTTLED, HealthBoard
from cloudgw.remotes.registry import Common, open_remote
from tests import gdrive_support, graph_support

MiB = 1 << 20
CHUNK = 4 * gdrive_support.CHUNK  # 1 MiB chunks: a 6 MiB file takes six


def make(server: Any, tmp_path: Path, folder: str, *, url: str | None = None, health: HealthBoard | None = None,
         **options: Any) -> Any:
    token = graph_support.signed_in_copy(server.token_template, tmp_path / "token.json")
    return open_remote(url or f"gdrive://my-drive/{folder}",
                       gdrive_support.gdrive_options(server, token, chunk_size=CHUNK, **options),
                       Common(timeout=10.0, state_dir=tmp_path / "state", health=health, name="drive" if health else ""),
                       crypt=False)


@pytest.fixture
async def drive(gdrive_server: Any, tmp_path: Path):  # noqa: ANN201
    folder = f"t-{uuid.uuid4().hex[:12]}"
    folder_id = gdrive_server.backdoor.create_folder("root", folder)["id"]
    remote = make(gdrive_server, tmp_path, folder)
    await remote.check()
    remote.folder_id = folder_id
    try:
        yield remote
    finally:
        await remote.aclose()


async def names(remote: Any, path: str = "") -> dict[str, Any]:
    return {e.path: e async for e in remote.list(path, recursive=True)}


async def test_duplicates_are_numbered_by_age_and_renumbered_through_the_feed(drive: Any, gdrive_server: Any):
    back = gdrive_server.backdoor
    cursor = await drive.change_cursor()
    made = [back.create_file(drive.folder_id, "report.pdf", f"v{i}".encode(),
                             created=f"2026-01-0{i + 1}T00:00:00.000Z") for i in range(3)]
    shown = await names(drive)
    assert {p: e.id for p, e in shown.items()} == {"report.pdf": made[0]["id"], "report (1).pdf": made[1]["id"],
                                                   "report (2).pdf": made[2]["id"]}
    changes, cursor = await drive.changes(cursor)
    assert {c.id: c.entry.path for c in changes} == {e.id: p for p, e in shown.items()}

    await drive.delete("report (1).pdf")  # the mount acts on the file the name stands for
    assert back.get(made[1]["id"])["trashed"] and not back.get(made[0]["id"])["trashed"]
    back.trash(made[0]["id"])  # the oldest goes elsewhere: the youngest moves up
    changes, cursor = await drive.changes(cursor)
    removed = [c.id for c in changes if c.entry is None]
    placed = {c.id: c.entry.path for c in changes if c.entry is not None}
    assert set(removed) == {made[0]["id"], made[1]["id"]}
    assert placed == {made[2]["id"]: "report.pdf"}  # same id: a rename, the cache stays
    assert changes.index(next(c for c in changes if c.entry is not None)) > max(
        changes.index(c) for c in changes if c.entry is None)  # removals first: no collision
    assert await drive.read("report.pdf", 0, 10) == b"v2"


async def test_an_idle_poll_is_one_request(drive: Any, gdrive_server: Any):
    cursor = await drive.change_cursor()
    gdrive_server.counters.reset()
    changes, again = await drive.changes(cursor)
    assert changes == [] and again == cursor
    assert sum(gdrive_server.counters.requests.values()) == 1
    with pytest.raises(CursorExpired):  # a token Drive no longer takes: the engine lists everything again
        await drive.changes("9" + cursor + "0")


async def test_moves_in_and_out_of_the_mounted_folder(drive: Any, gdrive_server: Any):
    back = gdrive_server.backdoor
    outside = back.create_folder("root", f"elsewhere-{uuid.uuid4().hex[:6]}")
    inner = back.create_folder(outside["id"], "Photos")
    back.create_file(inner["id"], "a.jpg", b"jpeg")
    kept = back.create_file(drive.folder_id, "keep.txt", b"k")
    cursor = await drive.change_cursor()
    back.create_file(outside["id"], "noise.txt", b"not ours")
    back.move(inner["id"], drive.folder_id)
    back.move(kept["id"], outside["id"])
    changes, cursor = await drive.changes(cursor)
    by_id = {c.id: c for c in changes}
    assert by_id[inner["id"]].entry.kind is Kind.DIR and by_id[inner["id"]].parent_id is None
    assert by_id[kept["id"]].entry is None  # moved out: leaves the mount
    assert all(c.entry is None for c in changes if c.id not in (inner["id"],))
    assert "Photos/a.jpg" in await names(drive)  # the engine lists a folder moved in


@pytest.mark.allow_warnings("read-only")
async def test_a_doc_is_its_export_read_only_and_keeps_its_drive_name_when_renamed(drive: Any, gdrive_server: Any):
    back = gdrive_server.backdoor
    doc = back.create_doc(drive.folder_id, "Budget", "spreadsheet", text="1,2,3")
    shown = await names(drive)
    entry = shown["Budget.xlsx"]
    body = await drive.read("Budget.xlsx", 0, 1 << 20, rev=entry.rev)
    assert len(body) == entry.size > 0 and entry.rev.startswith("ro:")
    with pytest.raises(RemotePermissionDenied):
        await drive.write("Budget.xlsx", BytesSource(b"mine"), expect=entry.rev)
    moved = await drive.rename("Budget.xlsx", "Plan.xlsx", expect=entry.rev)
    assert back.get(doc["id"])["name"] == "Plan" and moved.rev == entry.rev  # a rename is no content change
    back.edit_doc(doc["id"], "4,5,6,7")
    again = (await names(drive))["Plan.xlsx"]
    assert again.rev != entry.rev and await drive.read("Plan.xlsx", 0, 1 << 20) != body


async def test_shortcuts_point_inside_or_to_the_drive_url(drive: Any, gdrive_server: Any):
    back = gdrive_server.backdoor
    docs = back.create_folder(drive.folder_id, "docs")
    target = back.create_file(docs["id"], "a.txt", b"a")
    far = back.create_file("root", f"far-{uuid.uuid4().hex[:6]}", b"b")
    sub = back.create_folder(drive.folder_id, "links")
    back.create_shortcut(sub["id"], "to-a", target["id"])
    back.create_shortcut(sub["id"], "to-far", far["id"])
    shown = await names(drive)
    assert shown["links/to-a"].kind is Kind.SYMLINK
    assert await drive.readlink("links/to-a") == "../docs/a.txt"
    assert await drive.readlink("links/to-far") == "https://drive.google.com/open?id=" + far["id"]


async def test_a_change_between_the_check_and_the_commit_is_a_conflict(drive: Any, gdrive_server: Any):
    first = await drive.write("f", BytesSource(b"ours"), expect=Expect.ABSENT)
    gdrive_support.put(gdrive_server.backdoor, "f", b"theirs", parent=drive.folder_id)
    with pytest.raises(PreconditionFailed):
        await drive.write("f", BytesSource(b"ours again"), expect=first.rev)
    assert await drive.read("f", 0, 100) == b"theirs"


async def test_failed_chunks_are_resumed_not_resent(drive: Any, gdrive_server: Any):
    data = os.urandom(6 * MiB + 5)
    gdrive_server.counters.reset()
    gdrive_server.fail_upload_chunks(2)  # two chunks lost on the way, connection closed
    entry = await drive.write("big", BytesSource(data))
    assert entry.hash == hashlib.md5(data).hexdigest()
    assert await drive.read("big", 0, len(data)) == data
    assert gdrive_server.counters["upload_session"] == 1  # one session, continued


async def test_a_cancelled_upload_continues_from_its_session(drive: Any, gdrive_server: Any, tmp_path: Path):
    data = os.urandom(6 * MiB)
    sent: list[int] = []

    class Slow(BytesSource):
        def read(self, offset: int, length: int) -> bytes:
            sent.append(offset)
            return super().read(offset, length)

    with trio.move_on_after(30) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drive.write, "big", Slow(data))
            while len(sent) < 4:  # three chunks acknowledged, the fourth read
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    gdrive_server.counters.reset()
    again = make(gdrive_server, tmp_path, "", url=f"gdrive://my-drive/{drive.place.folder}")
    await again.check()
    try:
        entry = await again.write("big", BytesSource(data))
    finally:
        await again.aclose()
    assert entry.hash == hashlib.md5(data).hexdigest()
    assert gdrive_server.counters["upload_session"] == 0  # the old session, resumed
    assert gdrive_server.counters.bytes_uploaded <= len(data) - 3 * CHUNK


@pytest.mark.allow_warnings("daily upload limit", "throttled")
async def test_quotas_pause_the_remote_or_its_uploads(gdrive_server: Any, tmp_path: Path):
    folder = f"t-{uuid.uuid4().hex[:12]}"
    gdrive_server.backdoor.create_folder("root", folder)
    board = HealthBoard()
    remote = make(gdrive_server, tmp_path, folder, health=board, quota_pause=600.0)
    await remote.check()
    try:
        gdrive_server.rate_limit(3)  # 403 userRateLimitExceeded x3: backoff 1, 2, 4 s for every request
        seen: list[str] = []

        async def watch() -> None:
            while True:
                seen.extend(c["state"] for c in board.snapshot().values())
                await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await remote.write("a", BytesSource(b"after the storm"))
            nursery.cancel_scope.cancel()
        assert THROTTLED in seen and board.snapshot() == {}
        gdrive_server.upload_quota_exceeded(True)
        with pytest.raises(RemoteUnavailable, match="upload quota exceeded until"):
            await remote.write("b", BytesSource(b"waits"))
        assert board.snapshot()["drive"]["state"] == "upload quota exceeded"
        assert await remote.read("a", 0, 100) == b"after the storm"  # reads go on
        with pytest.raises(RemoteUnavailable):  # no request while paused
            await remote.write("b", BytesSource(b"waits"))
    finally:
        gdrive_server.upload_quota_exceeded(False)
        await remote.aclose()


async def test_a_shared_drive_by_name(gdrive_server: Any, tmp_path: Path):
    name = f"Team {uuid.uuid4().hex[:6]}"
    drive_id = gdrive_server.backdoor.create_shared_drive(name)
    gdrive_server.backdoor.create_folder("root", "Projects", drive=drive_id)
    remote = make(gdrive_server, tmp_path, "", url=f"gdrive://shared/{name}/Projects")
    await remote.check()
    try:
        cursor = await remote.change_cursor()
        await remote.write("x/plan.txt", BytesSource(b"plan"))
        assert {e.path async for e in remote.list("", recursive=True)} == {"x", "x/plan.txt"}
        gdrive_support.put(gdrive_server.backdoor, "Projects/x/other.txt", b"o", parent=drive_id)
        changes, _ = await remote.changes(cursor)
        assert {c.entry.path for c in changes if c.entry is not None} >= {"plan.txt", "other.txt"}
    finally:
        await remote.aclose()


async def test_a_service_account_acting_for_a_user(gdrive_server: Any, tmp_path: Path):
    folder = f"t-{uuid.uuid4().hex[:12]}"
    gdrive_server.backdoor.create_folder("root", folder)
    key = gdrive_server.service_account_file(tmp_path / "sa.json")
    remote = open_remote(f"gdrive://my-drive/{folder}", {
        "service_account_file": str(key), "impersonate": gdrive_server.user, "api_url": gdrive_server.api_url,
        "token_url": gdrive_server.token_url}, Common(timeout=10.0), crypt=False)
    await remote.check()
    try:
        await remote.write("hello", BytesSource(b"from the service account"))
        assert await remote.read("hello", 0, 100) == b"from the service account"
    finally:
        await remote.aclose()


async def test_a_mount_of_several_remotes_follows_their_feeds(gdrive_server: Any, tmp_path: Path):
    """A config file makes a router: it has a feed when every remote has one; a file moved
    between two mounted folders of one drive (one id space) leaves the first before it
    appears in the second."""
    from cloudgw.remotes.router import RouterRemote

    back = gdrive_server.backdoor
    folders = {name: f"t-{uuid.uuid4().hex[:12]}" for name in ("a", "b")}
    ids = {name: back.create_folder("root", folder)["id"] for name, folder in folders.items()}
    remotes = {name: make(gdrive_server, tmp_path / name, folder) for name, folder in folders.items()}
    router = RouterRemote(remotes)
    await router.check()
    try:
        assert router.capabilities.change_feed
        cursor = await router.change_cursor()
        sub = back.create_folder(ids["a"], "sub")
        moving = back.create_file(sub["id"], "f.txt", b"f")
        changes, cursor = await router.changes(cursor)
        by_id = {c.id: c for c in changes}
        assert by_id[sub["id"]].path == "a/sub"  # directly below a remote's folder: by path
        assert by_id[moving["id"]].parent_id == sub["id"] and by_id[moving["id"]].path is None
        back.move(moving["id"], ids["b"])  # from one mounted folder to the other, in the cloud
        changes, cursor = await router.changes(cursor)
        assert [(c.id, c.path, c.entry is None) for c in changes] == [
            (moving["id"], None, True), (moving["id"], "b/f.txt", False)]
        gdrive_server.counters.reset()
        assert (await router.changes(cursor))[0] == []
        assert sum(gdrive_server.counters.requests.values()) == 2  # one per remote when idle
        with pytest.raises(CursorExpired):
            await RouterRemote({"a": remotes["a"]}).changes(cursor)  # the configuration changed
    finally:
        await router.aclose()


async def test_names_drive_allows_are_shown_and_given_back(drive: Any, gdrive_server: Any):
    back = gdrive_server.backdoor
    back.create_file(drive.folder_id, "a/b", b"slash")
    back.create_file(drive.folder_id, ".", b"dot")
    assert {"a\u2215b", "\uff0e"} <= set(await names(drive))
    assert await drive.read("a\u2215b", 0, 10) == b"slash"
    await drive.write("x\u2215y", BytesSource(b"made here"))
    assert [f["name"] for f in back.children(drive.folder_id) if f["name"].startswith("x")] == ["x/y"]
    assert "x\u2215y" in await names(drive)


async def test_after_a_restart_a_departure_still_renumbers_the_duplicates(drive: Any, gdrive_server: Any,
                                                                         tmp_path: Path):
    back = gdrive_server.backdoor
    older = back.create_file(drive.folder_id, "report.pdf", b"A", created="2026-01-01T00:00:00.000Z")
    newer = back.create_file(drive.folder_id, "report.pdf", b"B", created="2026-02-01T00:00:00.000Z")
    again = make(gdrive_server, tmp_path / "again", "", url=f"gdrive://my-drive/{drive.place.folder}")
    await again.check()  # a new process: remembers nothing of what it listed
    try:
        cursor = await again.change_cursor()
        back.trash(older["id"])
        changes, _ = await again.changes(cursor)
        assert [(c.id, c.entry.path if c.entry else None) for c in changes] == [
            (older["id"], None), (newer["id"], "report.pdf")]
    finally:
        await again.aclose()


@pytest.mark.allow_warnings("not shown, its export failed")
async def test_a_doc_that_does_not_export_is_left_out_not_the_folder(drive: Any, gdrive_server: Any,
                                                                    monkeypatch: pytest.MonkeyPatch):
    from cloudgw.errors import RemoteUnsupported

    back = gdrive_server.backdoor
    bad = back.create_doc(drive.folder_id, "Broken", "document", text="x")
    back.create_doc(drive.folder_id, "Fine", "document", text="y")
    back.create_file(drive.folder_id, "plain.txt", b"p")
    real_get = drive.exports.get

    async def refuse(http: Any, file: dict, *args: Any, **kwargs: Any) -> Any:
        if file["id"] == bad["id"]:
            raise RemoteUnsupported("Drive does not export this file")
        return await real_get(http, file, *args, **kwargs)

    monkeypatch.setattr(drive.exports, "get", refuse)
    cursor = await drive.change_cursor()
    assert set(await names(drive)) == {"Fine.docx", "plain.txt"}
    back.create_file(drive.folder_id, "later.txt", b"l")
    changes, _ = await drive.changes(cursor)
    assert {c.entry.path for c in changes if c.entry} >= {"later.txt", "Fine.docx"}


@pytest.mark.allow_warnings("daily upload limit")
async def test_the_daily_cap_in_the_middle_of_a_session_waits_and_resumes(drive: Any, gdrive_server: Any,
                                                                          caplog: pytest.LogCaptureFixture):
    data = os.urandom(6 * MiB)

    class CapAfterTwoChunks(BytesSource):
        def read(self, offset: int, length: int) -> bytes:
            if offset == 2 * CHUNK:
                gdrive_server.upload_quota_exceeded(True)
            return super().read(offset, length)

    try:
        gdrive_server.counters.reset()
        with pytest.raises(RemoteUnavailable, match="upload quota exceeded"):
            await drive.write("big", CapAfterTwoChunks(data))
        assert gdrive_server.counters["upload_chunk"] == 2  # two stored, then the cap:
        assert len([r for r in caplog.records if "daily upload limit" in r.getMessage()]) == 1  # not tried again
    finally:
        gdrive_server.upload_quota_exceeded(False)
    drive.http.uploads_paused_until = 0.0  # (as when quota_pause has passed)
    gdrive_server.counters.reset()
    entry = await drive.write("big", BytesSource(data))
    assert entry.hash == hashlib.md5(data).hexdigest()
    assert gdrive_server.counters["upload_session"] == 0 and gdrive_server.counters.bytes_uploaded == len(data) - 2 * CHUNK


async def test_a_shifted_name_still_means_the_file_it_showed(drive: Any, gdrive_server: Any):
    back = gdrive_server.backdoor
    a, b, c = (back.create_file(drive.folder_id, "report.pdf", tag, created=f"2026-01-0{i + 1}T00:00:00.000Z")
               for i, tag in enumerate((b"A", b"B", b"C")))
    shown = await names(drive)
    c_rev = shown["report (2).pdf"].rev
    back.trash(a["id"])  # elsewhere: B is now "report.pdf", C "report (1).pdf" -- not polled yet
    moved = await drive.rename("report (2).pdf", "final.pdf", expect=c_rev)  # what the mount showed
    assert moved.id == c["id"] and back.get(c["id"])["name"] == "final.pdf"
    await drive.delete("report (1).pdf", expect=shown["report (1).pdf"].rev)  # B, now shown as report.pdf
    assert back.get(b["id"])["trashed"]
