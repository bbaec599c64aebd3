"""The Remote contract (cloudgw/remotes/base.py), one suite for every remote.

Each test asserts what a user of the mount would check: the bytes that come
back, what a listing shows, that a conflicting or interrupted write leaves the
old object exactly as it was, and that nothing half-written stays behind.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import threading
import time

import pytest
import trio

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from cloudgw.errors import (
    PreconditionFailed,
    RemoteError,
    RemoteExists,
    RemoteNotEmpty,
    RemoteNotFound,
    RemotePermissionDenied,
    RemoteUnavailable,
    RemoteUnsupported,
    SourceChanged,
    TransientRemoteError,
    UserError,
)
from cloudgw.remotes import specials
from cloudgw.remotes.base import (BytesSource, Capabilities, Expect, FileAttrs, Kind, RemoteEntry, read_into,
                                  set_attrs)
from cloudgw.remotes.base import capabilities_at, link as hard_link, same_version
from cloudgw.remotes.local import LocalRemote
from cloudgw.remotes.local_ops import local_rev, map_oserror
from cloudgw.remotes.local_ops import same_version as local_same_version
from cloudgw.remotes.registry import open_remote, read_secret, url_forms
from cloudgw.remotes.router import RouterRemote
from cloudgw.remotes.s3 import S3Remote
from cloudgw.remotes.s3_errors import map_boto_error
from tests.contract.conftest import Harness
from tests.servers import free_port

MiB = 1 << 20
BIG = 11 * MiB + 12345  # three parts with the test remotes' 5 MiB parts


# -- helpers -----------------------------------------------------------------


async def listing(h: Harness, path: str, *, recursive: bool = False) -> dict[str, RemoteEntry]:
    out: dict[str, RemoteEntry] = {}
    async for entry in h.remote.list(path, recursive=recursive):
        assert entry.path not in out, f"{entry.path!r} listed twice"
        out[entry.path] = entry
    return out


async def kinds(h: Harness, path: str, *, recursive: bool = False) -> dict[str, Kind]:
    return {p: e.kind for p, e in (await listing(h, path, recursive=recursive)).items()}


async def content(h: Harness, path: str, rev: str | None = None) -> bytes:
    return await h.remote.read(path, 0, 1 << 40, rev=rev)


async def put(h: Harness, path: str, data: bytes, **kwargs) -> RemoteEntry:
    return await h.remote.write(path, BytesSource(data), **kwargs)


class ChangedSource(BytesSource):
    """The local file was modified while it was uploaded."""

    def check(self) -> None:
        raise SourceChanged("modified during upload")


class TruncatedSource(BytesSource):
    """A program truncated the local file to ``cut`` bytes while it was uploaded: reads past
    the cut come back short, as ``pread`` of the cache file does, and ``check`` fails, as the
    cache file source's does once a truncate moved the file's data version."""

    def __init__(self, data: bytes, cut: int) -> None:
        super().__init__(data)
        self.cut = cut

    def read(self, offset: int, length: int) -> bytes:
        return super().read(offset, max(0, min(length, self.cut - offset)))

    def check(self) -> None:
        raise SourceChanged("truncated during upload")


class FailingSource(BytesSource):
    """Reading the local file fails past ``fail_at`` (a bad disk)."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        super().__init__(data)
        self.fail_at = fail_at

    def read(self, offset: int, length: int) -> bytes:
        if offset + length > self.fail_at:
            raise OSError(errno.EIO, "Input/output error")
        return super().read(offset, length)


class GatedSource(BytesSource):
    """Reads past ``gate_at`` block until ``gate`` is set; ``reached`` tells the
    test that the upload is under way."""

    def __init__(self, data: bytes, gate_at: int) -> None:
        super().__init__(data)
        self.gate_at, self.gate, self.reached = gate_at, threading.Event(), threading.Event()

    def read(self, offset: int, length: int) -> bytes:
        if offset + length > self.gate_at:
            self.reached.set()
            self.gate.wait(30)
        return super().read(offset, length)


class EditedSource(BytesSource):
    """A DeltaSource: ``data`` equals revision ``base_rev`` outside ``changed`` ranges;
    records which ranges the remote read and which it copied server-side."""

    def __init__(self, data: bytes, base_rev: str | None, changed: list[tuple[int, int]], base_size: int) -> None:
        super().__init__(data)
        self.base_rev, self._changed, self._base_size = base_rev, changed, base_size
        self.reads: list[tuple[int, int]] = []
        self.copies: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        return super().read(offset, length)

    def unchanged(self, offset: int, length: int) -> bool:
        return offset + length <= self._base_size and all(
            offset + length <= a or offset >= a + n for a, n in self._changed)

    def base_offset(self, offset: int) -> int:
        return offset

    def copied(self, offset: int, length: int) -> None:
        self.copies.append((offset, length))

    def bytes_read(self) -> int:
        return sum(n for _, n in self.reads)


async def assert_untouched(h: Harness, path: str, old: RemoteEntry, data: bytes) -> None:
    now = await h.remote.stat(path)
    assert (now.kind, now.size, now.rev) == (Kind.FILE, len(data), old.rev)
    assert await content(h, path) == data


# -- stat, list, read ----------------------------------------------------------


async def test_a_new_remote_is_an_empty_directory(h: Harness):
    assert (await h.remote.stat(h.base)).kind is Kind.DIR
    assert await listing(h, h.base) == {}
    assert await listing(h, h.base, recursive=True) == {}
    await h.remote.check()


async def test_write_stat_read_round_trip(h: Harness):
    data = os.urandom(100_000)
    written = await put(h, h.p("f.bin"), data)
    assert (written.path, written.kind, written.size) == (h.p("f.bin"), Kind.FILE, len(data))
    st = await h.remote.stat(h.p("f.bin"))
    assert (st.path, st.name, st.kind, st.size, st.rev) == (h.p("f.bin"), "f.bin", Kind.FILE, len(data), written.rev)
    assert st.mtime_ns == written.mtime_ns and abs(st.mtime_ns - time.time_ns()) < 60e9
    assert st.rev
    assert await content(h, h.p("f.bin")) == data
    listed = (await listing(h, h.base))[h.p("f.bin")]
    assert (listed.kind, listed.size, listed.rev) == (Kind.FILE, len(data), written.rev)


async def test_read_ranges(h: Harness):
    data = bytes(range(256)) * 40
    e = await put(h, h.p("r"), data)
    read = h.remote.read
    assert await read(h.p("r"), 100, 50) == data[100:150]
    assert await read(h.p("r"), 10200, 100) == data[10200:]  # short only at the end
    assert await read(h.p("r"), len(data), 10) == b""
    assert await read(h.p("r"), len(data) + 5000, 10) == b""
    assert await read(h.p("r"), 7, 0) == b""
    assert await read(h.p("r"), 0, len(data), rev=e.rev) == data
    await put(h, h.p("empty"), b"")
    assert (await h.remote.stat(h.p("empty"))).size == 0
    assert await read(h.p("empty"), 0, 10) == b""
    with pytest.raises(RemoteNotFound):
        await read(h.p("missing"), 0, 10)


async def test_read_into_hands_over_exactly_the_bytes_of_read(h: Harness):
    """The streamed read the fetcher uses for read-ahead runs: the same bytes as ``read``, in
    order, never twice; a remote that says it streams hands a long range over in pieces."""
    data = os.urandom(3 * MiB + 17)
    e = await put(h, h.p("s.bin"), data)

    async def streamed(offset: int, length: int, rev: str | None = None) -> list[bytes]:
        pieces: list[bytes] = []
        await read_into(h.remote, h.p("s.bin"), offset, length, pieces.append, rev=rev)
        return pieces

    pieces = await streamed(0, len(data), rev=e.rev)
    assert b"".join(pieces) == data
    if h.remote.capabilities.streaming_reads:
        assert len(pieces) >= 3 and max(map(len, pieces)) <= MiB
    assert b"".join(await streamed(MiB + 5, 2 * MiB)) == data[MiB + 5: 3 * MiB + 5]
    assert b"".join(await streamed(3 * MiB, MiB)) == data[3 * MiB:]  # short only at the end
    assert b"".join(await streamed(len(data) + 10, MiB)) == b""
    h.put_outside(h.p("s.bin"), b"changed")
    with pytest.raises(PreconditionFailed):
        await streamed(0, MiB, rev=e.rev)


