"""``cloudgw.systemd.Notifier`` against a datagram socket of the test's own (the
end-to-end run as a service is ``tests/mount/test_systemd.py``)."""

from __future__ import annotations

import socket
from pathlib import Path

from cloudgw.systemd import Notifier


def test_a_status_with_a_path_that_is_not_utf8_is_sent_not_raised(tmp_path: Path) -> None:
    """A mountpoint given as bytes that are not UTF-8 reaches Python as lone surrogates;
    "a send never raises" must hold for it too (the STATUS line names the mountpoint)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(tmp_path / "notify.sock"))
        listener.settimeout(10)
        notifier = Notifier(str(tmp_path / "notify.sock"))
        mountpoint = (b"/srv/caf\xe9").decode(errors="surrogateescape")
        notifier.status(f"mounted on {mountpoint}")
        message = listener.recv(4096).decode()
    assert message.startswith("STATUS=mounted on /srv/caf")


def test_a_notifier_without_a_socket_does_nothing_and_a_gone_socket_does_not_raise(tmp_path: Path) -> None:
    Notifier(None).ready("x")
    Notifier(str(tmp_path / "nobody-listens.sock")).ready("x")
