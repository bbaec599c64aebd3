"""FIFOs, sockets and device nodes through the mount: made, listed, renamed, chmod'ed,
chown'ed and deleted; kept across remounts and by the remote itself (a second gateway with
an empty cache sees them); real special files on file://, marker symlinks elsewhere
(``cloudgw.remotes.specials``)."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.mount.conftest import CORE_BACKENDS, Backend, backend_for
from tests.mount.gateway import Gateway

pytestmark = pytest.mark.mount


@pytest.fixture(params=CORE_BACKENDS)
def backend(request, tmp_path: Path) -> Backend:  # noqa: ANN001
    return backend_for(request, tmp_path)


def _kinds(root: Path) -> dict[str, tuple]:
    """What ``ls -l`` shows of every entry below ``root``: type, permissions, owner, device."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                                              st.st_gid, st.st_rdev if stat.S_ISCHR(st.st_mode) or
                                              stat.S_ISBLK(st.st_mode) else 0)
    return out


def _bind_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(path))
    finally:
        s.close()


@pytest.fixture
def second(gw: Gateway, tmp_path: Path) -> Iterator[Gateway]:
    """Another gateway on the same remote with an empty cache: it knows only what the remote holds."""
    other = Gateway(gw.remote_url, tmp_path / "mnt2", tmp_path / "cache2", env=gw.env, args=gw.args)
    try:
        yield other
        other.umount()
    finally:
        other.force_cleanup()
    assert not other.bad_log_lines()


def test_special_files_are_kept_locally_and_by_the_remote(gw: Gateway, second: Gateway):
    m = gw.mnt
    (m / "dev").mkdir()
    os.mkfifo(m / "dev" / "pipe", 0o640)
    os.mknod(m / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(m / "dev" / "loop0", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    _bind_socket(m / "dev" / "sock")
    os.chmod(m / "dev" / "loop0", 0o660)  # (mknod applied the umask)
    os.chown(m / "dev" / "loop0", 0, 6)
    os.chmod(m / "dev" / "sock", 0o600)
    (m / "dev" / "data.txt").write_text("plain")
    expected = _kinds(m)
    assert expected["dev/pipe"] == (stat.S_IFIFO, 0o640, 0, 0, 0)
    assert expected["dev/null"][0] == stat.S_IFCHR and expected["dev/null"][4] == os.makedev(1, 3)
    assert expected["dev/loop0"] == (stat.S_IFBLK, 0o660, 0, 6, os.makedev(7, 0))
    assert expected["dev/sock"][:2] == (stat.S_IFSOCK, 0o600)
    assert os.listdir(m / "dev") and sorted(os.listdir(m / "dev")) == ["data.txt", "loop0", "null", "pipe", "sock"]

    # a FIFO made here works as one: the kernel serves it
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(Path(m / "dev" / "pipe").read_bytes()))
    reader.start()
    (m / "dev" / "pipe").write_bytes(b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]

    gw.sync()
    gw.umount()
    gw.mount()
    assert _kinds(m) == expected  # across a remount

    second.mount()
    assert _kinds(second.mnt) == expected  # the remote holds them (an empty cache shows them the same)
    second.umount()

    os.rename(m / "dev" / "pipe", m / "dev" / "fifo")
    os.chmod(m / "dev" / "null", 0o600)
    os.chown(m / "dev" / "sock", 1000, 1000)
    os.unlink(m / "dev" / "loop0")
    expected["dev/fifo"] = expected.pop("dev/pipe")
    expected["dev/null"] = (stat.S_IFCHR, 0o600, 0, 0, os.makedev(1, 3))
    expected["dev/sock"] = (stat.S_IFSOCK, 0o600, 1000, 1000, 0)
    del expected["dev/loop0"]
    assert _kinds(m) == expected
    gw.sync()
    # (fresh caches: the second gateway's cache from before would keep what it knew)
    import shutil
    shutil.rmtree(second.cache_dir)
    second.mount()
    assert _kinds(second.mnt) == expected


def test_special_files_on_file_are_real_special_files(file_backend: Backend, tmp_path: Path):
    from tests.mount.conftest import _gateway

    gen = _gateway(file_backend, tmp_path)
    gw = next(gen)
    os.mkfifo(gw.mnt / "pipe", 0o600)
    os.mknod(gw.mnt / "zero", stat.S_IFCHR | 0o644, os.makedev(1, 5))
    gw.sync()
    root = file_backend.view.root
    assert stat.S_ISFIFO(os.lstat(root / "pipe").st_mode)
    st = os.lstat(root / "zero")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 5) and stat.S_IMODE(st.st_mode) == 0o644
    os.mkfifo(root / "made-outside")  # one made in the directory by another program appears as one
    gw.poll()
    assert stat.S_ISFIFO(os.lstat(gw.mnt / "made-outside").st_mode)
    with pytest.raises(StopIteration):
        next(gen)
