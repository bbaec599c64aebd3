"""Bad input through the real mount: each case gets correct behaviour or a clear
error, and the gateway stays up.

What a user checks: the bytes on the mount, the bytes on the remote after
``sync --wait`` (and after a remount with a fresh cache dir, i.e. read back from
the remote), the errno a program sees, and that the daemon still serves requests
afterwards.  Malformed config values are in ``test_cli.py``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sqlite3
import threading
import unicodedata
from pathlib import Path

import pytest

from tests.mount.gateway import run_cli

pytestmark = pytest.mark.mount

GiB = 1 << 30
MiB = 1 << 20


def still_serving(gw) -> None:  # noqa: ANN001
    """The daemon answers a create + read + stat after the bad input."""
    probe = gw.mnt / ".alive-probe"
    probe.write_bytes(b"alive")
    assert probe.read_bytes() == b"alive"
    os.unlink(probe)
    assert os.path.ismount(gw.mnt)


def remount_fresh(gw, tmp_path: Path, name: str = "cache-fresh") -> None:  # noqa: ANN001
    """Unmount and mount again on a new, empty cache dir: everything is read back from the remote."""
    gw.umount()
    bad = gw.bad_log_lines()
    assert not bad, "daemon logged unexpected warnings:\n" + "\n".join(bad[:20])
    gw.cache_dir = tmp_path / name
    gw.mount()


def errno_of(fn, *args) -> int:  # noqa: ANN001
    with pytest.raises(OSError) as exc:
        fn(*args)
    return exc.value.errno


# -- names -------------------------------------------------------------------------------------

NFC = unicodedata.normalize("NFC", "café-é")
NFD = unicodedata.normalize("NFD", "café-é")
SPECIAL_NAMES = [
    "with space", " leading and trailing ", "single'quote", 'double"quote', "back\\slash",
    "100%", "%20literal", "a%2Fb", "plus+sign", "#hash", "what?", "star*", "co:lon", "pi|pe",
    "<angle>", "tab\there", "new\nline", "emoji-😀🎉", "中文文件名", "日本語ファイル", "-leading-dash",
    "amp&er=sand;", "~tilde", "...dots", "[brackets]{braces}", "$dollar`tick`", NFC, NFD,
]


def test_special_and_non_ascii_names_round_trip(gw, tmp_path: Path):
    assert NFC != NFD and NFC.encode() != NFD.encode()
    view = gw.backend.view
    # moto's HTTP routing answers 404 to any key holding a newline (real S3 takes them)
    names = [n for n in SPECIAL_NAMES if "\n" not in n] if gw.backend.name != "file" else SPECIAL_NAMES
    newline_name = "renamed\n?*" if gw.backend.name == "file" else "renamed ?*"
    d = gw.mnt / "dir with ?*:|<> 😀"
    d.mkdir()
    for i, name in enumerate(names):
        (gw.mnt / name).write_bytes(f"top {i}".encode())
        (d / name).write_bytes(f"sub {i}".encode())
    assert sorted(os.listdir(gw.mnt)) == sorted([*names, d.name])
    assert (gw.mnt / NFC).read_bytes() != (gw.mnt / NFD).read_bytes()  # two files
    gw.sync()
    files = view.files()
    for i, name in enumerate(names):
        assert files.get(name) == len(f"top {i}"), (name, sorted(files))
        assert view.get(name) == f"top {i}".encode()
        assert view.get(f"{d.name}/{name}") == f"sub {i}".encode()
    assert len(files) == 2 * len(names), sorted(files)
    remount_fresh(gw, tmp_path)
    assert sorted(os.listdir(gw.mnt)) == sorted([*names, d.name])
    assert sorted(os.listdir(d)) == sorted(names)
    for i, name in enumerate(names):
        assert (gw.mnt / name).read_bytes() == f"top {i}".encode(), name
        assert (d / name).read_bytes() == f"sub {i}".encode(), name
    # renames keep working with such names, and the remote follows
    os.rename(gw.mnt / NFD, gw.mnt / newline_name)
    gw.sync()
    assert view.get(newline_name) == f"top {names.index(NFD)}".encode()
    assert view.get(NFC) == f"top {names.index(NFC)}".encode()
    assert NFD not in view.files()
    still_serving(gw)


def test_name_length_limits(gw, tmp_path: Path):
    view = gw.backend.view
    ascii255, cjk255 = "a" * 255, "中" * 85  # 85 * 3 = 255 bytes
    assert len(cjk255.encode()) == 255
    (gw.mnt / ascii255).write_bytes(b"ascii")
    (gw.mnt / cjk255).write_bytes(b"cjk")
    (gw.mnt / ("d" * 255)).mkdir()
    (gw.mnt / ("d" * 255) / "inner").write_bytes(b"inner")
    too_long = "b" * 256
    assert errno_of(open, gw.mnt / too_long, "wb") == errno.ENAMETOOLONG
    assert errno_of(open, gw.mnt / ("中" * 85 + "x"), "wb") == errno.ENAMETOOLONG
    assert errno_of(os.mkdir, gw.mnt / too_long) == errno.ENAMETOOLONG
    assert errno_of(os.symlink, "target", gw.mnt / too_long) == errno.ENAMETOOLONG
    assert errno_of(os.rename, gw.mnt / ascii255, gw.mnt / too_long) == errno.ENAMETOOLONG
    assert errno_of(os.link, gw.mnt / ascii255, gw.mnt / too_long) in (errno.ENAMETOOLONG, errno.EPERM,
                                                                       errno.ENOSYS, errno.EOPNOTSUPP)
    assert errno_of(os.stat, gw.mnt / too_long) == errno.ENAMETOOLONG
    assert sorted(os.listdir(gw.mnt)) == sorted([ascii255, cjk255, "d" * 255])
    gw.sync()
    assert view.get(ascii255) == b"ascii" and view.get(cjk255) == b"cjk"
    assert view.get(f"{'d' * 255}/inner") == b"inner"
    remount_fresh(gw, tmp_path)
    assert (gw.mnt / ascii255).read_bytes() == b"ascii" and (gw.mnt / cjk255).read_bytes() == b"cjk"
    assert (gw.mnt / ("d" * 255) / "inner").read_bytes() == b"inner"
    still_serving(gw)


def test_very_deep_path(gw, tmp_path: Path):
    view = gw.backend.view
    parts = [f"level{i:02d}" for i in range(60)]
    deep = gw.mnt.joinpath(*parts)
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_bytes(b"deep down")
    assert (deep / "bottom.txt").read_bytes() == b"deep down"
    gw.sync()
    rel = "/".join([*parts, "bottom.txt"])
    assert view.get(rel) == b"deep down"
    remount_fresh(gw, tmp_path)
    assert (gw.mnt.joinpath(*parts) / "bottom.txt").read_bytes() == b"deep down"
    still_serving(gw)


def test_s3_key_longer_than_1024_bytes(s3_gw, tmp_path: Path):
    """S3 keys hold at most 1024 bytes.  A file whose remote key would be longer is
    kept locally (no data loss, readable on the mount), its upload fails with a
    clear log line, and everything else keeps syncing."""
    gw = s3_gw
    view = gw.backend.view
    parts = ["x" * 250] * 4 + ["y" * 30]  # 4*251 + 31 = 1035 bytes (+ the "data/" prefix)
    long_dir = gw.mnt.joinpath(*parts)
    long_dir.mkdir(parents=True)
    (long_dir / "file.bin").write_bytes(b"precious")
    (gw.mnt / "normal.txt").write_bytes(b"normal")
    assert (long_dir / "file.bin").read_bytes() == b"precious"
    gw.expected_warnings += [r"the S3 key would be \d+ bytes, too long"]
    proc = run_cli("sync", str(gw.mnt), "--wait", "--timeout", "5", env=gw.env, check=False, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "2 changes still pending (1 failing)" in proc.stderr, proc.stderr  # the deepest directory;
    # the file in it waits for it
    assert view.get("normal.txt") == b"normal"
    assert (long_dir / "file.bin").read_bytes() == b"precious"
    assert not any(len(("data/" + k).encode()) > 1024 for k in view.files())
    assert any("1024" in line or "too long" in line.lower() for line in gw.log().splitlines()), \
        "no log line says the key is too long"
    still_serving(gw)
    shutil.rmtree(gw.mnt / parts[0])  # nothing stays pending
    gw.sync()
    assert view.files() == {"normal.txt": 6}


# -- sizes -------------------------------------------------------------------------------------


def test_zero_byte_files(gw, tmp_path: Path):
    view = gw.backend.view
    (gw.mnt / "empty").write_bytes(b"")
    (gw.mnt / "shrunk").write_bytes(b"was not empty")
    gw.sync()
    os.truncate(gw.mnt / "shrunk", 0)
    with open(gw.mnt / "opened-closed", "wb"):
        pass
    assert (gw.mnt / "empty").read_bytes() == b"" and os.stat(gw.mnt / "shrunk").st_size == 0
    gw.sync()
    assert {k: v for k, v in view.files().items()} == {"empty": 0, "shrunk": 0, "opened-closed": 0}
    remount_fresh(gw, tmp_path)
    for name in ("empty", "shrunk", "opened-closed"):
        assert (gw.mnt / name).read_bytes() == b"" and os.stat(gw.mnt / name).st_size == 0
    still_serving(gw)


def _sparse(path: Path, size: int, tail: bytes) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(size - len(tail))
        f.write(tail)


def _check_sparse(path: Path, size: int, tail: bytes) -> None:
    assert os.stat(path).st_size == size
    with open(path, "rb") as f:
        for off in (0, size // 3, size // 2 + 12345, size - len(tail) - 4096):
            f.seek(off)
            assert f.read(4096) == bytes(4096), off
        f.seek(size - len(tail) - 3)
        assert f.read() == bytes(3) + tail


@pytest.mark.slow  # ~100 s: the upload writes 10 GiB (the file:// remote's copy is not sparse)
def test_sparse_10gib_file_on_file_remote(file_gw, tmp_path: Path):
    gw = file_gw
    size, tail = 10 * GiB, b"the end"
    _sparse(gw.mnt / "sparse.img", size, tail)
    _check_sparse(gw.mnt / "sparse.img", size, tail)
    gw.sync(timeout=300)
    remote = gw.backend.view.root / "sparse.img"
    assert remote.stat().st_size == size
    with open(remote, "rb") as f:
        f.seek(size - len(tail))
        assert f.read() == tail
        f.seek(size // 2)
        assert f.read(MiB) == bytes(MiB)
    os.unlink(gw.mnt / "sparse.img")  # frees the disk early
    gw.sync()
    assert not remote.exists()
    still_serving(gw)


def test_sparse_file_on_s3(s3_gw, tmp_path: Path):
    """96 MiB, not 1 GiB: moto needs more than the 30 s read timeout to complete a
    1 GiB multipart upload (HTTP 500 after the timeout)."""
    gw = s3_gw
    size, tail = 96 * MiB + 5, b"the end"
    _sparse(gw.mnt / "sparse.img", size, tail)
    _check_sparse(gw.mnt / "sparse.img", size, tail)
    gw.sync(timeout=300)
    assert gw.backend.view.files() == {"sparse.img": size}
    remount_fresh(gw, tmp_path)
    _check_sparse(gw.mnt / "sparse.img", size, tail)
    still_serving(gw)


# -- symlinks ----------------------------------------------------------------------------------


def test_symlink_loops_dangling_and_absolute(gw, tmp_path: Path):
    m = gw.mnt
    (m / "real.txt").write_bytes(b"real")
    os.symlink("loop-b", m / "loop-a")
    os.symlink("loop-a", m / "loop-b")
    os.symlink("self", m / "self")
    os.symlink("does/not/exist", m / "dangling")
    os.symlink("/etc/hostname", m / "absolute")
    os.symlink(str(m / "real.txt"), m / "absolute-into-mount")
    os.symlink("../" * 40 + "x", m / "dotdots")

    def check() -> None:
        for name in ("loop-a", "loop-b", "self"):
            assert errno_of(open, m / name, "rb") == errno.ELOOP, name
            assert errno_of(os.stat, m / name) == errno.ELOOP
        assert errno_of(open, m / "loop-a" / "x", "rb") == errno.ELOOP
        assert os.readlink(m / "loop-a") == "loop-b" and os.readlink(m / "self") == "self"
        assert os.readlink(m / "dangling") == "does/not/exist"
        assert errno_of(open, m / "dangling", "rb") == errno.ENOENT
        assert os.path.lexists(m / "dangling") and not os.path.exists(m / "dangling")
        assert os.readlink(m / "absolute") == "/etc/hostname"
        assert (m / "absolute").read_bytes() == Path("/etc/hostname").read_bytes()
        assert os.readlink(m / "absolute-into-mount") == str(m / "real.txt")
        assert os.readlink(m / "dotdots") == "../" * 40 + "x"

    check()
    # creating through a dangling link creates its target (POSIX), inside the mount
    os.symlink("made-through-link", m / "dangling2")
    (m / "dangling2").write_bytes(b"via link")
    assert (m / "made-through-link").read_bytes() == b"via link"
    gw.sync()
    remount_fresh(gw, tmp_path)
    check()
    assert (m / "made-through-link").read_bytes() == b"via link"
    still_serving(gw)


# -- concurrency -------------------------------------------------------------------------------


def test_many_writers_to_one_file(gw, tmp_path: Path):
    path = gw.mnt / "shared.bin"
    writers, span, chunk = 8, 2 * MiB, 64 * 1024
    with open(path, "wb") as f:
        f.truncate(writers * span)
    expected = bytearray(writers * span)
    for w in range(writers):
        for off in range(0, span, chunk):
            expected[w * span + off: w * span + off + chunk] = hashlib.sha256(f"{w}:{off}".encode()).digest() * (chunk // 32)
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            fd = os.open(path, os.O_WRONLY)
            try:
                barrier.wait()
                # interleave: every writer walks its range in a different order
                offs = list(range(0, span, chunk))
                for off in offs[w % 2::2] + offs[(w + 1) % 2::2]:
                    os.pwrite(fd, expected[w * span + off: w * span + off + chunk], w * span + off)
            finally:
                os.close(fd)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    # and a separate process writing the tail at the same time
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            with open(path, "r+b") as f:
                f.seek(writers * span)
                f.write(b"tail from another process")
        finally:
            os._exit(0)
    for t in threads:
        t.join()
    assert os.waitpid(pid, 0)[1] == 0
    assert not errors, errors
    expected += b"tail from another process"
    want = hashlib.sha256(expected).hexdigest()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == want
    gw.sync()
    assert hashlib.sha256(gw.backend.view.get("shared.bin")).hexdigest() == want
    still_serving(gw)


def test_truncate_while_another_fd_reads(gw):
    data = os.urandom(4 * MiB)
    path = gw.mnt / "t.bin"
    path.write_bytes(data)
    gw.sync()
    with open(path, "rb", buffering=0) as reader:
        assert reader.read(MiB) == data[:MiB]
        os.truncate(path, 1000)
        assert reader.read(MiB) == b""  # past the new end
        assert os.pread(reader.fileno(), 4096, 0) == data[:1000]
        assert os.fstat(reader.fileno()).st_size == 1000
        with open(path, "ab") as w:
            w.write(b"grown")
        assert os.pread(reader.fileno(), 4096, 990) == data[990:1000] + b"grown"
    gw.sync()
    assert gw.backend.view.get("t.bin") == data[:1000] + b"grown"
    assert path.read_bytes() == data[:1000] + b"grown"
    still_serving(gw)


def test_rename_over_open_file(gw, tmp_path: Path):
    view = gw.backend.view
    old, new = os.urandom(3 * MiB), os.urandom(2 * MiB + 7)
    (gw.mnt / "target").write_bytes(old)
    gw.sync()
    with open(gw.mnt / "target", "rb", buffering=0) as f:
        assert f.read(4096) == old[:4096]
        (gw.mnt / "incoming").write_bytes(new)
        os.rename(gw.mnt / "incoming", gw.mnt / "target")
        assert (gw.mnt / "target").read_bytes() == new
        gw.sync()
        assert f.read() == old[4096:]  # the open fd keeps the old content
        assert os.pread(f.fileno(), 100, 0) == old[:100]
    assert view.get("target") == new
    assert view.files() == {"target": len(new)}
    still_serving(gw)


def test_rename_over_open_uncached_file(gw, tmp_path: Path):
    """The open fd's data was never fetched and the remote object is replaced under it:
    the fd reads the old content or gets EIO, never the new bytes."""
    view = gw.backend.view
    gw.expected_warnings += [r"remote error: inode \d+: no remote copy to read from"]
    old, new = os.urandom(3 * MiB), os.urandom(3 * MiB)
    (gw.mnt / "target").write_bytes(old)
    gw.sync()
    remount_fresh(gw, tmp_path)
    with open(gw.mnt / "target", "rb", buffering=0) as f:
        (gw.mnt / "incoming").write_bytes(new)
        os.rename(gw.mnt / "incoming", gw.mnt / "target")
        gw.sync()
        assert view.get("target") == new
        try:
            got = f.read()
        except OSError as exc:
            assert exc.errno == errno.EIO
        else:
            assert got == old
    assert (gw.mnt / "target").read_bytes() == new
    still_serving(gw)


# -- corrupted cache dir -----------------------------------------------------------------------


def _fsck(gw) -> tuple[int, str]:  # noqa: ANN001
    proc = run_cli("fsck", str(gw.cache_dir), "--json", env=gw.env, check=False)
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout


def _mount_outcome(gw) -> str:  # noqa: ANN001
    """'refused' (one clear error line, exit != 0) or 'mounted'."""
    proc = run_cli("mount", gw.remote_url, str(gw.mnt), "--cache-dir", str(gw.cache_dir), "--write-back", "0.2",
                   "--poll-interval", "1", "--log-level", "DEBUG", *gw.args, env=gw.env, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cloudgw: error:"), proc.stderr
        assert not os.path.ismount(gw.mnt)
        return "refused"
    assert os.path.ismount(gw.mnt)
    return "mounted"


def test_corrupted_metadata_db(file_gw, tmp_path: Path):
    gw = file_gw
    contents = {f"f{i}.txt": os.urandom(1000 + i) for i in range(50)}
    for name, data in contents.items():
        (gw.mnt / name).write_bytes(data)
    gw.sync()
    gw.umount()
    db = gw.cache_dir / "metadata.db"
    assert not Path(str(db) + "-wal").exists() or Path(str(db) + "-wal").stat().st_size == 0
    page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
    with open(db, "r+b") as f:
        for n in (1, 2, 3):
            f.seek(n * page)
            f.write(b"\xde\xad\xbe\xef" * (page // 4))
    rc, out = _fsck(gw)
    assert rc != 0 and "db-corrupt" in out, out
    gw.expected_warnings += [r"ERROR cloudgw.daemon: the metadata database in .* is damaged"]
    if _mount_outcome(gw) == "mounted":
        for name, data in contents.items():
            assert (gw.mnt / name).read_bytes() == data
        still_serving(gw)


def _cache_file_after_umount(gw, name: str) -> Path:  # noqa: ANN001
    """Unmount and return the cache data file of ``name`` (to damage it as a disk would)."""
    ino = os.stat(gw.mnt / name).st_ino
    gw.umount()
    cache_file = gw.cache_dir / "cache" / "data" / f"{ino:x}"
    assert cache_file.exists()
    return cache_file


def _write_synced(gw, name: str, data: bytes) -> None:  # noqa: ANN001
    (gw.mnt / name).write_bytes(data)
    gw.sync()


def _damage(cache_file: Path, offset: int) -> None:
    with open(cache_file, "r+b") as f:
        f.seek(offset)
        f.write(b"\x00damage\xff" * 50)


def test_corrupted_cache_data_file(file_gw, tmp_path: Path):
    """A clean file's cache data is damaged while unmounted: the mount must not
    serve the damaged bytes (it fetches them again), and fsck must report it."""
    gw = file_gw
    gw.expected_warnings.append(r"cache data of inode \d+ block 1 is damaged")
    data = os.urandom(3 * MiB)
    _write_synced(gw, "f.bin", data)
    _damage(_cache_file_after_umount(gw, "f.bin"), MiB + 100)
    rc, out = _fsck(gw)
    assert rc != 0 and "corrupt" in out, out
    gw.mount()
    assert (gw.mnt / "f.bin").read_bytes() == data  # the damaged block was fetched again
    still_serving(gw)
    gw.umount()
    rc, out = _fsck(gw)
    assert rc == 0, out


def test_damaged_fetched_block_is_fetched_again(file_gw):
    """Data that came from the remote (another client wrote it) and was cached by a
    read: damaged while unmounted, it is fetched again, never served; fsck --repair
    forgets it too."""
    gw = file_gw
    gw.expected_warnings.append(r"cache data of inode \d+ block 2 is damaged")
    data = os.urandom(3 * MiB + 5)
    gw.backend.view.put("outside.bin", data)
    gw.poll()
    assert (gw.mnt / "outside.bin").read_bytes() == data
    cache_file = _cache_file_after_umount(gw, "outside.bin")
    _damage(cache_file, 2 * MiB + 7)
    proc = run_cli("fsck", str(gw.cache_dir), "--repair", env=gw.env, check=False)
    assert proc.returncode == 0 and "corrupt" in proc.stdout, proc.stdout + proc.stderr
    assert _fsck(gw)[0] == 0
    _damage(cache_file, 2 * MiB + 9)  # again, and this time the mount must find it by itself
    gw.mount()
    with open(gw.mnt / "outside.bin", "rb") as f:
        f.seek(2 * MiB)
        assert f.read(MiB) == data[2 * MiB: 3 * MiB]
    assert (gw.mnt / "outside.bin").read_bytes() == data


def test_damaged_block_of_a_file_being_edited_is_not_uploaded(file_gw):
    """A damaged clean block inside a file the user then edits elsewhere must not be
    uploaded as is: the upload re-checks the blocks it did not write and fetches the
    damaged one again first."""
    gw = file_gw
    gw.expected_warnings.append(r"cache data of inode \d+ block 2 is damaged")
    data = bytearray(os.urandom(3 * MiB))
    _write_synced(gw, "f.bin", data)
    _damage(_cache_file_after_umount(gw, "f.bin"), 2 * MiB + 100)
    gw.mount()
    with open(gw.mnt / "f.bin", "r+b") as f:  # touches block 0 only
        f.write(b"EDIT")
    data[:4] = b"EDIT"
    gw.sync()
    assert gw.backend.view.get("f.bin") == bytes(data)


def test_truncated_cache_data_file(file_gw, tmp_path: Path):
    """The disk lost the tail of a clean file's cache data (a shorter file than its map
    says): reads must not come back short or as zeros."""
    gw = file_gw
    data = os.urandom(3 * MiB)
    _write_synced(gw, "f.bin", data)
    os.truncate(_cache_file_after_umount(gw, "f.bin"), MiB + 10)
    gw.mount()
    try:
        got = (gw.mnt / "f.bin").read_bytes()
    except OSError as exc:
        assert exc.errno == errno.EIO
    else:
        assert len(got) == len(data) and got == data
    still_serving(gw)
