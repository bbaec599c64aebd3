"""The metrics wrapper (``InstrumentedRemote``) and the metrics it feeds (``cloudgw.metrics``).

The contract suite runs over the wrapper too (``tests/contract``: ``*-instrumented``);
here: that it adds or hides no optional part of the contract, what counts as a failure,
and the bytes counted up and down (also for a write whose parts are copied server-side).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cloudgw.errors import PreconditionFailed, RemoteNotFound, TransientRemoteError
from cloudgw.metrics import Metrics
from cloudgw.remotes.base import (BytesSource, ChangeFeedRemote, Expect, StreamingRemote, capabilities_at, check_path,
                                  read_into)
from cloudgw.remotes.instrumented import InstrumentedRemote
from cloudgw.remotes.local import LocalRemote
from cloudgw.remotes.mapped import MappedNamesRemote
from cloudgw.remotes.names import NameCodec, named_on_linux
from cloudgw.remotes.router import RouterRemote
from tests.contract.conftest import CountingObserver


class _Feed:
    """A minimal change feed on top of a local remote (the shape of Graph/Drive feeds)."""

    def __init__(self, inner: LocalRemote) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.inner, name)

    async def change_cursor(self) -> str:
        return "c0"

    async def changes(self, cursor: str) -> tuple[list, str]:
        return [], cursor + "+"


def _local(tmp_path: Path) -> LocalRemote:
    (tmp_path / "cloud").mkdir(exist_ok=True)
    return LocalRemote(tmp_path / "cloud")


async def test_optional_parts_of_the_contract_are_there_exactly_when_the_inner_remote_has_them(tmp_path: Path):
    observer = CountingObserver()
    local = _local(tmp_path)
    plain = InstrumentedRemote(local, "", observer)
    assert not isinstance(plain, ChangeFeedRemote) and not hasattr(plain, "capabilities_for")
    assert plain.capabilities == local.capabilities
    assert isinstance(plain, StreamingRemote)  # read_into: a non-streaming inner is read whole, as before

    feed = InstrumentedRemote(_Feed(local), "", observer)
    assert isinstance(feed, ChangeFeedRemote)
    assert await feed.change_cursor() == "c0" and await feed.changes("c0") == ([], "c0+")
    assert [op for _, op, _ in observer.requests] == ["change_cursor", "changes"]

    mapped = InstrumentedRemote(MappedNamesRemote(local, NameCodec(named_on_linux("onedrive"))), "od", observer)
    assert hasattr(mapped, "check_path")
    with pytest.raises(Exception) as refused:
        check_path(mapped, "a" * 300)
    with pytest.raises(type(refused.value)):
        check_path(mapped.inner, "a" * 300)

    router = InstrumentedRemote(RouterRemote({"m": local}), "", observer)
    assert capabilities_at(router, "m/x") == capabilities_at(router.inner, "m/x")
    assert router.capabilities == router.inner.capabilities


async def test_answers_are_requests_and_failures_are_errors(tmp_path: Path):
    observer = CountingObserver()
    remote = InstrumentedRemote(_local(tmp_path), "r", observer)
    await remote.write("a.txt", BytesSource(b"hello"))
    with pytest.raises(RemoteNotFound):
        await remote.stat("missing")
    with pytest.raises(PreconditionFailed):
        await remote.write("a.txt", BytesSource(b"other"), expect=Expect.ABSENT)

    class Down:
        capabilities = remote.capabilities

        async def stat(self, path: str):  # noqa: ANN201
            raise TransientRemoteError("503")

    down = InstrumentedRemote(Down(), "r", observer)  # type: ignore[arg-type]
    with pytest.raises(TransientRemoteError):
        await down.stat("x")
    assert observer.requests == [("r", "write", False), ("r", "stat", False), ("r", "write", False),
                                 ("r", "stat", True)]
    assert observer.bytes == {"up": 5, "down": 0}  # the refused write moved nothing

    names = [e.path async for e in remote.list("")]
    assert names == ["a.txt"] and observer.requests[-1] == ("r", "list", False)
    assert await remote.read("a.txt", 1, 3) == b"ell"
    got = bytearray()
    await read_into(remote, "a.txt", 0, 100, got.extend)
    assert bytes(got) == b"hello" and observer.bytes["down"] == 3 + 5


async def test_the_metrics_count_per_remote_and_operation(tmp_path: Path):
    metrics = Metrics(["a", "b"])
    a = InstrumentedRemote(_local(tmp_path), "a", metrics)
    await a.write("x", BytesSource(b"12345678"))
    await a.read("x", 0, 8)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(metrics.scrape().decode()) for s in f.samples}
    assert samples[("cloudgw_uploaded_bytes_total", (("remote", "a"),))] == 8
    assert samples[("cloudgw_downloaded_bytes_total", (("remote", "a"),))] == 8
    assert samples[("cloudgw_uploaded_bytes_total", (("remote", "b"),))] == 0
    assert samples[("cloudgw_remote_requests_total", (("op", "write"), ("remote", "a")))] == 1
    assert samples[("cloudgw_remote_request_duration_seconds_count", (("op", "read"), ("remote", "a")))] == 1
    assert not any(name == "cloudgw_remote_errors_total" for name, _ in samples)


async def test_a_scraper_that_never_reads_the_answer_is_let_go(autojump_clock):  # noqa: ANN001
    """The answer is sent with a timeout: a client (a wedged scraper, or anyone when the
    address is not loopback) that sends a request and stops reading does not hold its
    task and file descriptor forever.  A lockstep stream: a send waits for the reader."""
    import trio
    import trio.testing

    from cloudgw.metrics import REQUEST_TIMEOUT

    metrics = Metrics()
    client, server = trio.testing.lockstep_stream_pair()
    with trio.fail_after(3 * REQUEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(metrics._answer, server)
            await client.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        # _answer returned; the client's end sees the server's end closed
        with pytest.raises(trio.BrokenResourceError):
            await client.send_all(b"more")


async def test_parts_copied_server_side_are_not_counted_as_uploaded(moto_server, monkeypatch):  # noqa: ANN001
    import os

    from cloudgw.remotes.s3 import S3Remote
    from tests.contract.test_remote_contract import EditedSource

    for k, v in moto_server.env().items():
        monkeypatch.setenv(k, v)
    bucket = f"instr-{os.urandom(6).hex()}"
    moto_server.client().create_bucket(Bucket=bucket)
    MiB = 1 << 20
    observer = CountingObserver()
    remote = InstrumentedRemote(S3Remote(bucket, "", endpoint_url=moto_server.endpoint_url, path_style=True,
                                         multipart_threshold=6 * MiB, part_size=5 * MiB, copy_threshold=6 * MiB),
                                "s3", observer)
    try:
        base = os.urandom(16 * MiB)
        first = await remote.write("big", BytesSource(base))
        assert observer.bytes["up"] == len(base)
        edited = bytearray(base)
        edited[100:104] = b"EDIT"
        source = EditedSource(bytes(edited), first.rev, [(100, 4)], len(base))
        await remote.write("big", source, expect=first.rev)
        copied = sum(n for _, n in source.copies)
        assert copied > 0, "the remote copied nothing server-side: nothing to test"
        assert observer.bytes["up"] == len(base) + len(edited) - copied
    finally:
        await remote.aclose()