async def test_a_streamed_read_that_breaks_is_resumed_where_it_broke(moto_server, tmp_path):  # noqa: ANN001
    """The connection dies after the first piece: the rest is asked for again from there, so
    the reader gets every byte exactly once."""
    from tests.servers.proxy import outage_proxy

    bucket = f"cgw-{os.urandom(6).hex()}"
    moto_server.client().create_bucket(Bucket=bucket)
    data = os.urandom(6 * MiB + 3)
    moto_server.client().put_object(Bucket=bucket, Key="big", Body=data)
    with outage_proxy(int(moto_server.endpoint_url.rsplit(":", 1)[1])) as proxy:
        remote = S3Remote(bucket, "", endpoint_url=proxy.endpoint_url, region=moto_server.region, path_style=True,
                          access_key=moto_server.access_key, secret_key=moto_server.secret_key, retry_deadline=10.0,
                          read_timeout=2.0)  # the cut connection stalls (the proxy's close sends nothing)
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


async def test_read_of_a_changed_object_with_old_rev_fails(h: Harness):
    old = await put(h, h.p("doc.txt"), b"version one")
    h.put_outside(h.p("doc.txt"), b"version two!")
    new = await h.remote.stat(h.p("doc.txt"))
    assert new.rev != old.rev
    with pytest.raises(PreconditionFailed):
        await h.remote.read(h.p("doc.txt"), 0, 100, rev=old.rev)
    with pytest.raises(PreconditionFailed):
        await h.remote.read(h.p("doc.txt"), 500, 100, rev=old.rev)  # even past the end
    assert await content(h, h.p("doc.txt"), rev=new.rev) == b"version two!"


async def test_rewrite_with_same_size_changes_rev(h: Harness):
    a = await put(h, h.p("x"), b"aaaa")
    b = await put(h, h.p("x"), b"bbbb")
    assert a.rev != b.rev
    assert (await h.remote.stat(h.p("x"))).rev == b.rev


async def test_missing_paths(h: Harness):
    await put(h, h.p("file"), b"x")
    for path in (h.p("missing"), h.p("missing/deeper"), h.p("file/below")):
        with pytest.raises(RemoteNotFound):
            await h.remote.stat(path)
    for path in (h.p("missing"), h.p("file")):
        with pytest.raises(RemoteNotFound):
            await listing(h, path)


async def test_list_one_level(h: Harness):
    await put(h, h.p("a.txt"), b"abc")
    await put(h, h.p("d/b.txt"), b"bb")
    await put(h, h.p("d/e/c.txt"), b"c")
    await h.remote.mkdir(h.p("empty"))
    assert await kinds(h, h.base) == {h.p("a.txt"): Kind.FILE, h.p("d"): Kind.DIR, h.p("empty"): Kind.DIR}
    assert await kinds(h, h.p("d")) == {h.p("d/b.txt"): Kind.FILE, h.p("d/e"): Kind.DIR}
    assert await listing(h, h.p("empty")) == {}
    assert (await listing(h, h.base))[h.p("a.txt")].size == 3
    for d in ("d", "d/e", "empty"):
        assert (await h.remote.stat(h.p(d))).kind is Kind.DIR


async def test_list_recursive_yields_every_entry_once(h: Harness):
    # Names that sort around "d/" ('-' and '.' sort before '/', '0' after).
    files = {"d-x/y": 1, "d.txt": 2, "d/b.txt": 3, "d/e/c.txt": 4, "d/e2/f": 5, "d0/z": 6, "top": 7}
    for name, size in files.items():
        await put(h, h.p(name), b"x" * size)
    await h.remote.mkdir(h.p("d/empty"))
    expected = {h.p(n): Kind.FILE for n in files} | {
        h.p(d): Kind.DIR for d in ("d-x", "d", "d/e", "d/e2", "d/empty", "d0")
    }
    everything = await listing(h, h.base, recursive=True)
    assert {p: e.kind for p, e in everything.items()} == expected
    assert {p: e.size for p, e in everything.items() if e.kind is Kind.FILE} == {h.p(n): s for n, s in files.items()}
    assert await kinds(h, h.p("d"), recursive=True) == {
        h.p("d/b.txt"): Kind.FILE,
        h.p("d/e"): Kind.DIR,
        h.p("d/e/c.txt"): Kind.FILE,
        h.p("d/e2"): Kind.DIR,
        h.p("d/e2/f"): Kind.FILE,
        h.p("d/empty"): Kind.DIR,
    }


# -- conditional writes --------------------------------------------------------


async def test_write_expect_absent(h: Harness):
    first = await put(h, h.p("new"), b"first", expect=Expect.ABSENT)
    with pytest.raises(PreconditionFailed):
        await put(h, h.p("new"), b"second", expect=Expect.ABSENT)
    await assert_untouched(h, h.p("new"), first, b"first")


async def test_write_expect_rev(h: Harness):
    v1 = await put(h, h.p("f"), b"v1")
    v2 = await put(h, h.p("f"), b"v2", expect=v1.rev)
    assert v2.rev != v1.rev
    with pytest.raises(PreconditionFailed):
        await put(h, h.p("f"), b"v3", expect=v1.rev)  # stale: v2 must survive
    await assert_untouched(h, h.p("f"), v2, b"v2")
    h.put_outside(h.p("f"), b"someone else")
    with pytest.raises(PreconditionFailed):
        await put(h, h.p("f"), b"ours", expect=v2.rev)
    assert await content(h, h.p("f")) == b"someone else"
    with pytest.raises(PreconditionFailed):
        await put(h, h.p("gone"), b"x", expect=v2.rev)
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("gone"))


async def test_conditional_writes_over_multipart_objects(h: Harness):
    # Multipart ETags ("md5-N") are where S3-compatible servers get If-Match wrong.
    big1, big2 = os.urandom(BIG), os.urandom(BIG)
    v1 = await put(h, h.p("m"), big1)
    v2 = await put(h, h.p("m"), b"small", expect=v1.rev)
    v3 = await put(h, h.p("m"), big2, expect=v2.rev)
    if h.unique_revs:  # (else v3, same size and second as v1, may repeat v1's revision)
        with pytest.raises(PreconditionFailed):
            await put(h, h.p("m"), big1, expect=v1.rev)
    with pytest.raises(PreconditionFailed):
        await put(h, h.p("m"), big1, expect=Expect.ABSENT)
    await assert_untouched(h, h.p("m"), v3, big2)
    await h.remote.delete(h.p("m"), expect=v3.rev)
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("m"))


# Sync fixtures: pytest-trio loses the reason of a skip raised inside a test.
@pytest.fixture
def closes_race_window(harness: Harness) -> None:
    if not harness.closes_race_window:
        pytest.skip("this server enforces no conditions at commit (check-then-write window)")


@pytest.fixture
def serialises_writers(harness: Harness) -> None:
    if not harness.serialises_writers:
        pytest.skip("concurrent writers of one path are not serialised by this remote")


class RacingSource(BytesSource):
    """Another client writes the object while ours is being read for upload:
    after our expectation check, before our commit."""

    def __init__(self, data: bytes, race) -> None:
        super().__init__(data)
        self.race = race

    def read(self, offset: int, length: int) -> bytes:
        if self.race:
            self.race, race = None, self.race
            race()
        return super().read(offset, length)


@pytest.mark.parametrize("expect_kind", ["absent", "rev"])
async def test_write_racing_an_outside_writer_fails(h: Harness, closes_race_window: None, expect_kind: str):
    expect: Expect | str = Expect.ABSENT
    if expect_kind == "rev":
        expect = (await put(h, h.p("f"), b"ours, before")).rev
    source = RacingSource(b"ours, after", lambda: h.put_outside(h.p("f"), b"theirs"))
    with pytest.raises(PreconditionFailed):
        await h.remote.write(h.p("f"), source, expect=expect)
    assert source.race is None  # the race did happen
    assert await content(h, h.p("f")) == b"theirs"


async def test_concurrent_exclusive_creates(h: Harness, serialises_writers: None):
    wins: list[bytes] = []

    async def create(i: int) -> None:
        data = f"writer {i}".encode()
        try:
            await put(h, h.p("race"), data, expect=Expect.ABSENT)
            wins.append(data)
        except PreconditionFailed:
            pass

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(create, i)
    assert len(wins) == 1
    assert await content(h, h.p("race")) == wins[0]


async def test_concurrent_writes_of_different_files(h: Harness):
    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(put, h, h.p(f"many/f{i}"), b"x" * i)
    listed = await listing(h, h.p("many"))
    assert {p: e.size for p, e in listed.items()} == {h.p(f"many/f{i}"): i for i in range(20)}


# -- interrupted uploads ---------------------------------------------------------


