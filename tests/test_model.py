"""Model-based test of the real mount (hypothesis.stateful).

A ``RuleBasedStateMachine`` drives the real daemon (``tests.mount.gateway.Gateway``
over a ``file://`` remote in a temp dir, ``--write-back 0.2 --poll-interval 1``)
with plain, synchronous ``os`` calls and compares it with a reference model:
``files`` (path -> bytes) and ``dirs`` (set of directory paths).

Rules: create/overwrite, append, truncate, mkdir, rmdir, unlink, rename of files
and directories (including the failing cases: the errno must be one POSIX allows),
read-and-compare, ``sync`` (then the remote directory must equal the model
exactly), changes made directly in the remote directory (write, delete, mkdir, rmdir) by "another user"
(then ``poll`` and compare), clean remount, and ``kill -9`` + remount.

Invariant after every step: the tree listed through the mount equals the model.

What the gateway promises and the model relies on:
- every write here is closed at once, so ``kill -9`` loses nothing: the model
  is unchanged by a crash, and a later ``sync`` must bring the remote to it;
- outside changes are made only to paths with no local change since the last
  sync (neither the path nor an ancestor was touched; other paths may be dirty), so no conflict copy is
  expected; a conflict copy or any WARNING in the daemon's log fails the example.

The namespace is tiny (names ``a b f g``, depth <= 2) so that renames and
overwrites collide often.  One gateway (one mount) per example.

Examples: ``CLOUDGW_MODEL_EXAMPLES`` (default 8, CI), steps per example:
``CLOUDGW_MODEL_STEPS`` (default 40).  ``make model-long`` runs 2000 examples.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.mount.gateway import Gateway

pytestmark = [pytest.mark.mount, pytest.mark.slow]

NAMES = ("a", "b", "f", "g")
MAX_DEPTH = 2
EXAMPLES = int(os.environ.get("CLOUDGW_MODEL_EXAMPLES", "8"))
# Known, self-healing upload-ordering WARNINGs (a file replaced by a directory of the same
# name, children uploaded before the old file left the remote; see the regression section
# at the end).  Tolerated in CI so the suite is not flaky; CLOUDGW_MODEL_STRICT=1 (make
# model-long) fails on them.  Correctness is still checked: every ``sync`` compares the
# remote with the model exactly.
STRICT = os.environ.get("CLOUDGW_MODEL_STRICT") == "1"
KNOWN_WARNINGS = [r"upload of \S+ failed \(will retry\): (mkdir|write) '[^']+': (Not a directory|File exists)"]
STEPS = int(os.environ.get("CLOUDGW_MODEL_STEPS", "40"))

data_st = st.binary(min_size=0, max_size=300)
# a relative path in the namespace: 1..MAX_DEPTH components
path_st = st.lists(st.sampled_from(NAMES), min_size=1, max_size=MAX_DEPTH).map("/".join)


def parent(p: str) -> str:
    return p.rpartition("/")[0]


def ancestors(p: str) -> list[str]:
    parts = p.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def snapshot(root: Path, skip_tmp: bool = False) -> tuple[dict[str, bytes], set[str]]:
    files: dict[str, bytes] = {}
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        for d in dirnames:
            dirs.add(prefix + d)
        for f in filenames:
            if skip_tmp and f.startswith(".cloudgw-tmp-"):
                continue
            files[prefix + f] = (Path(dirpath) / f).read_bytes()
    return files, dirs


class MountModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="cloudgw-model-"))
        self.remote = self.tmp / "cloud"
        self.remote.mkdir()
        self.gw = Gateway(f"file://{self.remote}", self.tmp / "mnt", self.tmp / "cache",
                          expected_warnings=[] if STRICT else list(KNOWN_WARNINGS))
        self.gw.mount()
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()
        self.touched: set[str] = set()  # paths changed locally since the last sync
        self.ok_ops = 0

    # ---- model helpers -------------------------------------------------
    def m(self, p: str) -> Path:
        return self.gw.mnt / p

    def is_dir(self, p: str) -> bool:
        return p == "" or p in self.dirs

    def exists(self, p: str) -> bool:
        return p in self.files or self.is_dir(p)

    def under(self, p: str) -> list[str]:
        return [x for x in (*self.files, *self.dirs) if x.startswith(p + "/")]

    def touch(self, *paths: str) -> None:
        for p in paths:
            self.touched.add(p)
            self.touched.update(self.under(p))

    def expect(self, fn, ok_errnos: set[int] | None) -> bool:  # noqa: ANN001
        """Run ``fn``; ok_errnos None: must succeed; else must fail with one of them."""
        if ok_errnos is None:
            self.ok_ops += 1
        try:
            fn()
        except OSError as e:
            assert ok_errnos is not None, f"unexpected {e!r}"
            assert e.errno in ok_errnos, f"{e!r}, expected one of {sorted(errno.errorcode[x] for x in ok_errnos)}"
            return False
        assert ok_errnos is None, f"succeeded, expected one of {sorted(errno.errorcode[x] for x in ok_errnos)}"
        return True

    def draw(self, d: st.DataObject, kinds: str) -> str:
        """A path: half the time one of ``kinds`` (existing file/dir, or a new name in an existing dir), else any."""
        cands: list[str] = []
        if "file" in kinds:
            cands += sorted(self.files)
        if "dir" in kinds:
            cands += sorted(self.dirs)
        if "new" in kinds:
            cands += [f"{par}/{n}" if par else n for par in ["", *sorted(self.dirs)] if par.count("/") < MAX_DEPTH - 1
                      for n in NAMES if not self.exists(f"{par}/{n}" if par else n)]
        return d.draw(st.one_of(st.sampled_from(cands), path_st) if cands else path_st)

    def path_error(self, p: str) -> set[int] | None:
        """The errno for resolving the parent of ``p``, or None if the parent is a directory."""
        for a in ancestors(p):
            if a in self.files:
                return {errno.ENOTDIR}
            if a not in self.dirs:
                return {errno.ENOENT}
        return None

    # ---- rules: the user on the mount ------------------------------------
    @initialize(data=data_st)
    def seed_tree(self, data: bytes) -> None:
        """Start every example from a small tree (short examples still exercise something)."""
        os.mkdir(self.m("a"))
        self.m("f").write_bytes(data)
        self.m("a/g").write_bytes(data[::-1])
        self.dirs.add("a")
        self.files.update({"f": data, "a/g": data[::-1]})
        self.touch("a", "f", "a/g")
        self.ok_ops += 3

    @rule(d=st.data(), data=data_st)
    def write_file(self, d: st.DataObject, data: bytes) -> None:
        p = self.draw(d, "file|new")
        err = self.path_error(p) or ({errno.EISDIR} if self.is_dir(p) else None)
        if self.expect(lambda: self.m(p).write_bytes(data), err):
            self.files[p] = data
            self.touch(p)

    @rule(d=st.data(), data=data_st)
    def append(self, d: st.DataObject, data: bytes) -> None:
        p = self.draw(d, "file|new")
        err = self.path_error(p) or ({errno.EISDIR} if self.is_dir(p) else None)

        def op() -> None:
            with open(self.m(p), "ab") as f:
                f.write(data)
        if self.expect(op, err):
            self.files[p] = self.files.get(p, b"") + data
            self.touch(p)

    @rule(d=st.data(), size=st.integers(0, 400))
    def truncate(self, d: st.DataObject, size: int) -> None:
        p = self.draw(d, "file")
        err = self.path_error(p) or ({errno.EISDIR} if self.is_dir(p) else
                                     {errno.ENOENT} if p not in self.files else None)
        if self.expect(lambda: os.truncate(self.m(p), size), err):
            old = self.files[p]
            self.files[p] = old[:size] + b"\0" * (size - len(old))
            self.touch(p)

    @rule(d=st.data())
    def mkdir(self, d: st.DataObject) -> None:
        p = self.draw(d, "new")
        err = self.path_error(p) or ({errno.EEXIST} if self.exists(p) else None)
        if self.expect(lambda: os.mkdir(self.m(p)), err):
            self.dirs.add(p)
            self.touch(p)

    @rule(d=st.data())
    def rmdir(self, d: st.DataObject) -> None:
        p = self.draw(d, "dir")
        err = self.path_error(p) or ({errno.ENOENT} if not self.exists(p) else
                                     {errno.ENOTDIR} if p in self.files else
                                     {errno.ENOTEMPTY, errno.EEXIST} if self.under(p) else None)
        if self.expect(lambda: os.rmdir(self.m(p)), err):
            self.dirs.discard(p)
            self.touch(p)

    @rule(d=st.data())
    def unlink(self, d: st.DataObject) -> None:
        p = self.draw(d, "file")
        err = self.path_error(p) or ({errno.ENOENT} if not self.exists(p) else
                                     {errno.EISDIR, errno.EPERM} if self.is_dir(p) else None)
        if self.expect(lambda: os.unlink(self.m(p)), err):
            del self.files[p]
            self.touch(p)

    @rule(d=st.data())
    def rename(self, d: st.DataObject) -> None:
        src = self.draw(d, "file|dir")
        dst = self.draw(d, "file|dir|new")
        err = self.path_error(src) or self.path_error(dst)
        if err is None:
            if not self.exists(src):
                err = {errno.ENOENT}
            elif src == dst:
                err = None
            elif self.is_dir(src) and (dst + "/").startswith(src + "/"):
                err = {errno.EINVAL}
            elif src.startswith(dst + "/"):
                err = {errno.ENOTEMPTY}  # the kernel's "target is an ancestor of source" check comes first
            elif src in self.files and self.is_dir(dst):
                err = {errno.EISDIR}
            elif self.is_dir(src) and dst in self.files:
                err = {errno.ENOTDIR}
            elif self.is_dir(src) and self.is_dir(dst) and self.under(dst):
                err = {errno.ENOTEMPTY, errno.EEXIST}
            elif self.is_dir(src) and len(dst.split("/")) + max(
                    [len(x.split("/")) - len(src.split("/")) for x in self.under(src)] or [0]) > MAX_DEPTH:
                return  # would leave the namespace (not an error: just not generated)
        if not self.expect(lambda: os.rename(self.m(src), self.m(dst)), err) or src == dst:
            return
        self.touch(src, dst)
        if src in self.files:
            self.files[dst] = self.files.pop(src)
        else:
            self.dirs.discard(dst)
            moved = self.under(src)
            self.dirs.discard(src)
            self.dirs.add(dst)
            for x in moved:
                y = dst + x[len(src):]
                if x in self.files:
                    self.files[y] = self.files.pop(x)
                else:
                    self.dirs.discard(x)
                    self.dirs.add(y)
        self.touch(dst)

    @rule(d=st.data())
    def read(self, d: st.DataObject) -> None:
        p = self.draw(d, "file")
        if p in self.files:
            assert self.m(p).read_bytes() == self.files[p], p

    # ---- rules: sync, outside changes, remount, crash ---------------------
    def assert_contents(self) -> None:
        files, dirs = snapshot(self.gw.mnt)
        assert dirs == self.dirs
        assert files == self.files

    @rule()
    def sync(self) -> None:
        self.gw.sync()
        files, dirs = snapshot(self.remote, skip_tmp=True)
        assert dirs == self.dirs, "remote dirs differ from the model"
        assert files == self.files, "remote files differ from the model"
        self.touched.clear()
        self.assert_contents()

    def outside_ok(self, p: str) -> bool:
        return p not in self.touched and not any(a in self.touched for a in ancestors(p))

    @rule(d=st.data(), data=data_st)
    def outside_write(self, d: st.DataObject, data: bytes) -> None:
        """Another user writes a file in the remote; only where nothing changed locally since the last sync."""
        p = self.draw(d, "file|new")
        if self.path_error(p) is not None or self.is_dir(p) or not self.outside_ok(p):
            return
        (self.remote / p).write_bytes(data)
        self.files[p] = data
        self.gw.poll()
        self.assert_contents()

    @rule(d=st.data())
    def outside_delete(self, d: st.DataObject) -> None:
        p = self.draw(d, "file")
        if p not in self.files or not self.outside_ok(p):
            return
        (self.remote / p).unlink()
        del self.files[p]
        self.gw.poll()
        self.assert_contents()

    @rule(d=st.data())
    def outside_mkdir(self, d: st.DataObject) -> None:
        p = self.draw(d, "new")
        if self.path_error(p) is not None or self.exists(p) or not self.outside_ok(p):
            return
        (self.remote / p).mkdir()
        self.dirs.add(p)
        self.gw.poll()
        self.assert_contents()

    @rule(d=st.data())
    def outside_rmdir(self, d: st.DataObject) -> None:
        p = self.draw(d, "dir")
        if (p not in self.dirs or self.under(p) or not self.outside_ok(p)
                or any(t.startswith(p + "/") for t in self.touched)):
            return
        (self.remote / p).rmdir()
        self.dirs.discard(p)
        self.gw.poll()
        self.assert_contents()

    @rule()
    def remount(self) -> None:
        self.gw.umount()
        self.gw.mount()
        self.assert_contents()

    @rule()
    def crash(self) -> None:
        self.gw.kill9()
        self.gw.mount()
        self.assert_contents()

    # ---- invariants --------------------------------------------------------
    @invariant()
    def listing_matches(self) -> None:
        seen = set()
        for dirpath, dirnames, filenames in os.walk(self.gw.mnt):
            rel = Path(dirpath).relative_to(self.gw.mnt).as_posix()
            prefix = "" if rel == "." else rel + "/"
            seen.update(prefix + n for n in (*dirnames, *filenames))
        assert seen == set(self.files) | self.dirs

    def teardown(self) -> None:
        event(f"successful ops per example: {'0' if not self.ok_ops else '1-4' if self.ok_ops < 5 else '5-14' if self.ok_ops < 15 else '15+'}")
        try:
            if os.path.ismount(self.gw.mnt):
                self.gw.umount()
        finally:
            self.gw.force_cleanup()
        bad = self.gw.bad_log_lines()
        shutil.rmtree(self.tmp, ignore_errors=True)
        assert not bad, "daemon logged unexpected warnings:\n" + "\n".join(bad[:20])


MountModel.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=False,
    suppress_health_check=list(HealthCheck))
TestMountModel = MountModel.TestCase


# ---- regressions found by the machine ---------------------------------------------
@pytest.mark.parametrize("how", ["unlink", "rename"])
@pytest.mark.parametrize("outside", [False, True], ids=["local-file", "outside-file"])
def test_file_replaced_by_directory_uploads_without_retry_warnings(tmp_path: Path, outside: bool, how: str) -> None:
    """Scenario guard for what MountModel found once: a file ``g`` replaced by a directory ``g``.

    In that run the children's uploads ran while the remote still held the *file* ``g``
    ("upload of g/f failed (will retry): write 'g/f': File exists", "mkdir 'g/b': Not a
    directory"); retries healed it.  Fixed by the uploader's ancestor check (an upload
    under ``g/`` waits while ``g`` is still a file on the remote or tombstoned as one).
    """
    remote = tmp_path / "cloud"
    remote.mkdir()
    gw = Gateway(f"file://{remote}", tmp_path / "mnt", tmp_path / "cache")
    gw.mount()
    try:
        if outside:
            (remote / "g").write_bytes(b"x")
            gw.poll()
        else:
            (gw.mnt / "g").write_bytes(b"x")
            gw.sync()
        if how == "unlink":
            os.unlink(gw.mnt / "g")
        else:
            os.rename(gw.mnt / "g", gw.mnt / "h")
        os.mkdir(gw.mnt / "g")
        (gw.mnt / "g" / "f").write_bytes(b"child")
        os.mkdir(gw.mnt / "g" / "b")
        gw.sync()
        moved = {"h": b"x"} if how == "rename" else {}
        assert snapshot(remote, skip_tmp=True) == ({"g/f": b"child", **moved}, {"g", "g/b"})
        gw.umount()
    finally:
        gw.force_cleanup()
    bad = gw.bad_log_lines()
    assert not bad, "\n".join(bad)
