"""Real programs on the mount (cp, tar, git, sqlite3, rsync), each checked the way a
user would check it, and then on the remote itself after ``sync --wait``: the
cloud must hold exactly the right files with exactly the right bytes."""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.mount.conftest import CORE_BACKENDS, Backend, backend_for
from tests.mount.views import FileView
from tests.mount.util import drop_page_cache, extra_gateway, quick_status, sha256_file, wait_for

pytestmark = pytest.mark.mount


@pytest.fixture(params=CORE_BACKENDS)
def backend(request, tmp_path: Path) -> Backend:  # noqa: ANN001
    """The core cases run on WebDAV (Apache, wsgidav) too."""
    return backend_for(request, tmp_path)

MiB = 1 << 20


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
    return proc.stdout


def download(backend, subdir: str, dest: Path) -> Path:  # noqa: ANN001
    """Copy ``subdir`` of the remote out of the cloud, as another tool would see it."""
    return backend.view.download(subdir, dest)


def remote_sha256(backend, path: str) -> str:  # noqa: ANN001
    return backend.view.sha256(path)


def daemon_peak_rss(gw) -> int:  # noqa: ANN001
    for line in Path(f"/proc/{gw.pid()}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# -- cp of a big file --------------------------------------------------------------------------------


@pytest.mark.slow
def test_cp_big_file(gw, tmp_path: Path):
    """``cp`` of 1 GiB of random data on file://; 256 MiB on S3 (moto keeps objects in
    one spooled buffer and copies the whole object for every request, so 1 GiB there
    costs minutes without testing anything more).  The checksums of the source, of the
    file read back through the mount with a cold page cache, and of the remote object
    must agree; the daemon's peak memory stays far below the file size."""
    size = 1024 * MiB if gw.backend.name == "file" else 256 * MiB
    src = tmp_path / "big.src"
    with open(src, "wb") as out:
        subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=out, check=True)
    want = sha256_file(src)

    run("cp", src, gw.mnt / "big.bin")
    assert os.stat(gw.mnt / "big.bin").st_size == size
    drop_page_cache()
    assert sha256_file(gw.mnt / "big.bin") == want
    gw.sync(timeout=600)
    assert gw.backend.view.files() == {"big.bin": size}
    assert remote_sha256(gw.backend, "big.bin") == want
    assert daemon_peak_rss(gw) < 200 * MiB

    if gw.backend.name == "file":  # a second gateway with an empty cache streams it from the remote
        with extra_gateway(gw.backend, tmp_path, "--read-only", name="fresh") as fresh:
            drop_page_cache()
            assert sha256_file(fresh.mnt / "big.bin") == want
            assert daemon_peak_rss(fresh) < 200 * MiB

    src.unlink()
    os.unlink(gw.mnt / "big.bin")
    gw.sync()
    assert gw.backend.view.files() == {}


# -- tar x of many small files --------------------------------------------------------------------------


def _small_tree(root: Path, count: int = 2000) -> dict[str, bytes]:
    rng = random.Random(2024)
    modes = [0o644, 0o600, 0o755, 0o640, 0o444]
    files = {}
    for i in range(count):
        rel = f"d{i % 21:02d}/s{(i // 21) % 10}/{'deep/er/' if i % 7 == 0 else ''}f{i:04d}.{'txt' if i % 3 else 'bin'}"
        data = rng.randbytes(rng.randint(0, 4096)) if i % 50 else b""
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, modes[i % len(modes)])
        os.utime(path, (1_500_000_000 + i, 1_500_000_000 + i))
        files[rel] = data
    os.chmod(root / "d03", 0o700)
    os.chmod(root / "d04" / "s1", 0o750)
    return files