@pytest.mark.parametrize("size", [1000, BIG], ids=["single", "multipart"])
async def test_source_changed_keeps_the_old_object(h: Harness, size: int):
    old = await put(h, h.p("doc"), b"old content")
    with pytest.raises(SourceChanged):
        await h.remote.write(h.p("doc"), ChangedSource(os.urandom(size)))
    await assert_untouched(h, h.p("doc"), old, b"old content")
    with pytest.raises(SourceChanged):
        await h.remote.write(h.p("fresh"), ChangedSource(os.urandom(size)))
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("fresh"))
    assert set(await listing(h, h.base)) == {h.p("doc")}
    assert await h.remote.abort_incomplete_uploads() == 0  # the remote cleaned up itself


@pytest.mark.parametrize("size", [1000, BIG], ids=["single", "multipart"])
async def test_a_source_cut_short_is_a_changed_source_and_keeps_the_old_object(h: Harness, size: int):
    """Not a remote failure (logged, backed off, a session kept for a resume): the file changed,
    and the write-back queue uploads it again quietly (seen with git's COMMIT_EDITMSG on Drive)."""
    old = await put(h, h.p("doc"), b"old content")
    with pytest.raises(SourceChanged):
        await h.remote.write(h.p("doc"), TruncatedSource(os.urandom(size), cut=size // 2))
    await assert_untouched(h, h.p("doc"), old, b"old content")
    assert await h.remote.abort_incomplete_uploads() == 0


async def test_failing_source_keeps_the_old_object(h: Harness):
    old = await put(h, h.p("doc"), b"old content")
    with pytest.raises(OSError):
        await h.remote.write(h.p("doc"), FailingSource(os.urandom(BIG), fail_at=6 * MiB))
    await assert_untouched(h, h.p("doc"), old, b"old content")
    assert await h.remote.abort_incomplete_uploads() == 0


async def test_cancelled_upload_keeps_the_old_object(h: Harness):
    old = await put(h, h.p("doc"), b"old content")
    source = GatedSource(os.urandom(BIG), gate_at=6 * MiB)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(h.remote.write, h.p("doc"), source)
            while not source.reached.is_set():
                await trio.sleep(0.01)
            scope.cancel()
            source.gate.set()  # let the blocked worker thread return
    assert scope.cancelled_caught
    await assert_untouched(h, h.p("doc"), old, b"old content")
    assert await h.remote.abort_incomplete_uploads() == 0


async def test_crash_leftovers_are_hidden_and_aborted(h: Harness):
    h.leave_incomplete_upload(h.p("sub/big.iso"))
    await put(h, h.p("sub/kept"), b"k")
    assert await kinds(h, h.base, recursive=True) == {h.p("sub"): Kind.DIR, h.p("sub/kept"): Kind.FILE}
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("sub/big.iso"))
    assert await h.remote.abort_incomplete_uploads() == 1
    assert await h.remote.abort_incomplete_uploads() == 0
    assert await content(h, h.p("sub/kept")) == b"k"


async def test_large_file_round_trip(h: Harness):
    data = os.urandom(BIG)
    written = await put(h, h.p("big.bin"), data)
    st = await h.remote.stat(h.p("big.bin"))
    assert (st.size, st.rev) == (len(data), written.rev)
    got = await content(h, h.p("big.bin"))
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    listed = (await listing(h, h.base))[h.p("big.bin")]
    assert (listed.size, listed.rev) == (len(data), st.rev)  # the poller compares these
    edge = 5 * MiB - 10  # across a part boundary
    assert await h.remote.read(h.p("big.bin"), edge, 20, rev=st.rev) == data[edge : edge + 20]


async def test_delta_write_sends_only_the_changed_parts(h: Harness):
    base = os.urandom(BIG)
    first = await put(h, h.p("big.bin"), base)
    edit_at = 5 * MiB + 4096  # inside the second 5 MiB part
    data = bytearray(base)
    data[edit_at:edit_at + 4096] = os.urandom(4096)
    source = EditedSource(bytes(data), first.rev, [(edit_at, 4096)], len(base))
    written = await h.remote.write(h.p("big.bin"), source, expect=first.rev)
    assert hashlib.sha256(await content(h, h.p("big.bin"))).digest() == hashlib.sha256(data).digest()
    assert (await h.remote.stat(h.p("big.bin"))).rev == written.rev != first.rev
    if h.remote.capabilities.delta_writes:
        assert 4096 <= source.bytes_read() <= 5 * MiB + h.delta_slack  # the one part with the edit
        assert sum(n for _, n in source.copies) >= len(base) - 5 * MiB - h.delta_slack
    else:
        assert source.bytes_read() >= len(data)


async def test_delta_write_grows_and_shrinks(h: Harness):
    base = os.urandom(BIG)
    first = await put(h, h.p("big.bin"), base)
    grown = base + os.urandom(3 * MiB)  # appended: the old tail part is no longer whole
    source = EditedSource(grown, first.rev, [], len(base))
    second = await h.remote.write(h.p("big.bin"), source, expect=first.rev)
    assert await content(h, h.p("big.bin")) == grown
    shrunk = grown[: 7 * MiB + 3]  # truncated inside a part
    source = EditedSource(shrunk, second.rev, [], len(shrunk))
    await h.remote.write(h.p("big.bin"), source, expect=second.rev)
    assert await content(h, h.p("big.bin")) == shrunk


async def test_delta_write_over_another_revision_sends_everything(h: Harness):
    base = os.urandom(BIG)
    first = await put(h, h.p("big.bin"), base)
    h.put_outside(h.p("big.bin"), os.urandom(BIG))  # someone else replaced it
    now = await h.remote.stat(h.p("big.bin"))
    data = os.urandom(BIG)
    # the source's base is the old revision: nothing may be copied from the new one
    source = EditedSource(data, first.rev, [], len(base))
    await h.remote.write(h.p("big.bin"), source, expect=now.rev)
    assert await content(h, h.p("big.bin")) == data
    assert source.copies == [] and source.bytes_read() >= len(data)


# -- attributes, directories ---------------------------------------------------


async def test_attrs_round_trip(h: Harness):
    caps = h.remote.capabilities
    if not (caps.keeps_mode and caps.keeps_mtime):
        pytest.skip("this remote does not keep POSIX attributes")
    attrs = FileAttrs(mode=0o640, uid=os.getuid(), gid=os.getgid(), mtime_ns=1_600_000_000_123_456_789)
    await put(h, h.p("a"), b"data", attrs=attrs)
    st = await h.remote.stat(h.p("a"))
    assert st.attrs == attrs
    assert st.mtime_ns == attrs.mtime_ns
    await put(h, h.p("a"), b"newer", attrs=FileAttrs(mode=0o600, mtime_ns=1_700_000_000_000_000_001))
    st = await h.remote.stat(h.p("a"))
    assert (st.attrs.mode, st.mtime_ns) == (0o600, 1_700_000_000_000_000_001)
    d = await h.remote.mkdir(h.p("dir"), FileAttrs(mode=0o750))
    assert d.kind is Kind.DIR
    assert (await h.remote.stat(h.p("dir"))).attrs.mode == 0o750
    setuid = FileAttrs(mode=0o4755, uid=os.getuid(), gid=os.getgid(), mtime_ns=1_600_000_000_000_000_000)
    await put(h, h.p("sudo"), b"\x7fELF", attrs=setuid)  # (a chown after the chmod would clear the bit)
    assert (await h.remote.stat(h.p("sudo"))).attrs == setuid


def keeps_attrs_alone(h: Harness) -> bool:
    """Remotes with ``set_attrs`` (file:// and S3, also behind the wrappers); the others keep
    attributes only with the content (OneDrive, Drive: the mtime) or not at all (WebDAV)."""
    return h.kind.split("-")[0] in ("local", "s3", "router")


OWNER = (4321, 4322) if os.geteuid() == 0 else (os.getuid(), os.getgid())  # a real chown where we may


async def test_set_attrs_round_trip(h: Harness):
    """A chmod, chown or touch of a file already on the remote, without its content."""
    uid, gid = OWNER
    first = FileAttrs(mode=0o644, uid=os.getuid(), gid=os.getgid(), mtime_ns=1_600_000_000_000_000_000)
    written = await put(h, h.p("f"), b"content", attrs=first)
    new = FileAttrs(mode=0o600, uid=uid, gid=gid, mtime_ns=1_700_000_000_123_456_789)
    entry = await set_attrs(h.remote, h.p("f"), new, expect=written.rev)
    if entry is None:  # not kept alone here: nothing changed
        assert not keeps_attrs_alone(h)
        assert (await h.remote.stat(h.p("f"))).rev == written.rev
        pytest.skip("this remote keeps no attributes apart from the content")
    assert keeps_attrs_alone(h)
    assert (entry.path, entry.kind, entry.size, entry.attrs, entry.mtime_ns) == (
        h.p("f"), Kind.FILE, 7, new, new.mtime_ns)
    st = await h.remote.stat(h.p("f"))
    assert (st.rev, st.attrs, st.mtime_ns, st.size) == (entry.rev, new, new.mtime_ns, 7)
    assert await content(h, h.p("f"), rev=entry.rev) == b"content"  # the answer's rev is the one there now
    # attributes already as asked: nothing changes, not even the revision
    assert (await set_attrs(h.remote, h.p("f"), new, expect=entry.rev)).rev == entry.rev
    assert (await h.remote.stat(h.p("f"))).rev == entry.rev
    # fields left None stay as they are; set-user-ID and set-group-ID survive a chown (owner first)
    for mode, owner in [(0o4750, FileAttrs()), (0o6755, FileAttrs(uid=os.getuid(), gid=os.getgid()))]:
        entry = await set_attrs(h.remote, h.p("f"), FileAttrs(mode, owner.uid, owner.gid), expect=entry.rev)
        st = await h.remote.stat(h.p("f"))
        assert st.rev == entry.rev
        assert st.attrs == FileAttrs(mode, owner.uid if owner.uid is not None else uid,
                                     owner.gid if owner.gid is not None else gid, new.mtime_ns)
    assert await content(h, h.p("f")) == b"content"


async def test_set_attrs_never_relabels_another_version(h: Harness):
    """A stale revision (someone else wrote the file) or a file gone: PreconditionFailed,
    and nothing changes."""
    if not keeps_attrs_alone(h):
        pytest.skip("this remote keeps no attributes apart from the content")
    mine = await put(h, h.p("f"), b"mine", attrs=FileAttrs(mode=0o644, mtime_ns=1_600_000_000_000_000_000))
    h.put_outside(h.p("f"), b"theirs, longer")
    before = await h.remote.stat(h.p("f"))
    assert before.rev != mine.rev
    with pytest.raises(PreconditionFailed):
        await set_attrs(h.remote, h.p("f"), FileAttrs(mode=0o600, mtime_ns=1_700_000_000_000_000_000),
                        expect=mine.rev)
    after = await h.remote.stat(h.p("f"))
    assert (after.rev, after.attrs, after.mtime_ns) == (before.rev, before.attrs, before.mtime_ns)
    assert await content(h, h.p("f")) == b"theirs, longer"
    await h.remote.delete(h.p("f"))
    with pytest.raises(PreconditionFailed):
        await set_attrs(h.remote, h.p("f"), FileAttrs(mode=0o600), expect=after.rev)
    with pytest.raises(RemoteNotFound):
        await set_attrs(h.remote, h.p("f"), FileAttrs(mode=0o600))
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("f"))


