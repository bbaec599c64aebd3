"""WebDAV through the real mount, beyond the core cases every remote runs
(test_basics.py, test_programs.py): what a WebDAV user checks, counted in the server's
own request log -- a directory rename is one MOVE, an idle poll of a Nextcloud is one
PROPFIND, a move made in the Nextcloud web UI keeps the file's inode and cache, a crash
with dirty files loses nothing, and a conflict keeps both versions."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import pytest

from tests.mount.conftest import _gateway, make_dav_backend
from tests.mount.gateway import Gateway
from tests.mount.util import wait_for
from tests.servers import DavServer

pytestmark = pytest.mark.mount


@pytest.fixture
def apache_gw(apache_server: DavServer, tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(make_dav_backend(apache_server, tmp_path), tmp_path)


@pytest.fixture
def nextcloud_gw(nextcloud_server: DavServer, tmp_path: Path) -> Iterator[Gateway]:
    """Polls only when asked (``gw.poll()``), so the request counts are the test's own."""
    backend = make_dav_backend(nextcloud_server, tmp_path)
    backend.args = ("--poll-interval", "86400")
    yield from _gateway(backend, tmp_path)


def _delta(server: DavServer, before: dict[str, int]) -> dict[str, int]:
    now = server.counts()
    return {m: n - before.get(m, 0) for m, n in now.items() if n != before.get(m, 0)}


def test_a_directory_of_1000_files_is_renamed_with_one_move(apache_gw, apache_server):
    gw, view = apache_gw, apache_gw.backend.view
    d = gw.mnt / "projects"
    (d / "sub").mkdir(parents=True)
    for i in range(1000):
        (d / f"f{i:04d}.txt").write_bytes(b"%d" % i)
    (d / "sub" / "deep.txt").write_text("deep")
    gw.sync()
    before = apache_server.counts()
    os.rename(d, gw.mnt / "archive")
    gw.sync()
    assert _delta(apache_server, before).get("MOVE") == 1
    files = view.files()
    assert len(files) == 1001 and all(p.startswith("archive/") for p in files)
    assert view.get("archive/f0999.txt") == b"999" and view.get("archive/sub/deep.txt") == b"deep"


def test_kill9_with_dirty_files_loses_nothing(apache_server, tmp_path):
    backend = make_dav_backend(apache_server, tmp_path)
    view = backend.view
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env,
                 args=("--write-back", "3600"))  # nothing leaves before the kill
    try:
        gw.mount()
        (gw.mnt / "report.txt").write_text("written, closed, not uploaded")
        (gw.mnt / "data").mkdir()
        (gw.mnt / "data" / "big.bin").write_bytes(os.urandom(3 << 20))
        expected = (gw.mnt / "data" / "big.bin").read_bytes()
        assert view.files() == {}
        gw.kill9()
        gw.args = ()
        gw.mount()
        gw.sync()
        assert view.get("report.txt") == b"written, closed, not uploaded"
        assert view.get("data/big.bin") == expected
        gw.umount()
    finally:
        gw.force_cleanup()


def test_a_file_changed_on_the_server_while_edited_here_keeps_both(apache_server, tmp_path):
    backend = make_dav_backend(apache_server, tmp_path)
    view = backend.view
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env)
    gw.expected_warnings += [r"conflict: report.txt changed on the remote"]
    try:
        gw.mount()
        (gw.mnt / "report.txt").write_text("first")
        gw.sync()
        gw.umount()
        gw.mount("--write-back", "3600")
        (gw.mnt / "report.txt").write_text("ours")  # not uploaded yet ...
        view.put("report.txt", b"theirs, from another client")  # ... when the server's copy changes
        gw.sync()
        assert view.get("report.txt") == b"ours"
        copies = [p for p in view.files() if re.fullmatch(r"report\.conflict-\d{8}-\d{6}(-\d+)?\.txt", p)]
        assert len(copies) == 1 and view.get(copies[0]) == b"theirs, from another client"
        gw.poll()  # the copy enters the mount like any file made elsewhere
        wait_for(lambda: (gw.mnt / copies[0]).exists(), timeout=10)
        assert (gw.mnt / copies[0]).read_bytes() == b"theirs, from another client"
        gw.umount()
    finally:
        gw.force_cleanup()
    assert not gw.bad_log_lines()


def test_an_idle_poll_of_a_nextcloud_is_one_propfind(nextcloud_gw, nextcloud_server):
    gw, view = nextcloud_gw, nextcloud_gw.backend.view
    for d in ("a/b/c", "other"):
        (gw.mnt / d).mkdir(parents=True)
    (gw.mnt / "a" / "b" / "c" / "f.txt").write_text("f")
    gw.sync()
    gw.poll()  # learns the folder ETags after our own uploads
    before = nextcloud_server.counts()
    gw.poll()
    assert _delta(nextcloud_server, before) == {"PROPFIND": 1}
    view.put("a/b/c/new.txt", b"from the web UI")
    before = nextcloud_server.counts()
    gw.poll()
    assert (gw.mnt / "a" / "b" / "c" / "new.txt").read_bytes() == b"from the web UI"
    assert _delta(nextcloud_server, before).get("PROPFIND", 0) <= 5  # root + a, a/b, a/b/c; not other


def test_a_move_made_on_a_nextcloud_keeps_the_inode_and_the_cached_data(nextcloud_gw, nextcloud_server):
    gw, view = nextcloud_gw, nextcloud_gw.backend.view
    (gw.mnt / "in").mkdir()
    (gw.mnt / "out").mkdir()
    data = os.urandom(2 << 20)
    (gw.mnt / "in" / "photo.jpg").write_bytes(data)
    gw.sync()
    ino = os.stat(gw.mnt / "in" / "photo.jpg").st_ino
    with nextcloud_server.client() as c:  # another client moves it (the web UI, a phone)
        r = c.request("MOVE", nextcloud_server.url(f"{view.folder}/in/photo.jpg"),
                      headers={"Destination": nextcloud_server.url(f"{view.folder}/out/renamed.jpg")})
        assert r.status_code in (201, 204), r.status_code
    before = nextcloud_server.counts()
    gw.poll()
    wait_for(lambda: (gw.mnt / "out" / "renamed.jpg").exists(), timeout=10)
    wait_for(lambda: not (gw.mnt / "in" / "photo.jpg").exists(), timeout=10)  # (kernel names: dropped async)
    assert os.stat(gw.mnt / "out" / "renamed.jpg").st_ino == ino
    assert (gw.mnt / "out" / "renamed.jpg").read_bytes() == data
    assert _delta(nextcloud_server, before).get("GET", 0) == 0  # served from the cache it had