def _tree_stats(root: Path) -> dict[str, tuple[int, int, int]]:
    """relative path -> (file type, permission bits, mtime in whole seconds) of everything below root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            out[p.relative_to(root).as_posix()] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), int(st.st_mtime))
    return out


def test_tar_extract_many_small_files(gw, tmp_path: Path):
    src = tmp_path / "tree"
    files = _small_tree(src)
    archive = tmp_path / "tree.tar"
    run("tar", "cf", archive, "-C", src, ".")
    (gw.mnt / "extracted").mkdir()
    run("tar", "xf", archive, "-C", gw.mnt / "extracted")

    dest = gw.mnt / "extracted"
    assert _tree_stats(dest) == _tree_stats(src)  # names, types, modes and mtimes of files and directories
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data, rel
    run("tar", "df", archive, "-C", dest)  # tar's own comparison agrees

    gw.sync(timeout=300)
    assert gw.backend.view.files() == {f"extracted/{rel}": len(data) for rel, data in files.items()}
    for rel in list(files)[::97]:
        assert gw.backend.view.get(f"extracted/{rel}") == files[rel]


# -- git ---------------------------------------------------------------------------------------------------

_GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def git(repo: Path, *args: str) -> str:
    return run("git", "-C", repo, *args, env=_GIT_ENV)


def _assert_healthy(repo: Path, *extra: str) -> None:
    fsck = subprocess.run(["git", "-C", str(repo), *extra, "fsck", "--full", "--strict", "--no-dangling"],
                          capture_output=True, text=True, env={**os.environ, **_GIT_ENV})
    assert fsck.returncode == 0 and fsck.stdout == "", fsck.stdout + fsck.stderr
    assert git(repo, *extra, "status", "--porcelain", "--untracked-files=all") == ""


def test_git_repository(gw, tmp_path: Path):
    repo = gw.mnt / "repo"
    run("git", "-c", "init.defaultBranch=main", "init", "-q", repo, env=_GIT_ENV)
    rng = random.Random(7)
    (repo / "src" / "lib").mkdir(parents=True)
    (repo / "README.md").write_text("# project\n")
    (repo / "src" / "app.py").write_text("print('hello')\n" * 50)
    (repo / "src" / "lib" / "util.py").write_text("def f():\n    return 1\n")
    (repo / "blob.bin").write_bytes(rng.randbytes(300_000))
    (repo / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(repo / "run.sh", 0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    assert git(repo, "log", "--format=%s").split() == ["first"]
    _assert_healthy(repo)

    (repo / "README.md").write_text("# project\n\nnow with docs\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "guide.md").write_text("read me\n")
    git(repo, "rm", "-q", "blob.bin")
    git(repo, "mv", "src/lib/util.py", "src/lib/helpers.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "second")
    git(repo, "gc", "--quiet")  # packs objects, deletes loose ones, packs refs
    assert git(repo, "log", "--format=%s").split() == ["second", "first"]
    _assert_healthy(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    tree = sorted(git(repo, "ls-files").split())
    assert tree == ["README.md", "docs/guide.md", "run.sh", "src/app.py", "src/lib/helpers.py"]

    gw.sync()
    gw.umount()
    gw.mount()
    _assert_healthy(repo)
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "log", "--format=%s").split() == ["second", "first"]
    assert os.stat(repo / "run.sh").st_mode & 0o111

    # the cloud holds a working repository too: copied out by another tool it checks out clean
    copy = download(gw.backend, "repo", tmp_path / "copy")
    lenient = ("-c", "core.fileMode=false") if gw.backend.name != "file" else ()  # S3 keeps modes in metadata only
    _assert_healthy(copy, *lenient)
    assert git(copy, "rev-parse", "HEAD").strip() == head
    assert (copy / "README.md").read_text() == "# project\n\nnow with docs\n"


# -- sqlite3 ------------------------------------------------------------------------------------------------


def sqlite(db: Path, sql: str) -> str:
    proc = subprocess.run(["sqlite3", "-bail", str(db)], input=sql, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout.strip()


_ROWS_PER_TX, _TXS = 500, 10


def _expected_summary() -> str:
    ids = [i for i in range(1, _ROWS_PER_TX * _TXS + 1) if i % 10]
    value = sum(i * 1.5 * (2 if i % 3 == 0 else 1) for i in ids)
    return f"{len(ids)}|{value:.1f}|{200 * len(ids)}"


_SUMMARY = "SELECT count(*), printf('%.1f', sum(value)), sum(length(payload)) FROM t;"


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_sqlite_database(gw, tmp_path: Path, journal: str):
    (gw.mnt / "app").mkdir()
    db = gw.mnt / "app" / "data.db"
    assert sqlite(db, f"PRAGMA journal_mode={journal};\n"
                      "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value REAL, payload TEXT);\n"
                      "CREATE INDEX t_name ON t(name);") == journal
    for tx in range(_TXS):  # one process, one transaction each: open, lock, write, commit, close
        first = tx * _ROWS_PER_TX + 1
        sqlite(db, "BEGIN;\n"
                   f"WITH RECURSIVE c(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM c WHERE x < {first + _ROWS_PER_TX - 1})\n"
                   "INSERT INTO t(id, name, value, payload) SELECT x, 'name-' || x, x * 1.5, printf('%0200d', x) FROM c;\n"
                   "COMMIT;")
    sqlite(db, "BEGIN; UPDATE t SET value = value * 2 WHERE id % 3 = 0; DELETE FROM t WHERE id % 10 = 0; COMMIT;\n"
               "VACUUM;")
    assert sqlite(db, "PRAGMA integrity_check;") == "ok"
    assert sqlite(db, _SUMMARY) == _expected_summary()
    assert sorted(os.listdir(gw.mnt / "app")) == ["data.db"]  # the journal / WAL is gone

    gw.sync()
    size = os.stat(db).st_size
    assert gw.backend.view.files() == {"app/data.db": size}
    copy = tmp_path / "copy.db"
    copy.write_bytes(gw.backend.view.get("app/data.db"))
    assert sqlite(copy, "PRAGMA integrity_check;") == "ok"
    assert sqlite(copy, _SUMMARY) == _expected_summary()


# -- rsync ---------------------------------------------------------------------------------------------------


def _rsync_tree(root: Path) -> None:
    rng = random.Random(99)
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "private").mkdir()
    (root / "data" / "nested" / "deep").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "bin" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "run.sh", 0o755)
    (root / "etc" / "conf.ini").write_text("[a]\nb = 1\n")
    (root / "private" / "secret.txt").write_text("s3cr3t")
    os.chmod(root / "private" / "secret.txt", 0o600)
    os.chmod(root / "private", 0o700)
    (root / "empty.txt").write_bytes(b"")
    for i in range(20):
        p = root / "data" / "nested" / "deep" / f"file{i}.dat"
        p.write_bytes(rng.randbytes(rng.randint(1, 100_000)))
        os.chmod(p, 0o640 if i % 2 else 0o644)
    os.symlink("etc/conf.ini", root / "link")
    os.symlink("does/not/exist", root / "dangling")
    # distinct mtimes with sub-second parts, set children first (writing a child changes its dir's mtime)
    paths = sorted((p for p in root.rglob("*")), key=lambda p: -len(p.parts))
    for n, p in enumerate(paths):
        t = 1_400_000_000_123_456_789 + n * 1_000_000_007
        os.utime(p, ns=(t, t), follow_symlinks=False)
    os.utime(root, ns=(1_400_000_000_000_000_000,) * 2)


def _full_stats(root: Path) -> dict[str, tuple]:
    out = {}
    for p in [root, *root.rglob("*")]:
        st = os.lstat(p)
        rel = p.relative_to(root).as_posix()
        link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
        size = None if stat.S_ISDIR(st.st_mode) else st.st_size  # a directory's size means nothing
        out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_mtime_ns, size, link)
    return out


def test_rsync_round_trip(gw, tmp_path: Path):
    src, out = tmp_path / "src", tmp_path / "out"
    _rsync_tree(src)
    dest = gw.mnt / "tree"
    os.setxattr(src / "etc" / "conf.ini", "user.origin", b"backup test")
    run("rsync", "-aX", f"{src}/", f"{dest}/")
    run("rsync", "-aX", f"{dest}/", f"{out}/")  # out of a tree with symlinks: exit 0 (was 23)
    copied = {p.relative_to(out).as_posix(): os.listxattr(p, follow_symlinks=False) for p in out.rglob("*")}
    assert copied["etc/conf.ini"] == ["user.origin"]  # the user's own attribute, and only it:
    assert not [rel for rel, names in copied.items() if rel != "etc/conf.ini" and names]  # no cloudgw state
    assert os.getxattr(dest / "etc" / "conf.ini", "user.cloudgw.state") in (b"dirty", b"clean")  # still by name

    assert run("diff", "-r", "--no-dereference", src, out) == ""
    assert _full_stats(out) == _full_stats(src)
    assert _full_stats(dest) == _full_stats(src)
    # rsync itself sees nothing to do in either direction
    assert run("rsync", "-a", "--dry-run", "--itemize-changes", f"{src}/", f"{dest}/") == ""
    assert run("rsync", "-a", "--dry-run", "--itemize-changes", f"{dest}/", f"{out}/") == ""

    gw.sync()
    regular = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file() and not p.is_symlink()}
    links = {"link": "etc/conf.ini", "dangling": "does/not/exist"}
    want = {f"tree/{rel}": len(data) for rel, data in regular.items()}
    if gw.backend.name != "file":  # S3 holds a symlink as an object "NAME.cloudgw-symlink" with the target
        want |= {f"tree/{name}.cloudgw-symlink": len(target) for name, target in links.items()}
    assert gw.backend.view.files() == want
    for rel, data in regular.items():
        assert gw.backend.view.get(f"tree/{rel}") == data
    if gw.backend.name == "file":
        assert {n: os.readlink(gw.backend.view.root / "tree" / n) for n in links} == links
    else:
        assert {n: gw.backend.view.get(f"tree/{n}.cloudgw-symlink").decode() for n in links} == links


# -- found with the programs above ------------------------------------------------------------------------


def test_deleting_a_file_during_its_upload_leaves_other_open_files_alone(s3_gw, tmp_path: Path):
    """What ``git gc`` does: a file is deleted while it is being uploaded, while other files
    are open and being written.  The deleted file's cache descriptor must not be closed
    under the running upload, and never a second time (the number by then belongs to
    another open file: its writes would fail, or land in the wrong file)."""
    gw = s3_gw
    rng = random.Random(5)
    big = gw.mnt / "big.pack"
    with open(big, "wb") as f:
        for _ in range(128):
            f.write(rng.randbytes(MiB))
    wait_for(lambda: quick_status(gw)["uploading_files"] == 1, interval=0.01)
    cache_files = list((gw.cache_dir / "cache" / "data").iterdir())  # white box: one data file per inode
    big_cache = max(cache_files, key=lambda p: p.stat().st_size)
    os.unlink(big)
    wait_for(lambda: not big_cache.exists(), interval=0.01)  # the cache let go of it; the upload runs on
    want = {f"other{i}.bin": b"" for i in range(4)}
    others = {name: open(gw.mnt / name, "wb") for name in want}  # their cache files get the numbers just freed
    try:
        while quick_status(gw)["pending"]:  # until the deleted file's upload has ended
            for name, f in others.items():
                chunk = rng.randbytes(64 * 1024)
                f.write(chunk)
                f.flush()
                want[name] += chunk
        for name, f in others.items():
            chunk = rng.randbytes(64 * 1024)
            f.write(chunk)
            want[name] += chunk
    finally:
        for f in others.values():
            f.close()
    drop_page_cache()
    for name, data in want.items():
        assert (gw.mnt / name).read_bytes() == data
    gw.sync()
    assert gw.backend.view.files() == {name: len(data) for name, data in want.items()}
    for name, data in want.items():
        assert gw.backend.view.get(name) == data


def test_file_looked_up_again_during_its_upload_is_deleted_on_the_remote(s3_gw):
    """What ``cp big; drop caches; sha256sum big; rm big`` does: the kernel forgets the
    inode while it is being uploaded and looks it up again (a second in-memory copy of
    the inode, which never learns that the upload finished).  Deleting the file must
    still delete it on the remote, and the next poll must not bring it back."""
    gw = s3_gw
    data = random.Random(3).randbytes(64 * MiB)
    (gw.mnt / "f.bin").write_bytes(data)
    wait_for(lambda: quick_status(gw)["uploading_files"] == 1, interval=0.01)
    drop_page_cache()  # the kernel sends FORGET for the closed, unused file
    assert os.stat(gw.mnt / "f.bin").st_size == len(data)  # LOOKUP again while the upload runs
    wait_for(lambda: quick_status(gw)["pending"] == 0, timeout=60)
    assert gw.backend.view.files() == {"f.bin": len(data)}
    os.unlink(gw.mnt / "f.bin")
    gw.sync()
    assert gw.backend.view.files() == {}
    gw.poll()
    assert os.listdir(gw.mnt) == []