async def test_set_attrs_of_directories_and_what_keeps_none(h: Harness):
    """Directories (made by mkdir, or only implied by a deeper object on S3) take attributes
    without an expected revision; a symlink is not changed (not kept: the helper says None)."""
    if not keeps_attrs_alone(h):
        pytest.skip("this remote keeps no attributes apart from the content")
    await h.remote.mkdir(h.p("d"), FileAttrs(mode=0o755))
    await put(h, h.p("implied/x"), b"x")  # S3: a directory with no marker of its own
    for d in ("d", "implied"):
        attrs = FileAttrs(mode=0o2750, mtime_ns=1_650_000_000_000_000_007)
        entry = await set_attrs(h.remote, h.p(d), attrs)
        assert entry is not None and entry.kind is Kind.DIR
        st = await h.remote.stat(h.p(d))
        assert (st.kind, st.attrs.mode, st.attrs.mtime_ns) == (Kind.DIR, 0o2750, attrs.mtime_ns)
    assert await kinds(h, h.p("implied")) == {h.p("implied/x"): Kind.FILE}
    assert (await kinds(h, h.p()))[h.p("implied")] is Kind.DIR
    with pytest.raises(RemoteNotFound):
        await set_attrs(h.remote, h.p("no-such-dir"), FileAttrs(mode=0o700))
    link = await h.remote.symlink(h.p("link"), "d")
    assert await set_attrs(h.remote, h.p("link"), FileAttrs(mode=0o600)) is None
    assert (await h.remote.stat(h.p("link"))).rev == link.rev


async def test_set_attrs_of_a_large_file(h: Harness):
    """A multipart object (S3: copied onto itself in parts; its ETag changes): the content
    stays, the answer gives the revision to expect next."""
    if not keeps_attrs_alone(h):
        pytest.skip("this remote keeps no attributes apart from the content")
    data = os.urandom(BIG)
    written = await put(h, h.p("big"), data, attrs=FileAttrs(mode=0o644, mtime_ns=1_600_000_000_000_000_000))
    entry = await set_attrs(h.remote, h.p("big"), FileAttrs(mode=0o640, mtime_ns=1_700_000_000_000_000_000),
                            expect=written.rev)
    assert entry is not None
    st = await h.remote.stat(h.p("big"))
    assert (st.rev, st.size, st.attrs.mode, st.mtime_ns) == (entry.rev, BIG, 0o640, 1_700_000_000_000_000_000)
    assert hashlib.sha256(await content(h, h.p("big"), rev=entry.rev)).digest() == hashlib.sha256(data).digest()
    again = await set_attrs(h.remote, h.p("big"), FileAttrs(mode=0o600), expect=entry.rev)
    assert again is not None and (await h.remote.stat(h.p("big"))).attrs.mode == 0o600


async def test_mkdir(h: Harness):
    e = await h.remote.mkdir(h.p("x"))
    assert (e.path, e.kind) == (h.p("x"), Kind.DIR)
    await h.remote.mkdir(h.p("x"))  # idempotent
    assert (await h.remote.stat(h.p("x"))).kind is Kind.DIR
    assert await listing(h, h.p("x")) == {}
    await h.remote.mkdir(h.p("a/b/c"))
    for d in ("a", "a/b", "a/b/c"):
        assert (await h.remote.stat(h.p(d))).kind is Kind.DIR
    await put(h, h.p("file"), b"x")
    with pytest.raises(RemoteExists):
        await h.remote.mkdir(h.p("file"))
    assert await content(h, h.p("file")) == b"x"


async def test_rmdir(h: Harness):
    await h.remote.mkdir(h.p("d"))
    await put(h, h.p("d/f"), b"x")
    with pytest.raises(RemoteNotEmpty):
        await h.remote.rmdir(h.p("d"))
    assert await content(h, h.p("d/f")) == b"x"
    await h.remote.delete(h.p("d/f"))
    await h.remote.rmdir(h.p("d"))
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("d"))
    await h.remote.rmdir(h.p("d"))  # idempotent
    await h.remote.mkdir(h.p("outer/inner"))
    with pytest.raises(RemoteNotEmpty):
        await h.remote.rmdir(h.p("outer"))
    assert (await h.remote.stat(h.p("outer/inner"))).kind is Kind.DIR


async def test_delete(h: Harness):
    await put(h, h.p("f"), b"x")
    await h.remote.delete(h.p("f"))
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("f"))
    await h.remote.delete(h.p("f"))  # idempotent
    await h.remote.delete(h.p("never/existed"))
    g = await put(h, h.p("g"), b"ours")
    h.put_outside(h.p("g"), b"changed by someone else")
    with pytest.raises(PreconditionFailed):
        await h.remote.delete(h.p("g"), expect=g.rev)
    assert await content(h, h.p("g")) == b"changed by someone else"
    await h.remote.delete(h.p("g"), expect=(await h.remote.stat(h.p("g"))).rev)
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("g"))
    await h.remote.delete(h.p("g"), expect=g.rev)  # already gone: fine


# -- rename, copy, symlinks ------------------------------------------------------


