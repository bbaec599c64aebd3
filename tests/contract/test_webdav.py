"""What the WebDAV remote promises beyond the shared contract, on the real servers:
revisions that do not flip between Apache's weak and strong ETags, a directory rename
as one MOVE, credentials from options or netrc (never readable by others, never in a
message), reads resumed after a cut connection, Depth infinity where the server allows
it, mtimes where the server keeps them, and Nextcloud's folder ETags, file ids,
checksums and chunked uploads."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from pathlib import Path

import pytest

from cloudgw.errors import PreconditionFailed, SourceChanged, UserError
from cloudgw.remotes.base import BytesSource, Expect, FileAttrs, Kind, read_into
from cloudgw.remotes.registry import open_remote
from cloudgw.remotes.webdav import WebDavRemote
from cloudgw.remotes.webdav_chunked import transfer_prefix
from cloudgw.sync.compare import holds_same_bytes
from tests.contract.conftest import make_webdav
from tests.servers import DavServer
from tests.servers.wsgidav import NEXTCLOUD_UPLOADS

MiB = 1 << 20


def _folder(server: DavServer) -> str:
    folder = f"w-{uuid.uuid4().hex[:12]}"
    server.mkcol(folder)
    return folder


def _raw_etag(server: DavServer, path: str) -> str:
    with server.client() as c:
        r = c.request("PROPFIND", server.url(path), headers={"Depth": "0"})
    return re.search(r"getetag>([^<]*)<", r.text).group(1)


def _wait(predicate, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


async def test_weak_and_strong_etags_of_the_same_content_are_one_revision(apache_server: DavServer):
    """Apache sends W/"size-mtime" while the file is younger than a second and
    "size-mtime" afterwards; the revision must not change (that would look like an
    outside edit), and reads and conditional writes must work in both phases."""
    folder = _folder(apache_server)
    remote = make_webdav(apache_server, folder)
    try:
        written = await remote.write("f", BytesSource(b"fresh"))
        weak = _raw_etag(apache_server, f"{folder}/f")
        assert weak.startswith('W/"')
        assert (await remote.stat("f")).rev == written.rev
        assert await remote.read("f", 0, 10, rev=written.rev) == b"fresh"  # no If-Match: Apache refuses weak ones
        _wait(lambda: not _raw_etag(apache_server, f"{folder}/f").startswith("W/"))
        strong = _raw_etag(apache_server, f"{folder}/f")
        assert strong == weak[2:]  # the same value: "<size hex>-<mtime in µs hex>"
        assert (await remote.stat("f")).rev == written.rev
        assert [e.rev async for e in remote.list("")] == [written.rev]
        assert await remote.read("f", 1, 3, rev=written.rev) == b"res"
        again = await remote.write("f", BytesSource(b"later"), expect=written.rev)
        assert again.rev != written.rev
    finally:
        await remote.aclose()


@pytest.mark.parametrize("server_name", ["apache", "wsgidav", "nextcloud"])
@pytest.mark.parametrize("expect_kind", ["absent", "rev"])
async def test_a_copy_racing_an_outside_writer_fails(request, monkeypatch, server_name: str,  # noqa: ANN001
                                                     expect_kind: str):
    """Another client writes the target right after our PROPFIND of it: the COPY's
    ``Overwrite: F`` or tagged ``If`` on the target (next to the source's) still refuses it."""
    from cloudgw.remotes import webdav_moves
    from tests.contract.conftest import _webdav

    h = _webdav(request.getfixturevalue(f"{server_name}_server"))
    remote = h.remote
    real = webdav_moves._expectation

    async def then_theirs(*args: object) -> object:
        found = await real(*args)
        h.put_outside("dst", b"theirs")
        return found

    try:
        await remote.write("src", BytesSource(b"ours, the source"))
        expect: Expect | str = Expect.ABSENT
        if expect_kind == "rev":
            expect = (await remote.write("dst", BytesSource(b"mine"))).rev
        monkeypatch.setattr(webdav_moves, "_expectation", then_theirs)
        with pytest.raises(PreconditionFailed):
            await remote.copy("src", "dst", expect=expect)
        assert await remote.read("dst", 0, 100) == b"theirs"
    finally:
        await remote.aclose()


@pytest.mark.parametrize("server_name", ["apache", "wsgidav"])
async def test_a_directory_rename_is_one_move(request, server_name: str):  # noqa: ANN001
    server: DavServer = request.getfixturevalue(f"{server_name}_server")
    folder = _folder(server)
    remote = make_webdav(server, folder)
    try:
        assert remote.capabilities.dir_rename
        for name in ("a/x", "a/sub/y", "a/sub/deeper/z"):
            await remote.write(name, BytesSource(name.encode()))
        await remote.mkdir("b")
        before = server.counts()
        moved = await remote.rename("a", "b")  # an empty directory is replaced, as by rename(2)
        after = server.counts()
        assert moved.kind is Kind.DIR and moved.path == "b"
        assert after.get("MOVE", 0) - before.get("MOVE", 0) == 1
        for method in ("PUT", "COPY", "MKCOL"):
            assert after.get(method, 0) == before.get(method, 0), method
        assert {e.path: e.kind async for e in remote.list("", recursive=True)} == {
            "b": Kind.DIR, "b/x": Kind.FILE, "b/sub": Kind.DIR, "b/sub/y": Kind.FILE,
            "b/sub/deeper": Kind.DIR, "b/sub/deeper/z": Kind.FILE}
        assert await remote.read("b/sub/deeper/z", 0, 100) == b"a/sub/deeper/z"
    finally:
        await remote.aclose()


async def test_credentials_from_netrc_and_password_files(apache_server: DavServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    folder = _folder(apache_server)
    url = apache_server.remote_url(folder)
    netrc = apache_server.write_netrc(tmp_path / "netrc")
    monkeypatch.setenv("NETRC", str(netrc))
    remote = open_remote(url)
    try:
        await remote.check()
    finally:
        await remote.aclose()

    netrc.chmod(0o644)  # readable by others: refused, as ssh refuses such keys
    with pytest.raises(UserError, match=r"readable by others \(mode 0644\): chmod 600") as info:
        open_remote(url)
    assert apache_server.password not in str(info.value)
    netrc.chmod(0o600)

    pw = tmp_path / "pw"
    pw.write_text(apache_server.password + "\n")
    pw.chmod(0o644)
    with pytest.raises(UserError, match=r"password_file: .* readable by others") as info:
        open_remote(url, {"user": apache_server.user, "password_file": str(pw)}, where="w")
    assert apache_server.password not in str(info.value)
    pw.chmod(0o600)
    remote = open_remote(url, {"user": apache_server.user, "password_file": str(pw)})
    try:
        await remote.check()
    finally:
        await remote.aclose()

    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password-" + uuid.uuid4().hex)
    wrong.chmod(0o600)
    remote = open_remote(url, {"user": apache_server.user, "password_file": str(wrong)})
    try:
        with pytest.raises(UserError, match=r"refused user 'cloudgw' \(401 Unauthorized\)") as info:
            await remote.check()
    finally:
        await remote.aclose()
    assert wrong.read_text() not in str(info.value) and "\n" not in str(info.value)

    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    with pytest.raises(UserError, match="has no password"):
        open_remote(url, {"user": "someone"})
    for bad in (f"webdav://u:secret@127.0.0.1:{apache_server.port}/dav", "webdav:///dav"):
        with pytest.raises(UserError) as info:
            open_remote(bad)
        assert "secret" not in str(info.value)


async def test_a_streamed_read_that_breaks_is_resumed_where_it_broke(apache_server: DavServer):
    from tests.servers.proxy import outage_proxy

    folder = _folder(apache_server)
    data = os.urandom(6 * MiB + 3)
    with apache_server.client() as c:
        assert c.put(apache_server.url(f"{folder}/big"), content=data).status_code == 201
    with outage_proxy(apache_server.port) as proxy:
        remote = make_webdav(apache_server, folder, base=proxy.endpoint_url, read_timeout=2.0)
        pieces: list[bytes] = []

        def sink(piece: bytes) -> None:
            pieces.append(piece)
            if len(pieces) == 1:  # cut every connection; back 0.3 s later
                proxy.down()
                threading.Timer(0.3, proxy.up).start()

        try:
            await read_into(remote, "big", 0, len(data), sink)
        finally:
            await remote.aclose()
    assert len(pieces) > 1 and b"".join(pieces) == data
    assert len(proxy.gets) >= 2 and proxy.gets[-1].startswith("GET ")


@pytest.mark.parametrize("server_name, propfinds", [("apache", 4), ("wsgidav", 1)])
async def test_recursive_listing_uses_depth_infinity_where_allowed(request, server_name: str, propfinds: int):  # noqa: ANN001
    """Apache refuses Depth infinity (403, DavDepthInfinity off): one refused request, then
    a Depth 1 walk (root, d, d/e); wsgidav answers the whole tree at once."""
    server: DavServer = request.getfixturevalue(f"{server_name}_server")
    folder = _folder(server)
    remote = make_webdav(server, folder)
    try:
        await remote.write("d/e/f", BytesSource(b"x"))
        await remote.write("g", BytesSource(b"y"))
        before = server.counts().get("PROPFIND", 0)
        assert {e.path async for e in remote.list("", recursive=True)} == {"d", "d/e", "d/e/f", "g"}
        assert server.counts().get("PROPFIND", 0) - before == propfinds
    finally:
        await remote.aclose()


@pytest.mark.parametrize("server_name, kept", [("apache", False), ("wsgidav", True), ("nextcloud", True)])
async def test_mtime_is_kept_where_the_server_takes_x_oc_mtime(request, server_name: str, kept: bool):  # noqa: ANN001
    server: DavServer = request.getfixturevalue(f"{server_name}_server")
    folder = _folder(server)
    remote = make_webdav(server, folder)
    try:
        assert not remote.capabilities.keeps_mtime and not remote.capabilities.keeps_mode
        mtime = 1_500_000_000_000_000_000
        written = await remote.write("f", BytesSource(b"x"), attrs=FileAttrs(mtime_ns=mtime + 123))
        st = await remote.stat("f")
        assert st.mtime_ns == written.mtime_ns
        assert (st.mtime_ns == mtime) is kept
    finally:
        await remote.aclose()


async def test_nextcloud_folder_etags_and_file_ids(nextcloud_server: DavServer):
    folder = _folder(nextcloud_server)
    remote = make_webdav(nextcloud_server, folder)
    try:
        assert not remote.capabilities.dir_revs_propagate
        await remote.check()
        assert remote.capabilities.dir_revs_propagate  # learned from oc:fileid
        await remote.write("top/mid/f", BytesSource(b"one"))
        top = await remote.stat("top")
        f = await remote.stat("top/mid/f")
        assert top.rev and top.id and f.id and top.id != f.id
        assert (await remote.stat("top")).rev == top.rev  # nothing changed: same rev
        await remote.write("top/mid/g", BytesSource(b"two"))
        assert (await remote.stat("top")).rev != top.rev  # a change two levels down shows at the top
        listed = {e.path: e async for e in remote.list("")}
        assert listed["top"].rev == (await remote.stat("top")).rev and listed["top"].id == top.id
        moved = await remote.rename("top", "renamed")
        assert moved.id == top.id
        assert (await remote.stat("renamed/mid/f")).id == f.id  # ids survive a folder MOVE
    finally:
        await remote.aclose()


# -- Nextcloud: checksums and chunked upload v2 ------------------------------------


class _BreakingSource:
    """``data``, but reading at or past ``breaks_at`` fails as a file changed under us would."""

    def __init__(self, data: bytes, breaks_at: int) -> None:
        self.data, self.size, self.breaks_at = data, len(data), breaks_at

    def read(self, offset: int, length: int) -> bytes:
        if offset + length > self.breaks_at:
            raise SourceChanged("changed while uploading")
        return self.data[offset:offset + length]

    def check(self) -> None:
        return None


def _uploads(server: DavServer) -> Path:
    return server.root.parent / "uploads" / server.user


async def _nextcloud_remote(server: DavServer, **overrides) -> tuple[str, WebDavRemote]:  # noqa: ANN003
    folder = _folder(server)
    remote = make_webdav(server, folder, **overrides)
    await remote.check()
    assert remote.capabilities.hash_kind == "sha1" and remote.uploads == NEXTCLOUD_UPLOADS
    return folder, remote


async def test_nextcloud_checksums_are_sent_and_reported(nextcloud_server: DavServer):
    folder, remote = await _nextcloud_remote(nextcloud_server)
    try:
        data = os.urandom(100_000)
        written = await remote.write("d/f", BytesSource(data))
        assert written.hash == hashlib.sha1(data).hexdigest()
        assert (await remote.stat("d/f")).hash == written.hash
        assert [e.hash async for e in remote.list("d")] == [written.hash]
        moved = await remote.rename("d/f", "g")  # the checksum travels with the file
        assert moved.hash == written.hash

        # a lost reply's redo: the object is recognised as ours by its hash, nothing is read
        gets = nextcloud_server.counts().get("GET", 0)
        assert await holds_same_bytes(remote, "g", moved, BytesSource(data))
        assert not await holds_same_bytes(remote, "g", moved, BytesSource(os.urandom(len(data))))
        assert nextcloud_server.counts().get("GET", 0) == gets

        with nextcloud_server.client() as c:  # another client: no checksum sent, none kept
            assert c.put(nextcloud_server.url(f"{folder}/g"), content=b"other").status_code == 204
            wrong = c.put(nextcloud_server.url(f"{folder}/h"), content=b"x", headers={"OC-Checksum": "SHA1:" + "0" * 40})
            assert wrong.status_code == 400
        assert (await remote.stat("g")).hash is None
    finally:
        await remote.aclose()
    plain = make_webdav(nextcloud_server, folder)  # before check(): not known to be a Nextcloud
    try:
        assert plain.capabilities.hash_kind is None and (await plain.stat("g")).hash is None
    finally:
        await plain.aclose()


async def test_nextcloud_big_files_go_up_in_chunks(nextcloud_server: DavServer):
    """Above the threshold (6 MiB here): MKCOL on the uploads URL, one PUT per 5 MiB chunk,
    one MOVE of .file, replacing the old version in place (same file id)."""
    folder, remote = await _nextcloud_remote(nextcloud_server)
    try:
        old = await remote.write("big", BytesSource(b"old"))
        data = os.urandom(13 * MiB + 5)
        before = nextcloud_server.counts()
        new = await remote.write("big", BytesSource(data), expect=old.rev,
                                 attrs=FileAttrs(mtime_ns=1_500_000_000_000_000_000))
        after = nextcloud_server.counts()
        assert {m: after.get(m, 0) - before.get(m, 0) for m in ("MKCOL", "PUT", "MOVE")} == \
            {"MKCOL": 1, "PUT": 3, "MOVE": 1}
        assert new.size == len(data) and new.rev != old.rev and new.id == old.id
        assert new.hash == hashlib.sha1(data).hexdigest()
        assert new.mtime_ns == 1_500_000_000_000_000_000
        assert await remote.stat("big") == new
        assert await remote.read("big", 0, len(data)) == data
        assert not list(_uploads(nextcloud_server).iterdir())  # the transfer folder went with the MOVE

        with pytest.raises(PreconditionFailed):  # conditions hold as on a normal upload
            await remote.write("big", BytesSource(data), expect=old.rev)
        fresh = await remote.write("sub/fresh", BytesSource(data[: 7 * MiB]), expect=Expect.ABSENT)
        assert fresh.id not in (None, new.id) and await remote.read("sub/fresh", 0, 7 * MiB) == data[: 7 * MiB]
    finally:
        await remote.aclose()


async def test_nextcloud_chunked_upload_failing_mid_way_keeps_the_old_object(nextcloud_server: DavServer):
    folder, remote = await _nextcloud_remote(nextcloud_server)
    try:
        old = await remote.write("big", BytesSource(b"old"))
        data = os.urandom(12 * MiB)
        before = nextcloud_server.counts()
        with pytest.raises(SourceChanged):
            await remote.write("big", _BreakingSource(data, 6 * MiB))
        after = nextcloud_server.counts()
        assert after.get("PUT", 0) - before.get("PUT", 0) >= 1  # the first chunk went up
        assert after.get("MOVE", 0) == before.get("MOVE", 0)
        assert await remote.stat("big") == old and await remote.read("big", 0, 10) == b"old"
        assert not list(_uploads(nextcloud_server).iterdir())  # cleaned up after the failure
    finally:
        await remote.aclose()


async def test_nextcloud_abort_incomplete_uploads_removes_a_left_upload_folder(nextcloud_server: DavServer):
    """What a crash mid-upload leaves: a transfer folder with a chunk.  Removed by path at
    once, by age otherwise; other clients' transfers stay."""
    folder, remote = await _nextcloud_remote(nextcloud_server, stale_upload_age=3600.0)
    base = f"http://127.0.0.1:{nextcloud_server.port}{NEXTCLOUD_UPLOADS}"
    dest = {"Destination": nextcloud_server.url(f"{folder}/big"), "OC-Total-Length": str(6 * MiB)}
    try:
        left = transfer_prefix(remote, "big") + "crashed"
        with nextcloud_server.client() as c:
            for name in (left, "someone-elses"):
                assert c.request("MKCOL", f"{base}/{name}", headers=dest).status_code == 201
                assert c.put(f"{base}/{name}/00001", content=b"x" * MiB, headers=dest).status_code == 201
        assert await remote.abort_incomplete_uploads() == 0  # young, and no path given
        assert await remote.abort_incomplete_uploads(["other"]) == 0
        assert await remote.abort_incomplete_uploads(["big"]) == 1
        assert sorted(p.name for p in _uploads(nextcloud_server).iterdir()) == ["someone-elses"]
    finally:
        await remote.aclose()
    stale = make_webdav(nextcloud_server, folder)  # stale_upload_age 0: every transfer of this root
    try:
        await stale.check()
        with nextcloud_server.client() as c:
            assert c.request("MKCOL", f"{base}/{transfer_prefix(stale, 'x')}1", headers=dest).status_code == 201
        assert await stale.abort_incomplete_uploads() == 1
        assert sorted(p.name for p in _uploads(nextcloud_server).iterdir()) == ["someone-elses"]
    finally:
        await stale.aclose()


def test_nextcloud_emulation_enforces_the_chunking_rules(nextcloud_server: DavServer):
    """The fake is strict where Nextcloud is: a client breaking a rule fails here too."""
    folder = _folder(nextcloud_server)
    base = f"http://127.0.0.1:{nextcloud_server.port}{NEXTCLOUD_UPLOADS}"
    target = nextcloud_server.url(f"{folder}/f")
    with nextcloud_server.client() as c:
        assert c.request("MKCOL", f"{base}/t1").status_code == 400  # no Destination
        dest = {"Destination": target, "OC-Total-Length": str(2 * MiB)}
        assert c.request("MKCOL", f"{base}/t1", headers=dest).status_code == 201
        assert c.put(f"{base}/t1/00001", content=b"a" * MiB).status_code == 400  # no Destination
        elsewhere = {**dest, "Destination": nextcloud_server.url(f"{folder}/g")}
        assert c.put(f"{base}/t1/00001", content=b"a" * MiB, headers=elsewhere).status_code == 400
        assert c.put(f"{base}/t1/x", content=b"a" * MiB, headers=dest).status_code == 400
        for n in ("00001", "00002"):
            assert c.put(f"{base}/t1/{n}", content=b"a" * MiB, headers=dest).status_code == 201
        assert c.get(f"{base}/t1/00001").status_code == 405
        move = {**dest, "Overwrite": "T"}
        assert c.request("MOVE", f"{base}/t1/.file", headers=move).status_code == 400  # first chunk < 5 MiB
        assert c.request("MOVE", f"{base}/t1/.file", headers={**move, "Destination": nextcloud_server.url(
            f"{folder}/g")}).status_code == 400
        assert c.put(f"{base}/t1/00001", content=b"a" * (5 * MiB), headers=dest).status_code == 204
        assert c.request("MOVE", f"{base}/t1/.file", headers=move).status_code == 400  # 6 MiB != 2 MiB
        total = {**move, "OC-Total-Length": str(6 * MiB)}
        assert c.request("MOVE", f"{base}/t1/.file", headers={**total, "OC-Checksum": "SHA1:" + "0" * 40}
                         ).status_code == 400
        assert c.request("MOVE", f"{base}/t1/.file", headers=total).status_code == 201
        assert c.get(target).content == b"a" * (6 * MiB)
        assert c.request("MOVE", f"{base}/t1/.file", headers=total).status_code == 404  # gone with the MOVE
