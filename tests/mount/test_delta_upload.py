"""Small edits of large files on S3 send only the parts that changed.

Through the real mount, on moto and on Swift's s3api, with every byte the
daemon sends to the server counted by a TCP proxy: a 4 KiB edit in the middle
of a 48 MiB file must cost one part (8 MiB), not the file, and the object must
then hold exactly the edited bytes.  The unchanged parts are copied on the
server (UploadPartCopy) from the revision the edit was based on.  Which blocks
changed survives a clean unmount (the next mount still sends one part), but not
a kill -9: the next upload then sends the whole file, never a stale part.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.mount.gateway import Gateway, run_cli
from tests.servers.proxy import OutageProxy

pytestmark = pytest.mark.mount

MiB = 1 << 20
SIZE = 48 * MiB  # six 8 MiB parts (the daemon's default part size)
ONE_PART_AND_REQUESTS = 12 * MiB


def sent_by(proxy: OutageProxy, action: Callable[[], None]) -> int:
    before = proxy.sent_to_server
    action()
    return proxy.sent_to_server - before


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def sha(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


def mounted_with_big_file(gw: Gateway) -> tuple[Path, bytearray]:
    """Mount, write a SIZE-byte random file and wait until it is on the remote."""
    gw.mount()
    big = gw.mnt / "big.bin"
    data = bytearray(os.urandom(SIZE))
    big.write_bytes(data)
    gw.sync()
    return big, data


def test_a_small_edit_sends_one_part(counted):
    gw, backend, proxy = counted
    big, data = mounted_with_big_file(gw)
    assert sha(backend.view.get("big.bin")) == sha(data)

    edit = os.urandom(4096)
    offset = 20 * MiB + 123  # inside the third part

    def edit_and_upload() -> None:
        patch(big, offset, edit)
        gw.sync()

    sent = sent_by(proxy, edit_and_upload)
    data[offset:offset + len(edit)] = edit
    assert sha(backend.view.get("big.bin")) == sha(data)
    assert sent < ONE_PART_AND_REQUESTS, f"{sent} bytes sent for a 4 KiB edit"

    # again, in two parts at once: each upload is based on the revision the last one made
    sent = sent_by(proxy, lambda: (patch(big, 1000, b"first"), patch(big, SIZE - 5, b"last!"), gw.sync()))
    data[1000:1005], data[SIZE - 5:] = b"first", b"last!"
    assert sha(backend.view.get("big.bin")) == sha(data)
    assert sent < 2 * ONE_PART_AND_REQUESTS
    assert sha(big.read_bytes()) == sha(data)


def test_truncate_and_append_keep_exact_bytes(counted):
    gw, backend, proxy = counted
    big, data = mounted_with_big_file(gw)

    cut = 30 * MiB + 5  # inside a part: the tail of the old object must not come back
    os.truncate(big, cut)
    with open(big, "ab") as f:
        f.write(b"appended after the cut")
    gw.sync()
    expected = data[:cut] + b"appended after the cut"
    assert sha(backend.view.get("big.bin")) == sha(expected)

    tail = os.urandom(10 * MiB)  # grows by more than a part
    sent = sent_by(proxy, lambda: (big.open("ab").write(tail), gw.sync()))
    expected += tail
    assert sha(backend.view.get("big.bin")) == sha(expected)
    assert sent < len(tail) + 2 * ONE_PART_AND_REQUESTS  # the new tail, not the 30 MiB before it


def test_after_kill9_the_whole_file_is_sent(counted):
    gw, backend, proxy = counted
    big, data = mounted_with_big_file(gw)
    gw.umount()

    gw.mount("--write-back", "3600")  # the edit stays queued until the crash
    edit = os.urandom(4096)
    patch(big, 9 * MiB, edit)
    data[9 * MiB:9 * MiB + 4096] = edit
    gw.kill9()

    # which blocks changed was in the dead process's memory: the restart sends everything
    sent = sent_by(proxy, lambda: (gw.mount(), gw.sync()))
    assert sha(backend.view.get("big.bin")) == sha(data)
    assert sent >= SIZE


def test_a_clean_unmount_with_the_edit_pending_still_sends_one_part(counted):
    gw, backend, proxy = counted
    gw.expected_warnings += [r"failed \(will retry\)", r"changes still pending", r"remote error",
                             r"could not clean up incomplete uploads"]  # while the remote is down
    big, data = mounted_with_big_file(gw)
    gw.umount()

    gw.mount("--write-back", "3600")
    edit = os.urandom(4096)
    patch(big, 33 * MiB, edit)
    data[33 * MiB:33 * MiB + 4096] = edit
    proxy.down()  # the unmount cannot upload it: it stays queued, with what changed
    proc = run_cli("umount", str(gw.mnt), "--timeout", "2", env=gw.env, check=False)
    assert proc.returncode == 1 and "still pending" in proc.stderr
    gw.wait_gone()
    proxy.up()

    sent = sent_by(proxy, lambda: (gw.mount(), gw.sync()))
    assert sha(backend.view.get("big.bin")) == sha(data)
    assert sent < ONE_PART_AND_REQUESTS, f"{sent} bytes sent after a clean restart for a 4 KiB edit"