@pytest.mark.parametrize("size", [5, 7 * MiB], ids=["small", "large"])
async def test_rename(h: Harness, size: int):
    data = os.urandom(size)
    attrs = FileAttrs(mode=0o600, mtime_ns=1_500_000_000_000_000_000)
    a = await put(h, h.p("a"), data, attrs=attrs)
    moved = await h.remote.rename(h.p("a"), h.p("sub/b"), expect=a.rev)
    assert (moved.path, moved.kind, moved.size) == (h.p("sub/b"), Kind.FILE, size)
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("a"))
    st = await h.remote.stat(h.p("sub/b"))
    assert st.rev == moved.rev
    assert await content(h, h.p("sub/b")) == data
    if h.remote.capabilities.keeps_mode:
        assert (st.attrs.mode, st.mtime_ns) == (0o600, attrs.mtime_ns)
    await put(h, h.p("c"), b"to be replaced")
    await h.remote.rename(h.p("sub/b"), h.p("c"))
    assert await content(h, h.p("c")) == data
    files = {p for p, e in (await listing(h, h.base, recursive=True)).items() if e.kind is not Kind.DIR}
    assert files == {h.p("c")}
    with pytest.raises(RemoteNotFound):
        await h.remote.rename(h.p("missing"), h.p("z"))


async def test_rename_with_stale_rev_changes_nothing(h: Harness):
    x = await put(h, h.p("x"), b"ours")
    h.put_outside(h.p("x"), b"theirs")
    with pytest.raises(PreconditionFailed):
        await h.remote.rename(h.p("x"), h.p("y"), expect=x.rev)
    assert await content(h, h.p("x")) == b"theirs"
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("y"))


@pytest.mark.parametrize("size", [5, 7 * MiB], ids=["small", "large"])
async def test_copy(h: Harness, size: int):
    data = os.urandom(size)
    attrs = FileAttrs(mode=0o640, mtime_ns=1_400_000_000_000_000_000)
    await put(h, h.p("src"), data, attrs=attrs)
    await put(h, h.p("dst"), b"old")
    copied = await h.remote.copy(h.p("src"), h.p("dst"))
    assert (copied.path, copied.kind, copied.size) == (h.p("dst"), Kind.FILE, size)
    assert await content(h, h.p("src")) == data
    assert await content(h, h.p("dst")) == data
    st = await h.remote.stat(h.p("dst"))
    assert st.rev == copied.rev
    if h.remote.capabilities.keeps_mode:
        assert (st.attrs.mode, st.mtime_ns) == (0o640, attrs.mtime_ns)
    with pytest.raises(RemoteNotFound):
        await h.remote.copy(h.p("missing"), h.p("z"))


@pytest.mark.parametrize("size", [5, 7 * MiB], ids=["small", "large"])  # large: S3's multipart copy
async def test_copy_is_conditional(h: Harness, size: int):
    """A copy never replaces a version it did not expect, nor copies a source changed since
    it was seen: each conflict here is real (another client changed the object), so a remote
    that ignored ``rev`` or ``expect`` would overwrite or copy the wrong bytes."""
    data, theirs = os.urandom(size), os.urandom(size + 1)  # (sizes differ: wsgidav's ETags are per second)
    old_src = await put(h, h.p("src"), b"the source, before")
    h.put_outside(h.p("src"), data)
    with pytest.raises(PreconditionFailed):
        await h.remote.copy(h.p("src"), h.p("dst"), rev=old_src.rev)
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("dst"))
    src = await h.remote.stat(h.p("src"))

    made = await h.remote.copy(h.p("src"), h.p("dst"), rev=src.rev, expect=Expect.ABSENT)
    assert (made.path, made.kind, made.size) == (h.p("dst"), Kind.FILE, size)
    assert (await h.remote.stat(h.p("dst"))).rev == made.rev
    assert await content(h, h.p("dst")) == data
    with pytest.raises(PreconditionFailed):  # the name is taken now
        await h.remote.copy(h.p("src"), h.p("dst"), rev=src.rev, expect=Expect.ABSENT)
    await assert_untouched(h, h.p("dst"), made, data)

    h.put_outside(h.p("dst"), theirs)  # someone else replaces the copy
    with pytest.raises(PreconditionFailed):
        await h.remote.copy(h.p("src"), h.p("dst"), rev=src.rev, expect=made.rev)
    now = await h.remote.stat(h.p("dst"))
    assert await content(h, h.p("dst")) == theirs
    with pytest.raises(PreconditionFailed):  # a stale source with a right destination: nothing either
        await h.remote.copy(h.p("src"), h.p("dst"), rev=old_src.rev, expect=now.rev)
    await assert_untouched(h, h.p("dst"), now, theirs)

    again = await h.remote.copy(h.p("src"), h.p("dst"), rev=src.rev, expect=now.rev)
    assert again.rev == (await h.remote.stat(h.p("dst"))).rev
    assert await content(h, h.p("dst")) == data
    assert await content(h, h.p("src"), src.rev) == data  # the source is left as it was
    with pytest.raises(PreconditionFailed):  # a revision expected at a name nothing holds
        await h.remote.copy(h.p("src"), h.p("gone"), expect=again.rev)
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("gone"))


@pytest.mark.parametrize("size", [5, 7 * MiB], ids=["single", "multipart"])
async def test_s3_copy_conditions_hold_at_the_server(moto_server, monkeypatch, size: int):  # noqa: ANN001
    """Another client writes between our HEAD check and the copy: the conditions sent with
    CopyObject (small) or CompleteMultipartUpload (above copy_threshold) still refuse it.
    tests/servers/moto_atomic enforces them as S3 does; moto alone would copy over theirs."""
    from tests.contract.conftest import _s3

    h = _s3(moto_server, "")
    remote = h.remote
    assert isinstance(remote, S3Remote)
    try:
        data = os.urandom(size)
        await put(h, "src", data)
        mine = await put(h, "dst", b"mine")

        async def passes(*_args: object) -> None:  # every HEAD check passes: the race window, always
            return None

        monkeypatch.setattr(remote.s3, "check_expect", passes)
        h.put_outside("dst", b"theirs")
        for expect in (Expect.ABSENT, mine.rev):
            with pytest.raises(PreconditionFailed):
                await remote.copy("src", "dst", expect=expect)
            assert await content(h, "dst") == b"theirs"
        with pytest.raises(PreconditionFailed):
            await remote.copy("src", "new", expect=mine.rev)
        with pytest.raises(RemoteNotFound):
            await remote.stat("new")
        theirs = await remote.stat("dst")
        copied = await remote.copy("src", "dst", expect=theirs.rev)
        assert (await remote.stat("dst")).rev == copied.rev and await content(h, "dst") == data
        stale = await remote.s3.head("src")  # and the source changes after our HEAD of it
        h.put_outside("src", b"changed")
        with pytest.raises(PreconditionFailed):
            await remote.s3.copy("src", "new", stale, "copy", remote.copy_threshold, expect=Expect.ABSENT)
        with pytest.raises(RemoteNotFound):
            await remote.stat("new")
    finally:
        await remote.aclose()


async def test_symlinks(h: Harness):
    target = "../elsewhere/ünï côdé.txt"
    made = await h.remote.symlink(h.p("link"), target)
    assert (made.path, made.kind) == (h.p("link"), Kind.SYMLINK)
    assert (await h.remote.stat(h.p("link"))).kind is Kind.SYMLINK
    assert await h.remote.readlink(h.p("link")) == target
    assert await kinds(h, h.base) == {h.p("link"): Kind.SYMLINK}
    with pytest.raises(RemoteExists):
        await h.remote.symlink(h.p("link"), "other")
    await h.remote.rename(h.p("link"), h.p("sub/moved"))
    assert (await h.remote.stat(h.p("sub/moved"))).kind is Kind.SYMLINK
    assert await h.remote.readlink(h.p("sub/moved")) == target
    assert await kinds(h, h.base, recursive=True) == {h.p("sub"): Kind.DIR, h.p("sub/moved"): Kind.SYMLINK}
    await h.remote.delete(h.p("sub/moved"))
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("sub/moved"))
    with pytest.raises(RemoteNotFound):
        await h.remote.readlink(h.p("sub/moved"))
    await put(h, h.p("plain"), b"x")
    with pytest.raises(RemoteError) as info:
        await h.remote.readlink(h.p("plain"))
    assert info.value.errno == errno.EINVAL


