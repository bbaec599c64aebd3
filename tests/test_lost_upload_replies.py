"""A new version of a file that was already on the remote lands, its reply is lost, and the
user acts before the gateway knows it landed: nothing comes back, nothing is duplicated.

Found by the one-hour soak (2026-12-07: a deleted ``d3/f12.bin`` was back in the mount
after 15 minutes; faults ``rate=0.05;retry=1``).  Two paths to it, both fixed:

* The file is deleted (or renamed and changed) while the upload of v2 is unanswered.  Its
  tombstone holds v1, the revision from before; our v2 is at the path.  The conditional
  delete expecting v1 was refused by our own bytes, the tombstone dropped as "changed
  elsewhere", and the next poll brought the file back.  Now the orphan write, once
  recognised as ours, moves the tombstone to the revision it landed as
  (``UnackedWrites._stale_tombstone``).
* The remote client retries the lost request itself (``retry``, as botocore's retries
  would), and the retry is refused: the first attempt landed.  The uploader took that
  for someone else's write and, if the file changed meanwhile, copied our own v2 aside as
  a conflict copy.  Now the attempt is remembered before the conflict check
  (``Uploader._upload``), so it is recognised as ours.

The window is held open deterministically: a slow ``stat`` of the path (the conflict check's
first step) while the test acts; no timing is asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from cloudgw.remotes.base import Remote
from cloudgw.remotes.faulty import Fault, FaultPlan, FaultyRemote, Rule
from tests.inprocess.harness import running
from tests import test_faults
from tests.test_faults import FAST, _has, converged, local_tree, put, remote_tree, wait_for

inner = test_faults.inner  # the fixture: each test runs on file:// and on S3 (moto)

WARN = pytest.mark.allow_warnings("failed (will retry)")


@WARN
async def test_a_file_deleted_while_its_new_version_is_unanswered_stays_deleted(inner: Remote, tmp_path: Path):
    """No retry inside the client: the upload of v2 fails, v2 is there, the file is deleted."""
    await put(inner, "doc.txt", b"v1")
    plan = FaultPlan([Rule(Fault.LOST_REPLY, ops="write", nth=1)])
    plan.off()
    async with running(FaultyRemote(inner, plan), tmp_path / "cache", **FAST) as h:
        assert await h.read_file("doc.txt") == b"v1"
        plan.on()
        await h.write_file("doc.txt", b"v2")
        await wait_for(lambda: _has(inner, "doc.txt", b"v2"), 5)  # landed; its reply is lost
        await h.unlink("doc.txt")
        local = await converged(h)
        await h.engine.poll_now()
        local = await local_tree(h)
    remote = await remote_tree(inner)
    await inner.aclose()
    assert plan.total() == 1
    assert local == remote == {}


def _retried_lost_reply() -> tuple[FaultPlan, Rule]:
    """The first write of v2 lands unanswered and the client retries it (refused: v2 is there);
    the uploader's look at what is there (a stat of doc.txt) is slow once: the test's window."""
    slow = Rule(Fault.LATE_REPLY, ops="stat", path="doc.txt", seconds=0.3, limit=1)
    return FaultPlan([Rule(Fault.LOST_REPLY, ops="write", nth=1), slow], retry=True, retry_deadline=8), slow


@WARN
@pytest.mark.parametrize("then", ["delete", "rename", "rename and append", "overwrite"])
async def test_a_retried_lost_upload_then_a_change_leaves_exactly_the_users_files(inner: Remote, tmp_path: Path,
                                                                                   then: str):
    await put(inner, "doc.txt", b"v1")
    plan, slow = _retried_lost_reply()
    plan.off()
    async with running(FaultyRemote(inner, plan), tmp_path / "cache", **FAST) as h:
        assert await h.read_file("doc.txt") == b"v1"
        plan.on()
        await h.write_file("doc.txt", b"v2")
        await wait_for(lambda: trio.to_thread.run_sync(lambda: slow.fired == 1), 5)
        if then == "delete":
            await h.unlink("doc.txt")
            want = {}
        elif then == "rename":
            await h.rename("doc.txt", "new.txt")
            want = {"new.txt": b"v2"}
        elif then == "rename and append":
            await h.rename("doc.txt", "new.txt")
            await h.write_file("new.txt", b"++", offset=2, create=False)
            want = {"new.txt": b"v2++"}
        else:
            await h.write_file("doc.txt", b"v3")
            want = {"doc.txt": b"v3"}  # and no conflict copy of our own v2
        await converged(h)
        await h.engine.poll_now()
        local = await local_tree(h)
    remote = await remote_tree(inner)
    await inner.aclose()
    assert local == remote == want


@WARN
async def test_a_new_file_at_a_deleted_name_then_deleted_with_its_upload_unanswered_stays_deleted(
        inner: Remote, tmp_path: Path):
    """doc.txt deleted (tombstone at v1), a new doc.txt written (its upload expects v1, lands,
    its reply is lost), then deleted too."""
    await put(inner, "doc.txt", b"v1")
    await put(inner, "keep.txt", b"k")
    plan, slow = _retried_lost_reply()
    plan.off()
    async with running(FaultyRemote(inner, plan), tmp_path / "cache", **FAST) as h:
        assert await h.read_file("doc.txt") == b"v1"
        await h.unlink("doc.txt")
        await h.write_file("doc.txt", b"v2")
        plan.on()
        await wait_for(lambda: trio.to_thread.run_sync(lambda: slow.fired == 1), 5)
        await h.unlink("doc.txt")
        await converged(h)
        await h.engine.poll_now()
        local = await local_tree(h)
    remote = await remote_tree(inner)
    await inner.aclose()
    assert local == remote == {"keep.txt": b"k"}
