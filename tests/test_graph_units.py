"""The Graph remote's pure parts: URLs, addressing, times, entries, the health board,
session records (no server; the remote against the fake is in tests/contract and tests/mount)."""

from __future__ import annotations

import os
import stat
import time

import pytest
import trio

from cloudgw.errors import SourceChanged, TransientRemoteError, UserError
from cloudgw.remotes.base import Kind
from cloudgw.remotes.graph_items import entry_of, format_time, item_url, parse_time
from cloudgw.remotes.graph_upload import checked_fragment_size
from cloudgw.remotes.upload_sessions import SessionRecord, SessionRecords, interrupted
from cloudgw.remotes.health import HealthBoard
from cloudgw.remotes.onedrive import Place
from cloudgw.remotes.registry import open_remote


def place(url: str) -> Place:
    remote = open_remote(url, {"client_id": "cid", "token_file": "/nonexistent/t.json"}, crypt=False)
    return getattr(remote, "inner", remote).place


def test_urls_name_the_drive_and_folder():
    assert place("onedrive://me/Documents/Team%20A") == Place("me", folder="Documents/Team A")
    assert place("onedrive://me") == Place("me")
    assert place("onedrive://drives/b!xyz/Backup") == Place("drive", drive_id="b!xyz", folder="Backup")
    assert place("sharepoint://contoso.sharepoint.com/sites/Team/Shared%20Documents/Projects") == Place(
        "site", host="contoso.sharepoint.com", site="sites/Team", library="Shared Documents", folder="Projects")


@pytest.mark.parametrize("url", ["onedrive://you/x", "onedrive://drives", "sharepoint://h/Team/Docs",
                                 "sharepoint://h/sites/Team", "onedrive://me/../etc"])
def test_bad_urls_are_one_line_errors(url):
    with pytest.raises(UserError) as err:
        open_remote(url, {"client_id": "c", "token_file": "/x"}, crypt=False)
    assert "\n" not in str(err.value)


def test_options_needed_to_sign_in():
    with pytest.raises(UserError, match="client_id is not set"):
        open_remote("onedrive://me", {"token_file": "/x"}, crypt=False)
    with pytest.raises(UserError, match="token_file is not set"):
        open_remote("onedrive://me", {"client_id": "c"}, crypt=False)
    with pytest.raises(UserError, match="chunk_size must be a multiple of 327680"):
        open_remote("onedrive://me", {"client_id": "c", "token_file": "/x", "chunk_size": 1 << 20}, crypt=False)
    assert checked_fragment_size(320 << 10) == 327680
    with pytest.raises(UserError):
        checked_fragment_size(192 * 327680)  # 60 MiB: Graph wants fragments below it


def test_item_urls_quote_each_segment_once():
    assert item_url("/drives/D", "R", "") == "/drives/D/items/R"
    assert item_url("/drives/D", "R", "", "children") == "/drives/D/items/R/children"
    assert item_url("/drives/D", "R", "a b/c#%.txt") == "/drives/D/items/R:/a%20b/c%23%25.txt:"
    assert item_url("/drives/D", "R", "ü/x", "content") == "/drives/D/items/R:/%C3%BC/x:/content"


def test_times_round_trip_in_100ns_steps():
    ns = 1_600_000_000_123_456_700
    assert format_time(ns) == "2020-09-13T12:26:40.1234567Z"
    assert parse_time(format_time(ns)) == ns
    assert parse_time("2020-09-13T12:26:40Z") == 1_600_000_000_000_000_000
    assert parse_time(None) == 0 and parse_time("garbage") == 0


def test_entries_from_drive_items():
    f = {"id": "1", "name": "a.txt", "cTag": "c1", "eTag": "e1", "size": 3,
         "file": {"hashes": {"quickXorHash": "AQIDBAUGBwgJCgsMDQ4PEBESExQ="}},
         "fileSystemInfo": {"lastModifiedDateTime": "2020-09-13T12:26:40Z"}}
    e = entry_of("d/a.txt", f)
    assert (e.kind, e.size, e.rev, e.id, e.mtime_ns) == (Kind.FILE, 3, "c1", "1", 1_600_000_000 * 10**9)
    assert e.hash == bytes(range(1, 21)).hex()
    link = entry_of("d/l.cloudgw-symlink", {**f, "name": "l.cloudgw-symlink"})
    assert (link.kind, link.path) == (Kind.SYMLINK, "d/l")
    assert entry_of("d", {"id": "2", "name": "d", "folder": {"childCount": 0}}).kind is Kind.DIR
    assert entry_of("n", {"id": "3", "name": "n", "package": {"type": "oneNote"}}) is None


def test_health_board_reports_and_recovers():
    board, recovered = HealthBoard(), []
    board.on_recovered(lambda name, state: recovered.append((name, state)))
    board.report("docs", "throttled", until=time.time() + 60)
    board.report("docs", "login required", "run cloudgw login")
    board.report("photos", "throttled", until=1.0)  # already over: not shown
    snap = board.snapshot()
    assert set(snap) == {"docs"} and snap["docs"]["state"] == "login required" and snap["docs"]["also"] == ["throttled"]
    board.clear("docs", "throttled")  # the throttle ends: still signed out
    assert recovered == [("docs", "throttled")] and board.snapshot()["docs"]["state"] == "login required"
    board.clear("docs", "login required")
    board.clear("docs", "login required")  # (told once)
    assert recovered == [("docs", "throttled"), ("docs", "login required")] and board.snapshot() == {}


def test_session_records_are_private_and_per_path(tmp_path):
    records = SessionRecords(tmp_path / "s")
    r = SessionRecord("a/b.bin", "https://up/secret", 10 << 20, "any", acked=327680, acked_sha="ab")
    records.save(r)
    assert records.load("a/b.bin") == r
    assert records.load("a/other") is None
    (file,) = (tmp_path / "s").iterdir()
    assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    records.drop("a/b.bin")
    assert records.all() == [] and SessionRecords(None).load("x") is None


async def test_an_upload_cancelled_inside_a_librarys_nursery_keeps_its_session():
    """trio wraps a cancellation that lands in a nursery (httpx's connect: happy eyeballs) in an
    exception group; the session must be kept for the resume all the same (Drive's upload test
    started over 1 run in ~10 before ``upload_sessions.interrupted``)."""
    caught: list[BaseException] = []
    with trio.CancelScope() as scope:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep_forever)
                await trio.sleep(0)
                scope.cancel()
                await trio.sleep_forever()
        except BaseException as exc:
            caught.append(exc)
            raise
    assert isinstance(caught[0], BaseExceptionGroup) and interrupted(caught[0])
    assert interrupted(TransientRemoteError("reset"))
    assert not interrupted(SourceChanged("written meanwhile"))
    assert not interrupted(BaseExceptionGroup("both", [TransientRemoteError("reset"), SourceChanged("written")]))