async def test_special_file_markers_round_trip(h: Harness):
    """A special file is a symlink to its marker at the contract (``remotes.specials``): every
    remote gives the marker back whole -- the NUL it starts with included -- from readlink, and
    from stat and listings where they carry targets; file:// makes the real FIFO."""
    fifo = specials.Special(Kind.FIFO, 0o640, 0, 0, 0).marker()
    null = specials.Special(Kind.CHAR_DEVICE, 0o666, 0, 5, os.makedev(1, 3)).marker()
    await h.remote.symlink(h.p("pipe"), fifo)
    await h.remote.symlink(h.p("dev/null"), null)
    assert await h.remote.readlink(h.p("pipe")) == fifo
    assert specials.parse(await h.remote.readlink(h.p("dev/null"))) == specials.Special(
        Kind.CHAR_DEVICE, 0o666, 0, 5, os.makedev(1, 3))
    for entry in [await h.remote.stat(h.p("pipe"))] + [e async for e in h.remote.list(h.base, recursive=True)]:
        assert entry.kind in (Kind.SYMLINK, Kind.DIR)
        assert entry.symlink_target in (None, fifo, null)  # where known without a read: whole
    moved = await h.remote.rename(h.p("pipe"), h.p("dev/fifo"))
    assert await h.remote.readlink(h.p("dev/fifo")) == fifo
    placed = (await h.remote.stat(h.p("dev/fifo"))).rev
    assert moved.rev == placed or not h.remote.capabilities.native_symlinks  # (emulated: the link object's rev)
    await h.remote.delete(h.p("dev/fifo"), expect=placed)  # the uploader deletes markers at the rev it placed
    assert await kinds(h, h.p("dev")) == {h.p("dev/null"): Kind.SYMLINK}
    stale = (await h.remote.stat(h.p("dev/null"))).rev
    await h.remote.delete(h.p("dev/null"))
    await h.remote.symlink(h.p("dev/null"), null.replace(" 666 ", " 600 "))  # another gateway's chmod
    with pytest.raises(PreconditionFailed):
        await h.remote.delete(h.p("dev/null"), expect=stale)


# -- hard links (``Capabilities.hard_links``: file://, also behind the wrappers) -------------------


@pytest.fixture
def hard_links(harness: Harness) -> None:
    if not capabilities_at(harness.remote, harness.p("f")).hard_links:
        pytest.skip("this remote has no hard links")


def same_inode(h: Harness, *paths: str) -> bool:
    """Whether ``paths`` are names of one inode on disk (True where the harness cannot look)."""
    if h.disk_path is None:
        return True
    return len({(st.st_dev, st.st_ino) for st in (os.lstat(h.disk_path(p)) for p in paths)}) == 1


async def test_link_makes_another_name_of_one_object(h: Harness, hard_links: None):
    data = os.urandom(70_000)
    written = await put(h, h.p("f"), data, attrs=FileAttrs(mode=0o640, mtime_ns=1_600_000_000_000_000_000))
    made = await hard_link(h.remote, h.p("f"), h.p("sub/g"), rev=written.rev, expect=Expect.ABSENT)
    assert (made.path, made.kind, made.size) == (h.p("sub/g"), Kind.FILE, len(data))
    src, dst = await h.remote.stat(h.p("f")), await h.remote.stat(h.p("sub/g"))
    assert src.rev == dst.rev == made.rev  # one object, one revision under every name
    assert same_version(h.remote, written.rev, made.rev, path=h.p("f"))
    assert same_inode(h, h.p("f"), h.p("sub/g"))
    assert (dst.attrs.mode, dst.mtime_ns) == (0o640, 1_600_000_000_000_000_000)
    assert await content(h, h.p("sub/g"), rev=made.rev) == data
    assert await content(h, h.p("f"), rev=written.rev) == data  # a pin taken before the link still holds
    assert await kinds(h, h.base, recursive=True) == {h.p("f"): Kind.FILE, h.p("sub"): Kind.DIR,
                                                       h.p("sub/g"): Kind.FILE}  # no temp names


async def test_link_with_a_stale_source_rev_does_nothing(h: Harness, hard_links: None):
    old = await put(h, h.p("f"), b"mine")
    h.put_outside(h.p("f"), b"theirs, longer")
    for expect in (Expect.ABSENT, Expect.ANY):
        with pytest.raises(PreconditionFailed):
            await hard_link(h.remote, h.p("f"), h.p("g"), rev=old.rev, expect=expect)
        with pytest.raises(RemoteNotFound):
            await h.remote.stat(h.p("g"))
    await h.remote.delete(h.p("f"))
    with pytest.raises(PreconditionFailed):
        await hard_link(h.remote, h.p("f"), h.p("g"), rev=old.rev, expect=Expect.ABSENT)
    with pytest.raises(RemoteNotFound):
        await hard_link(h.remote, h.p("f"), h.p("g"), rev=None, expect=Expect.ABSENT)
    assert await kinds(h, h.base) == {}


async def test_link_onto_an_existing_name(h: Harness, hard_links: None):
    """ABSENT or a stale revision: PreconditionFailed and the name keeps its object; its
    revision: replaced atomically (no temp name left); ANY: replaced."""
    f = await put(h, h.p("f"), b"the source")
    g = await put(h, h.p("g"), b"the old g")
    h.put_outside(h.p("x"), b"x")
    stale = (await h.remote.stat(h.p("x"))).rev
    for expect in (Expect.ABSENT, stale):
        with pytest.raises(PreconditionFailed):
            await hard_link(h.remote, h.p("f"), h.p("g"), rev=f.rev, expect=expect)
        assert (await h.remote.stat(h.p("g"))).rev == g.rev
        assert await content(h, h.p("g")) == b"the old g"
    made = await hard_link(h.remote, h.p("f"), h.p("g"), rev=f.rev, expect=g.rev)
    assert await content(h, h.p("g"), rev=made.rev) == b"the source"
    assert (await h.remote.stat(h.p("f"))).rev == made.rev
    assert same_inode(h, h.p("f"), h.p("g"))
    made = await hard_link(h.remote, h.p("f"), h.p("x"), rev=made.rev, expect=Expect.ANY)
    assert await content(h, h.p("x")) == b"the source"
    assert same_inode(h, h.p("f"), h.p("g"), h.p("x"))
    assert await kinds(h, h.base) == {h.p(n): Kind.FILE for n in ("f", "g", "x")}  # no temp names


async def test_link_redone_after_a_lost_reply_answers_the_same(h: Harness, hard_links: None):
    f = await put(h, h.p("f"), b"data")
    made = await hard_link(h.remote, h.p("f"), h.p("g"), rev=f.rev, expect=Expect.ABSENT)
    again = await hard_link(h.remote, h.p("f"), h.p("g"), rev=f.rev, expect=Expect.ABSENT)
    assert (again.path, again.rev, again.size) == (made.path, made.rev, made.size)
    assert await content(h, h.p("g")) == b"data"


async def test_a_linked_files_revision_survives_its_names_coming_and_going(h: Harness, hard_links: None):
    """The revision a link answered still names the file's version (``same_version``) when
    the other name is gone, and conditional reads, writes and deletes take it -- no
    spurious PreconditionFailed after our own ``rm`` of the other name."""
    f = await put(h, h.p("f"), b"data")
    made = await hard_link(h.remote, h.p("f"), h.p("g"), rev=f.rev, expect=Expect.ABSENT)
    chmod = await set_attrs(h.remote, h.p("g"), FileAttrs(mode=0o600), expect=made.rev)
    assert chmod is not None and chmod.rev == made.rev  # attributes: not a new version of a linked file
    assert (await h.remote.stat(h.p("f"))).attrs.mode == 0o600
    await h.remote.delete(h.p("g"), expect=made.rev)
    alone = await h.remote.stat(h.p("f"))
    assert same_version(h.remote, made.rev, alone.rev, path=h.p("f"))
    assert same_version(h.remote, alone.rev, made.rev, path=h.p("f"))
    assert await content(h, h.p("f"), rev=made.rev) == b"data"
    again = await hard_link(h.remote, h.p("f"), h.p("g"), rev=alone.rev, expect=Expect.ABSENT)
    await h.remote.rename(h.p("g"), h.p("h"), expect=made.rev)
    await h.remote.delete(h.p("h"), expect=again.rev)
    rewritten = await put(h, h.p("f"), b"new data", expect=made.rev)
    assert not same_version(h.remote, made.rev, rewritten.rev, path=h.p("f"))
    with pytest.raises(PreconditionFailed):
        await put(h, h.p("f"), b"stale", expect=made.rev)
    assert await content(h, h.p("f")) == b"new data"


async def test_a_change_under_one_name_is_a_change_under_all(h: Harness, hard_links: None):
    """Another program writing the file in place through one name: the revision of every name moves."""
    f = await put(h, h.p("f"), b"data")
    made = await hard_link(h.remote, h.p("f"), h.p("g"), rev=f.rev, expect=Expect.ABSENT)
    h.put_outside(h.p("g"), b"theirs, longer")
    for name in ("f", "g"):
        now = await h.remote.stat(h.p(name))
        assert not same_version(h.remote, made.rev, now.rev, path=h.p(name))
        with pytest.raises(PreconditionFailed):
            await put(h, h.p(name), b"mine", expect=made.rev)
    assert await content(h, h.p("f")) == b"theirs, longer"


