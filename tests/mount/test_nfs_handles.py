"""NFS re-export: file handles survive a restart of the gateway.

The kernel's NFS server (and nfs-ganesha's VFS FSAL) keep a client's files as
``name_to_handle_at`` handles and turn them back into files with
``open_by_handle_at``.  For FUSE a handle holds (inode number, generation); after
a remount the kernel knows no inode yet and asks the daemon LOOKUP "." in the
handle's inode (and LOOKUP ".." to reconnect a directory to its parent), so the
handles below are taken on one mount and opened on the next one, as a client of
a restarted NAS does.  Needs root (CAP_DAC_READ_SEARCH) for ``open_by_handle_at``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.mount.fhandle import Handle, name_to_handle, open_by_handle
from tests.mount.gateway import Gateway

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="open_by_handle_at needs CAP_DAC_READ_SEARCH (root)")


def remount(gw: Gateway) -> None:
    """A restart of the gateway on the same cache dir (the unmount drains the uploads)."""
    gw.umount()
    gw.mount()


@contextlib.contextmanager
def opened(gw: Gateway, handle: Handle, flags: int = os.O_RDONLY) -> Iterator[int]:
    mount_fd = os.open(gw.mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_by_handle(mount_fd, handle, flags)
    finally:
        os.close(mount_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def assert_stale(gw: Gateway, handle: Handle) -> None:
    with pytest.raises(OSError) as err:
        with opened(gw, handle):
            pass
    assert err.value.errno == errno.ESTALE


def test_file_and_directory_handles_survive_a_remount(gw: Gateway):
    (gw.mnt / "top" / "sub").mkdir(parents=True)
    data = os.urandom(300_000)
    (gw.mnt / "top" / "sub" / "f.bin").write_bytes(data)
    (gw.mnt / "top" / "sibling.txt").write_text("s")
    file_ino = os.stat(gw.mnt / "top" / "sub" / "f.bin").st_ino
    file_h = name_to_handle(gw.mnt / "top" / "sub" / "f.bin")
    dir_h = name_to_handle(gw.mnt / "top" / "sub")
    root_h = name_to_handle(gw.mnt)
    assert file_h.fuse_nodeid_generation[0] == file_ino
    generation = file_h.fuse_nodeid_generation[1]
    assert generation != 0 and dir_h.fuse_nodeid_generation[1] == generation
    assert root_h.fuse_nodeid_generation == (1, 0)  # the kernel wants generation 0 for the root

    remount(gw)

    with opened(gw, file_h) as fd:  # LOOKUP "." of a file the new mount has never seen
        assert os.fstat(fd).st_ino == file_ino
        assert os.pread(fd, len(data) + 1, 0) == data
    with opened(gw, dir_h, os.O_RDONLY | os.O_DIRECTORY) as fd:
        # a directory is reconnected to the tree (LOOKUP ".." up to the root, and the
        # parent's listing for its name), as nfsd does: its path is known again
        assert os.readlink(f"/proc/self/fd/{fd}") == str(gw.mnt / "top" / "sub")
        assert os.listdir(fd) == ["f.bin"]
        parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        try:
            assert sorted(os.listdir(parent)) == ["sibling.txt", "sub"]
        finally:
            os.close(parent)
    with opened(gw, root_h, os.O_RDONLY | os.O_DIRECTORY) as fd:
        assert os.path.samestat(os.fstat(fd), os.stat(gw.mnt))
    # and writing through a handle works like through the path
    with opened(gw, file_h, os.O_WRONLY) as fd:
        os.pwrite(fd, b"HEAD", 0)
    assert (gw.mnt / "top" / "sub" / "f.bin").read_bytes() == b"HEAD" + data[4:]


def test_deleted_files_give_estale_and_a_reused_number_never_opens_another_file(gw: Gateway):
    """Deleted here, deleted on the remote while the gateway was down, and the highest-numbered
    file deleted and another created after it: SQLite hands that rowid out again without
    AUTOINCREMENT; if it ever did, the old handle must still be stale, never the new file."""
    (gw.mnt / "d").mkdir()
    (gw.mnt / "gone-dir").mkdir()
    for name in ("gone.txt", "kept.txt", "d/gone-elsewhere.txt", "last"):
        (gw.mnt / name).write_text(name)
    last_ino = os.stat(gw.mnt / "last").st_ino
    assert last_ino == max(os.stat(p).st_ino for p in gw.mnt.rglob("*"))
    handles = {name: name_to_handle(gw.mnt / name)
               for name in ("gone.txt", "gone-dir", "d/gone-elsewhere.txt", "last", "kept.txt", "d")}
    (gw.mnt / "gone.txt").unlink()
    (gw.mnt / "last").unlink()
    (gw.mnt / "gone-dir").rmdir()
    gw.umount()
    gw.backend.view.delete("d/gone-elsewhere.txt")  # type: ignore[attr-defined]  # another client
    gw.mount()  # a restart: the number must not come back from the database either
    gw.poll()
    (gw.mnt / "new").write_text("new file")
    assert os.stat(gw.mnt / "new").st_ino > last_ino
    new = name_to_handle(gw.mnt / "new")

    # a new mount: the kernel has none of the old inodes, it asks LOOKUP "." for each
    for name in ("gone.txt", "gone-dir", "d/gone-elsewhere.txt", "last"):
        assert_stale(gw, handles[name])
    with opened(gw, handles["kept.txt"]) as fd:
        assert os.read(fd, 100) == b"kept.txt"
    with opened(gw, handles["d"], os.O_RDONLY | os.O_DIRECTORY) as fd:
        assert os.listdir(fd) == []
    with opened(gw, new) as fd:
        assert os.read(fd, 100) == b"new file"


def test_a_handle_from_a_former_cache_dir_is_stale(file_gw: Gateway):
    """A cache dir made anew (deleted by an administrator, a new disk) numbers the tree
    from 2 again, so the same number now names another file: the generation differs."""
    gw = file_gw
    (gw.mnt / "a").write_text("a")
    a_ino = os.stat(gw.mnt / "a").st_ino
    a = name_to_handle(gw.mnt / "a")
    (gw.mnt / "a").unlink()
    (gw.mnt / "b").write_text("b")
    gw.umount()
    shutil.rmtree(gw.cache_dir)
    gw.mount()

    assert os.stat(gw.mnt / "b").st_ino == a_ino  # the number is reused: the case at hand
    assert_stale(gw, a)
    b = name_to_handle(gw.mnt / "b")
    assert b.fuse_nodeid_generation[1] != a.fuse_nodeid_generation[1]
    with opened(gw, b) as fd:
        assert os.read(fd, 10) == b"b"
