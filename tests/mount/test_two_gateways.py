"""Two gateways on one bucket, plus an outside client writing the remote directly.

Each gateway runs as a user runs it (its own daemon, mount point and cache).  The
scenario tests give both a write-back delay and poll interval of an hour, so the test
alone decides when each side uploads (``sync --wait``) and hears of the others
(``poll``): "before any of them has heard of the others' edit" is then a fact, not a
race.  The loop test runs with the short defaults and lets the daemons race.

What is checked is what a user would check: the same tree, byte for byte, in both
mounts and on the remote, and every version that lost a race still there as a
``NAME.conflict-YYYYmmdd-HHMMSS[-N].EXT`` copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.mount.gateway import Gateway
from tests.mount.util import extra_gateway, wait_for

pytestmark = pytest.mark.mount

CONFLICT = re.compile(r"^(?P<stem>.*)\.conflict-\d{8}-\d{6}(?:-\d+)?(?P<ext>\.[^./]*)?$")
EXPECTED = [
    r"conflict: .* changed on the remote while edited here",  # the point of these tests
    r"not deleting .* on the remote: it was changed elsewhere",  # delete vs edit: the edit stays
]
MANUAL = ("--write-back", "3600", "--poll-interval", "3600")


@contextlib.contextmanager
def two_gateways(backend, tmp_path: Path, *args: str) -> Iterator[tuple[Gateway, Gateway]]:  # noqa: ANN001
    with extra_gateway(backend, tmp_path, *args, name="a") as a, extra_gateway(backend, tmp_path, *args, name="b") as b:
        for gw in (a, b):
            gw.expected_warnings += EXPECTED
            os.listdir(gw.mnt)  # the root is listed: polls bring new remote entries into it
        yield a, b


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def mount_tree(gw: Gateway) -> dict[str, str]:
    """relative path -> sha256 of every file, read through the mount."""
    out = {}
    for root, _dirs, files in os.walk(gw.mnt):
        for name in files:
            p = Path(root) / name
            out[p.relative_to(gw.mnt).as_posix()] = digest(p.read_bytes())
    return out


def remote_tree(view) -> dict[str, str]:  # noqa: ANN001
    return {path: digest(view.get(path)) for path in view.files()}


def converge(a: Gateway, b: Gateway, rounds: int = 6) -> dict[str, str]:
    """Upload and poll on both sides until both mounts show what the remote holds."""
    view = a.backend.view
    seen = None
    for _ in range(rounds):
        a.sync()
        b.sync()
        a.poll()
        b.poll()
        seen = (mount_tree(a), mount_tree(b), remote_tree(view))
        if seen[0] == seen[1] == seen[2]:
            return seen[2]
    raise AssertionError(f"no convergence after {rounds} rounds:\n a={seen[0]}\n b={seen[1]}\n remote={seen[2]}")


def versions_of(tree: dict[str, str], name: str) -> list[str]:
    """Digests held by ``name`` and its conflict copies."""
    stem, ext = os.path.splitext(name)
    out = [tree[name]] if name in tree else []
    for path, sha in tree.items():
        m = CONFLICT.match(path)
        if m and m["stem"] == stem and (m["ext"] or "") == ext:
            out.append(sha)
    return out


def conflict_copies(tree: dict[str, str]) -> list[str]:
    return sorted(p for p in tree if CONFLICT.match(p))


def seed(a: Gateway, b: Gateway, files: dict[str, bytes]) -> None:
    """Files written on ``a``, uploaded, and read (so cached) on ``b``."""
    for name, data in files.items():
        (a.mnt / name).write_bytes(data)
    a.sync()
    b.poll()
    for name, data in files.items():
        assert (b.mnt / name).read_bytes() == data
        assert (a.mnt / name).read_bytes() == data


# -- (a) the same file edited in both mounts and outside ---------------------------------------------


def test_three_concurrent_edits_keep_every_version(backend, tmp_path: Path):
    with two_gateways(backend, tmp_path, *MANUAL) as (a, b):
        view = backend.view
        seed(a, b, {"doc.txt": b"v0 " * 1000, "other.bin": b"unrelated"})
        # each edits its cached copy without having heard of the others
        versions = {"a": b"edited in mount a\n" * 300, "b": b"edited in mount b\n", "outside": b"edited outside\n" * 7}
        (a.mnt / "doc.txt").write_bytes(versions["a"])
        with open(b.mnt / "doc.txt", "r+b") as f:  # an in-place edit, not a new file
            f.write(versions["b"])
            f.truncate()
        view.put("doc.txt", versions["outside"])
        final = converge(a, b)
        kept = versions_of(final, "doc.txt")
        assert sorted(kept) == sorted(digest(v) for v in versions.values()), final
        # the file holds the version written last (b's upload came last), the others are copies
        assert final["doc.txt"] == digest(versions["b"])
        assert len(conflict_copies(final)) == 2  # two losers, two copies (within one second, too)
        assert final["other.bin"] == digest(b"unrelated")
        assert a.status()["conflicts"] + b.status()["conflicts"] == 2


# -- (b) the same new name created in both mounts --------------------------------------------------


def test_same_new_name_created_in_both_mounts(backend, tmp_path: Path):
    with two_gateways(backend, tmp_path, *MANUAL) as (a, b):
        (a.mnt / "sub").mkdir()
        (b.mnt / "sub").mkdir()
        (a.mnt / "sub" / "new.txt").write_bytes(b"made in a")
        (b.mnt / "sub" / "new.txt").write_bytes(b"made in b, longer")
        (a.mnt / "only-a").write_bytes(b"a")
        (b.mnt / "only-b").write_bytes(b"b")
        final = converge(a, b)
        assert sorted(versions_of(final, "sub/new.txt")) == sorted([digest(b"made in a"), digest(b"made in b, longer")])
        assert final["only-a"] == digest(b"a") and final["only-b"] == digest(b"b")
        assert len(conflict_copies(final)) == 1


# -- (c) delete in one mount, edit in the other ----------------------------------------------------


def test_delete_in_one_mount_while_the_other_edits_keeps_the_edit(backend, tmp_path: Path):
    with two_gateways(backend, tmp_path, *MANUAL) as (a, b):
        seed(a, b, {"x.txt": b"x0", "y.txt": b"y0"})
        # x: deleted in a (deletes go out at once), then edited in b, which has not heard of it
        (a.mnt / "x.txt").unlink()
        wait_for(lambda: "x.txt" not in backend.view.files())
        (b.mnt / "x.txt").write_bytes(b"x edited in b")
        # y: edited in a and uploaded, then deleted in b, which has not heard of the edit
        (a.mnt / "y.txt").write_bytes(b"y edited in a")
        a.sync()
        (b.mnt / "y.txt").unlink()
        wait_for(lambda: "not deleting y.txt" in b.log())
        final = converge(a, b)
        assert final == {"x.txt": digest(b"x edited in b"), "y.txt": digest(b"y edited in a")}


# -- (d) rename in one mount, edit in the other ----------------------------------------------------


def test_rename_in_one_mount_while_the_other_edits_keeps_the_edit(backend, tmp_path: Path):
    with two_gateways(backend, tmp_path, *MANUAL) as (a, b):
        seed(a, b, {"p.txt": b"p0", "q.txt": b"q0"})
        # p: renamed in a, edited in b;  q: renamed in b, edited in a (a uploads first)
        os.rename(a.mnt / "p.txt", a.mnt / "p-renamed.txt")
        (b.mnt / "p.txt").write_bytes(b"p edited in b")
        os.rename(b.mnt / "q.txt", b.mnt / "q-renamed.txt")
        (a.mnt / "q.txt").write_bytes(b"q edited in a")
        final = converge(a, b)
        # p: the move went first and took p0 along; b's edit comes back under the old name
        assert final.get("p-renamed.txt") == digest(b"p0") and final.get("p.txt") == digest(b"p edited in b")
        # q: the edit went first; the move takes the edited version to the new name
        assert final.get("q-renamed.txt") == digest(b"q edited in a") and "q.txt" not in final
        assert not conflict_copies(final)


# -- (e) both mounts and the outside client edit many files for a while ----------------------------


def test_many_files_edited_everywhere_for_a_while_converge(file_backend, tmp_path: Path):
    _edited_everywhere_for_a_while(file_backend, tmp_path)


def test_many_files_edited_everywhere_for_a_while_converge_on_s3(s3_backend, tmp_path: Path):
    """Quarantined 2026-12-05..06 after 2 failures in 5 CI runs: moto's conditional PUT was
    not atomic (tests/servers/moto_atomic.py), and an upload could commit a torn mix of two
    versions (data_version moved after the bytes: ``DataOps.write``).  ``make stress`` loops it."""
    _edited_everywhere_for_a_while(s3_backend, tmp_path)


def _edited_everywhere_for_a_while(backend, tmp_path: Path) -> None:  # noqa: ANN001
    names = [f"d{i % 3}/f{i}.txt" for i in range(9)]
    with two_gateways(backend, tmp_path) as (a, b):  # short write-back and poll: the daemons race
        for gw in (a, b):  # an upload that keeps losing the race is retried by the queue, with a warning
            gw.expected_warnings.append(r"upload of .* failed \(will retry\): .*: the remote keeps changing")
        view = backend.view
        for d in {n.split("/")[0] for n in names}:
            (a.mnt / d).mkdir()
        for n in names:
            (a.mnt / n).write_bytes(f"{n} v0\n".encode())
        a.sync()
        b.poll()
        written: dict[str, list[bytes]] = {n: [f"{n} v0\n".encode()] for n in names}
        lock = threading.Lock()
        stop = time.monotonic() + 5

        def writer(who: str, seed_: int) -> None:
            rng = random.Random(seed_)
            i = 0
            while time.monotonic() < stop:
                n = rng.choice(names)
                data = f"{n} by {who} #{i}\n".encode() * rng.randint(1, 2000)
                i += 1
                with lock:  # the order of writes per file is the order of this list
                    if who == "outside":
                        view.put(n, data)
                    else:
                        gw = a if who == "a" else b
                        if rng.random() < 0.5:
                            (gw.mnt / n).write_bytes(data)
                        else:
                            with open(gw.mnt / n, "r+b") as f:
                                f.write(data)
                                f.truncate()
                    written[n].append(data)
                time.sleep(rng.uniform(0, 0.05))

        threads = [threading.Thread(target=writer, args=(who, k)) for k, who in enumerate(("a", "b", "outside"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = converge(a, b, rounds=10)
        all_versions = {digest(d) for versions in written.values() for d in versions}
        for n in names:
            kept = versions_of(final, n)
            assert n in final, f"{n} is gone"
            assert digest(written[n][-1]) in kept, f"{n}: the last version written is lost"
            assert set(kept) <= {digest(d) for d in written[n]}, f"{n}: content that was never written"
        assert set(final.values()) <= all_versions
        assert set(final) - set(names) == set(conflict_copies(final))