async def test_links_of_symlinks_and_special_files(h: Harness, hard_links: None):
    sym = await h.remote.symlink(h.p("sym"), "../some/target")
    fifo = specials.Special(Kind.FIFO, 0o640, os.getuid(), os.getgid(), 0).marker()
    pipe = await h.remote.symlink(h.p("pipe"), fifo)
    made = await hard_link(h.remote, h.p("sym"), h.p("d/sym2"), rev=sym.rev, expect=Expect.ABSENT)
    assert (made.kind, await h.remote.readlink(h.p("d/sym2"))) == (Kind.SYMLINK, "../some/target")
    made = await hard_link(h.remote, h.p("pipe"), h.p("d/pipe2"), rev=pipe.rev, expect=Expect.ABSENT)
    assert (made.kind, await h.remote.readlink(h.p("d/pipe2"))) == (Kind.SYMLINK, fifo)
    assert same_inode(h, h.p("sym"), h.p("d/sym2")) and same_inode(h, h.p("pipe"), h.p("d/pipe2"))
    assert (await h.remote.stat(h.p("pipe"))).rev == made.rev
    await h.remote.mkdir(h.p("dir"))
    with pytest.raises(RemoteError):
        await hard_link(h.remote, h.p("dir"), h.p("dir2"), rev=None, expect=Expect.ABSENT)


@pytest.fixture
def no_hard_links(harness: Harness) -> None:
    if capabilities_at(harness.remote, harness.p("f")).hard_links:
        pytest.skip("this remote has hard links")


async def test_link_where_there_are_none(h: Harness, no_hard_links: None):
    """Without ``hard_links`` the helper refuses (the caller copies or writes instead)."""
    f = await put(h, h.p("f"), b"data")
    with pytest.raises(RemoteUnsupported):
        await hard_link(h.remote, h.p("f"), h.p("g"), rev=f.rev, expect=Expect.ABSENT)
    with pytest.raises(RemoteNotFound):
        await h.remote.stat(h.p("g"))
    assert same_version(h.remote, f.rev, f.rev) and not same_version(h.remote, f.rev, f.rev + "x")


async def test_router_links_within_one_remote_only(tmp_path):
    """Across two remotes, to or from the top level, or on a remote without hard links:
    ``RemoteUnsupported`` (EXDEV across two, as ``rename``), nothing done."""
    from types import SimpleNamespace

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    router = RouterRemote({"a": LocalRemote(tmp_path / "a"), "b": LocalRemote(tmp_path / "b"),
                           "w": SimpleNamespace(capabilities=Capabilities())})
    assert capabilities_at(router, "a/x").hard_links and not router.capabilities.hard_links
    x = await router.write("a/x", BytesSource(b"x"))
    made = await hard_link(router, "a/x", "a/y", rev=x.rev, expect=Expect.ABSENT)
    assert made.path == "a/y" and os.lstat(tmp_path / "a/x").st_ino == os.lstat(tmp_path / "a/y").st_ino
    assert same_version(router, x.rev, made.rev, path="a/x") and same_version(router, x.rev, made.rev)
    with pytest.raises(RemoteUnsupported) as info:
        await router.link("a/x", "b/x", rev=None, expect=Expect.ABSENT)
    assert info.value.errno == errno.EXDEV
    with pytest.raises(RemoteUnsupported):
        await router.link("a/x", "top", rev=None, expect=Expect.ABSENT)
    with pytest.raises(RemoteUnsupported):
        await hard_link(router, "w/x", "w/y", rev=None, expect=Expect.ABSENT)
    assert sorted(os.listdir(tmp_path / "b")) == []


def test_file_revisions_of_linked_files(tmp_path):
    """One name: ino-size-mtime-ctime, as always.  Several: ino-size-mtime-l, the same for every
    name; it matches the one-name form of the same ino, size and mtime (either way), nothing else."""
    f = tmp_path / "f"
    f.write_bytes(b"data")
    one = local_rev(os.lstat(f))
    st = os.lstat(f)
    assert one == f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}"
    os.link(f, tmp_path / "g")
    linked = local_rev(os.lstat(f))
    assert linked == local_rev(os.lstat(tmp_path / "g")) == f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}-l"
    os.link(f, tmp_path / "h")
    os.unlink(tmp_path / "g")
    assert local_rev(os.lstat(f)) == linked  # a name came and went: the same string
    os.unlink(tmp_path / "h")
    alone = local_rev(os.lstat(f))
    assert alone != one  # the ctime moved
    assert local_same_version(linked, alone) and local_same_version(one, linked)
    assert not local_same_version(one, alone)  # two one-name revisions compare whole
    ino, size, mtime = st.st_ino, st.st_size, st.st_mtime_ns
    for other in (f"{ino + 1}-{size}-{mtime}-l", f"{ino}-{size + 1}-{mtime}-l", f"{ino}-{size}-{mtime + 1}-l",
                  f"{ino}-{size}-{mtime + 1}-5", "etag-l", '"abc-3"', "", "1-2-3-l-l"):
        assert not local_same_version(linked, other) and not local_same_version(other, linked)
    assert LocalRemote(tmp_path).same_version(one, linked)


async def test_unicode_and_spaces_in_names(h: Harness):
    names = ["with space.txt", "ünïcødé ✓.txt", "日本語/ファイル.txt", "emoji 🎉/x y", "semi;colon&amp+plus%25"]
    for i, name in enumerate(names):
        await put(h, h.p(name), name.encode() * (i + 1))
    listed = await listing(h, h.base, recursive=True)
    assert {p for p, e in listed.items() if e.kind is Kind.FILE} == {h.p(n) for n in names}
    assert {e.name for e in listed.values() if e.kind is Kind.DIR} == {"日本語", "emoji 🎉"}
    for i, name in enumerate(names):
        assert await content(h, h.p(name)) == name.encode() * (i + 1)
    await h.remote.rename(h.p("with space.txt"), h.p("renamed ünï.txt"))
    assert await content(h, h.p("renamed ünï.txt")) == b"with space.txt"


# -- check() --------------------------------------------------------------------


async def test_check_explains_what_is_wrong(h: Harness):
    await h.remote.check()
    for broken in h.broken():
        try:
            with pytest.raises(UserError) as info:
                await broken.remote.check()
        finally:
            await broken.remote.aclose()
        message = str(info.value)
        assert "\n" not in message, broken.label
        assert re.search(broken.match, message), (broken.label, message)
        if broken.secret:
            assert broken.secret not in message


# -- the router's own rules and URL parsing (no harness needed) -------------------


async def test_router_top_level(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    router = RouterRemote({"a": LocalRemote(tmp_path / "a"), "b": LocalRemote(tmp_path / "b")})
    assert [(e.path, e.kind) async for e in router.list("")] == [("a", Kind.DIR), ("b", Kind.DIR)]
    await router.write("a/x", BytesSource(b"x"))
    assert [e.path async for e in router.list("", recursive=True)] == ["a", "a/x", "b"]
    assert (await router.mkdir("a")).kind is Kind.DIR
    for attempt in (
        router.write("top.txt", BytesSource(b"x")),
        router.mkdir("new"),
        router.rmdir("a"),
        router.delete("b"),
        router.symlink("l", "a"),
        router.rename("a", "c"),
        router.set_attrs("a", FileAttrs(mode=0o700)),
    ):
        with pytest.raises(RemoteUnsupported) as info:
            await attempt
        assert info.value.errno == errno.EOPNOTSUPP
    with pytest.raises(RemoteUnsupported) as info:
        await router.rename("a/x", "b/x")
    assert info.value.errno == errno.EXDEV  # mv falls back to copy + delete
    assert await router.read("a/x", 0, 10) == b"x"
    with pytest.raises(RemoteNotFound):
        await router.stat("c/x")


async def test_router_sets_attrs_per_remote(tmp_path):
    """``set_attrs`` goes to the remote a path lies on; one without it keeps none apart (None)."""
    from types import SimpleNamespace

    (tmp_path / "a").mkdir()
    router = RouterRemote({"a": LocalRemote(tmp_path / "a"), "w": SimpleNamespace(capabilities=Capabilities())})
    written = await router.write("a/x", BytesSource(b"x"))
    entry = await set_attrs(router, "a/x", FileAttrs(mode=0o600), expect=written.rev)
    assert entry is not None and (entry.path, entry.attrs.mode) == ("a/x", 0o600)
    assert (tmp_path / "a" / "x").stat().st_mode & 0o7777 == 0o600
    assert await set_attrs(router, "w/x", FileAttrs(mode=0o600), expect="any") is None


def test_router_capabilities_are_the_conservative_combination(tmp_path):
    s3 = S3Remote("bucket", endpoint_url="http://127.0.0.1:9", access_key="k", secret_key="s")
    caps = RouterRemote({"l": LocalRemote(tmp_path), "s": s3}).capabilities
    assert caps.native_symlinks is False  # S3 emulates them
    assert caps.server_side_copy is True and caps.keeps_mode is True


def test_router_capabilities_follow_what_a_remote_learns_in_check(tmp_path):
    """A WebDAV remote learns in check() that its server is a Nextcloud (folder revs
    propagate): a router built before that must answer with what the remote knows now."""
    a, b = LocalRemote(tmp_path / "a"), LocalRemote(tmp_path / "b")
    router = RouterRemote({"a": a, "b": b})
    assert router.capabilities.dir_revs_propagate is False
    for remote in (a, b):
        remote.capabilities = dataclasses.replace(remote.capabilities, dir_revs_propagate=True)
    assert router.capabilities.dir_revs_propagate is True
    assert router.capabilities_for("a/x").dir_revs_propagate is True


async def test_router_top_level_folders_are_dated_from_the_mount_not_1970(tmp_path):
    before = time.time_ns()
    router = RouterRemote({"a": LocalRemote(tmp_path)})
    listed = [e async for e in router.list("")]
    assert [e.name for e in listed] == ["a"] and listed[0].mtime_ns >= before
    assert (await router.stat("a")).mtime_ns == listed[0].mtime_ns


def test_open_remote(tmp_path):
    local = open_remote(f"file://{tmp_path}/with%20space")
    assert isinstance(local, LocalRemote) and str(local.root) == f"{tmp_path}/with space"
    s3 = open_remote("s3://my-bucket/some/prefix/", {"endpoint_url": "http://127.0.0.1:9", "region": "eu-west-1"})
    assert isinstance(s3, S3Remote)
    assert (s3.bucket, s3.prefix, s3.endpoint) == ("my-bucket", "some/prefix/", "http://127.0.0.1:9")
    assert open_remote("s3://my-bucket").prefix == ""
    for url in ("relative/path", "/abs/path", "file://relative/path", "ftp://host/x", "s3://", "s3:///prefix", ""):
        with pytest.raises(UserError) as info:
            open_remote(url)
        message = str(info.value)
        assert message.startswith(f"unsupported remote URL {url!r}"), message
        assert message.endswith(f": use {url_forms()}"), message
        assert "file:///abs/path" in message and "s3://bucket[/prefix]" in message


@pytest.mark.parametrize("url", ["webdav://me:s3cret@host/p?x=1", "webdv://me:s3cret@host/p", "webdav://me:s3cret@host/p#f",
                                 "s3://me:s3cret@bucket/p?x", "webdav://me:s3cret@[::1/p"])
def test_a_bad_remote_url_never_shows_its_password(url):
    with pytest.raises(UserError) as info:
        open_remote(url)
    assert "s3cret" not in str(info.value) and "me:***@" in str(info.value)


@pytest.mark.parametrize("options, match", [
    ({"region": "x"}, r"^where: unknown option region for file:// remotes \(options: crypt_password_file, name_rules\)$"),
])
def test_open_remote_refuses_options_its_type_does_not_declare(tmp_path, options, match):
    with pytest.raises(UserError, match=match):
        open_remote(f"file://{tmp_path}", options, where="where")


@pytest.mark.parametrize("options, match", [
    ({"regoin": "x"}, r"^w: unknown option regoin for s3:// remotes \(options: crypt_password_file, endpoint_url, path_style, profile, region\)$"),
    ({"path_style": "yes"}, r"^w: path_style must be true or false, not 'yes': path-style addressing"),
    ({"region": 3}, r"^w: region must be a string, not 3"),
])
def test_open_remote_checks_option_names_and_types(options, match):
    with pytest.raises(UserError, match=match):
        open_remote("s3://bucket", options, where="w")


def test_secret_files_must_be_private(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    with pytest.raises(UserError, match=r"readable by others \(mode 0644\): chmod 600") as info:
        read_secret(secret, "password_file")
    assert "hunter2" not in str(info.value)
    secret.chmod(0o600)
    assert read_secret(secret, "password_file") == "hunter2"
    with pytest.raises(UserError, match="cannot read"):
        read_secret(tmp_path / "missing", "password_file")


async def test_an_unreachable_s3_endpoint_is_retried_then_unavailable():
    remote = S3Remote("bucket", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key="k", secret_key="s",
                      retry_deadline=1.0)
    start = trio.current_time()
    with pytest.raises(RemoteUnavailable) as info:
        await remote.stat("some/file")
    assert trio.current_time() - start >= 0.2  # it did back off (and gave up: no hang; no upper bound, the machine may be busy)
    assert "HEAD s3://bucket/some/file" in str(info.value) and "connect" in str(info.value).lower()
    await remote.aclose()


def _client_error(status: int, code: str, headers: dict | None = None) -> ClientError:
    response = {"Error": {"Code": code, "Message": "m"},
                "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}}
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    "exc, expected",
    [
        (_client_error(404, "NoSuchKey"), RemoteNotFound),
        (_client_error(404, "404"), RemoteNotFound),
        (_client_error(403, "AccessDenied"), RemotePermissionDenied),
        (_client_error(403, "SignatureDoesNotMatch"), RemotePermissionDenied),
        (_client_error(412, "PreconditionFailed"), PreconditionFailed),
        (_client_error(412, "InvalidRequest"), PreconditionFailed),  # Swift's CompleteMultipartUpload
        (_client_error(501, "NotImplemented"), RemoteUnsupported),
        (_client_error(503, "SlowDown"), TransientRemoteError),
        (_client_error(500, "InternalError"), TransientRemoteError),
        (_client_error(429, "TooManyRequests"), TransientRemoteError),
        (_client_error(400, "RequestTimeout"), TransientRemoteError),
        (_client_error(409, "ConditionalRequestConflict"), TransientRemoteError),
        (_client_error(400, "InvalidArgument"), RemoteError),
        (EndpointConnectionError(endpoint_url="http://x"), TransientRemoteError),
        (ConnectionClosedError(endpoint_url="http://x"), TransientRemoteError),
        (ReadTimeoutError(endpoint_url="http://x"), TransientRemoteError),
        (NoCredentialsError(), RemotePermissionDenied),
    ],
)
def test_s3_error_mapping(exc, expected):
    mapped = map_boto_error(exc, "PUT s3://b/k")
    assert type(mapped) is expected
    assert str(mapped).startswith("PUT s3://b/k: ")


@pytest.mark.parametrize("reply, offset, ok", [
    ({"ContentRange": "bytes 5-9/10"}, 5, True),
    ({"ContentRange": "bytes 0-9/10"}, 5, False),  # a server that ignored Range on a resume
    ({}, 0, True), ({}, 7, False), ({"ContentRange": "garbage"}, 0, False),
])
def test_a_streamed_get_only_takes_a_reply_that_starts_where_it_asked(reply, offset, ok):
    from cloudgw.remotes.s3_bucket import _starts_at

    assert _starts_at(reply, offset) is ok


def test_s3_error_mapping_keeps_retry_after_and_bucket_errors_apart():
    assert map_boto_error(_client_error(503, "SlowDown", {"retry-after": "3"}), "x").retry_after == 3.0
    gone = map_boto_error(_client_error(404, "NoSuchBucket"), "x")
    assert type(gone) is RemoteError and gone.errno == errno.EIO  # not "every file was deleted"


@pytest.mark.parametrize(
    "err, expected, errno_",
    [
        (errno.ENOENT, RemoteNotFound, errno.ENOENT),
        (errno.EACCES, RemotePermissionDenied, errno.EACCES),
        (errno.ENOTEMPTY, RemoteNotEmpty, errno.ENOTEMPTY),
        (errno.ENOSPC, RemoteError, errno.ENOSPC),
        (errno.EIO, RemoteError, errno.EIO),
        (errno.EROFS, RemoteError, errno.EROFS),
    ],
)
def test_local_error_mapping(err, expected, errno_):
    mapped = map_oserror(OSError(err, os.strerror(err)), "write 'a/b'")
    assert type(mapped) is expected and mapped.errno == errno_
    assert str(mapped) == f"write 'a/b': {os.strerror(err)}"
