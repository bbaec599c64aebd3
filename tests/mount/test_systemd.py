"""Running as a systemd service, without systemd: the daemon as ``cloudgw@.service`` starts
it (``--config`` naming the mountpoint, ``--foreground``), talking to a NOTIFY_SOCKET
listener of the test's own, with its stderr standing in for the journal.

systemd is not PID 1 on the test machines, so nothing here needs it: the unit files
are checked with ``systemd-analyze verify``, which reads them offline.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.mount.gateway import CLOUDGW

pytestmark = pytest.mark.mount

UNIT = Path(__file__).parents[2] / "contrib" / "systemd" / "cloudgw@.service"


class NotifyListener:
    """The service manager's end of sd_notify: a datagram socket collecting messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout: float = 60) -> dict[str, str]:
        """The first message (already received or arriving within ``timeout``) that has ``key``
        (with ``value``); messages are kept, so waits may look back."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if key in message and (value is None or value in message[key]):
                    return message
            seen = len(self.messages)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}={value or '*'} from the daemon within {timeout}s: {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))

    def keys_in_order(self) -> list[str]:
        return [key for message in self.messages for key in message]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    notify = NotifyListener(tmp_path / "notify.sock")
    yield notify
    notify.close()


def _service(tmp_path: Path, listener: NotifyListener, *, env: dict[str, str] | None = None,
             config_extra: str = "") -> tuple[subprocess.Popen, Path, Path, Path]:
    """Start the daemon as the unit does; stderr goes to a file that ``$JOURNAL_STREAM``
    names, as systemd's journal stream would be."""
    cloud, mnt, cache = tmp_path / "cloud", tmp_path / "srv" / "office", tmp_path / "cache"
    cloud.mkdir()
    mnt.mkdir(parents=True)
    config = tmp_path / "office.toml"
    config.write_text(f'mountpoint = "{mnt}"\n\n[cache]\ndir = "{cache}"\n\n'
                      f'[sync]\nwrite_back = 60\npoll_interval = 60\ndrain_timeout = 120\n{config_extra}\n'
                      f'[remotes.files]\nurl = "file://{cloud}"\n')
    journal = tmp_path / "journal"
    stderr = open(journal, "wb")
    st = os.fstat(stderr.fileno())
    unit_env = dict(line.removeprefix("Environment=").split("=", 1) for line in UNIT.read_text().splitlines()
                    if line.startswith("Environment="))
    proc = subprocess.Popen([CLOUDGW, "mount", "--config", str(config), "--foreground"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                            env={**os.environ, **unit_env, "NOTIFY_SOCKET": str(listener.path),
                                 "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", **(env or {})})
    stderr.close()
    return proc, mnt, cloud, journal


def _stop(proc: subprocess.Popen, mnt: Path) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)
    # unconditionally: ismount() is False for a dead mount whose root stat fails (ENOTCONN)
    subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)


def test_ready_only_once_the_mount_answers_then_status_stopping_and_a_drain_that_extends_the_stop(
        tmp_path: Path, listener: NotifyListener) -> None:
    # every upload takes 3 s: the stop's drain lasts long enough to be seen extending the timeout
    proc, mnt, cloud, journal = _service(tmp_path, listener, env={
        "CLOUDGW_FAULTS": "rate=1;faults=slow;ops=write;seconds=3;retry=0"})
    try:
        ready = listener.wait_for("READY", "1")
        # the first thing systemd hears is READY, and by then the mount answers
        assert os.path.ismount(mnt) and os.listdir(mnt / "files") == []
        assert listener.keys_in_order()[0] == "READY"
        assert f"mounted on {mnt}" in ready["STATUS"]
        assert ready["MAINPID"] == str(proc.pid)
        # the unit's environment: two malloc arenas (RSS in the one-hour soak 170 -> 89 MiB)
        assert b"MALLOC_ARENA_MAX=2" in Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")

        payload = os.urandom(3 << 20)
        (mnt / "files" / "report.bin").write_bytes(payload)
        assert "1 change pending upload" in listener.wait_for("STATUS", "pending upload", timeout=30)["STATUS"]

        proc.send_signal(signal.SIGTERM)  # systemctl stop
        stopping = listener.wait_for("STOPPING", "1")
        assert "1 change left to upload" in stopping["STATUS"]
        extension = listener.wait_for("EXTEND_TIMEOUT_USEC")
        assert int(extension["EXTEND_TIMEOUT_USEC"]) >= 10_000_000
        # after the drain, the rest of the stop (checksums, unmount, close) has its own extension
        last = listener.wait_for("STATUS", "stopping: unmounting", timeout=120)
        assert int(last.get("EXTEND_TIMEOUT_USEC", 0)) >= 30_000_000, last
        assert proc.wait(120) == 0
    finally:
        _stop(proc, mnt)
    # drained, not lost: the pending file went up before the daemon exited
    assert (cloud / "report.bin").read_bytes() == payload
    assert not os.path.ismount(mnt)
    keys = listener.keys_in_order()
    assert keys.index("STOPPING") > keys.index("READY")
    # once stopping, no status line says "mounted" again (the stop's own lines are the news)
    after = listener.messages[next(i for i, m in enumerate(listener.messages) if "STOPPING" in m):]
    assert not any("mounted on" in m.get("STATUS", "") for m in after), after

    # the log went to the "journal", each line with its syslog priority
    lines = journal.read_text().splitlines()
    assert any(line.startswith("<6>cloudgw.app: mounted") for line in lines), lines
    assert all(line[:3] in {"<2>", "<3>", "<4>", "<6>", "<7>"} for line in lines), lines


def test_the_watchdog_is_fed_when_watchdog_sec_is_set(tmp_path: Path, listener: NotifyListener) -> None:
    proc, mnt, _, _ = _service(tmp_path, listener, env={"WATCHDOG_USEC": "1000000"})  # WatchdogSec=1s
    try:
        listener.wait_for("READY", "1")
        first = listener.wait_for("WATCHDOG", "1")
        # pings keep coming (every half interval) while the service runs
        listener.messages.remove(first)
        listener.wait_for("WATCHDOG", "1", timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        _stop(proc, mnt)


def test_a_mountpoint_left_by_a_killed_daemon_is_mounted_again_on_restart(
        tmp_path: Path, listener: NotifyListener) -> None:
    """What ``Restart=on-failure`` relies on: the dead FUSE mount (ENOTCONN) of a killed
    daemon is detached by the next start, and nothing written before the kill is lost."""
    proc, mnt, cloud, _ = _service(tmp_path, listener)
    try:
        listener.wait_for("READY", "1")
        (mnt / "files" / "kept.txt").write_text("written before the crash")
        proc.kill()
        proc.wait(30)
        with pytest.raises(OSError):
            os.listdir(mnt)  # ENOTCONN: the dead mount
        listener.messages.clear()
        restarted = subprocess.Popen([CLOUDGW, "mount", "--config", str(tmp_path / "office.toml"), "--foreground"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env={**os.environ, "NOTIFY_SOCKET": str(listener.path)})
        try:
            listener.wait_for("READY", "1")
            assert (mnt / "files" / "kept.txt").read_text() == "written before the crash"
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(60) == 0
            assert (cloud / "kept.txt").read_text() == "written before the crash"
        finally:
            _stop(restarted, mnt)
    finally:
        _stop(proc, mnt)


@pytest.mark.parametrize("config, error", [
    ('[remotes.a]\nurl = "file:///tmp"\n', "missing MOUNTPOINT"),
    ('mountpoint = "srv/x"\n[remotes.a]\nurl = "file:///tmp"\n', "mountpoint must be an absolute path"),
])
def test_a_config_without_a_usable_mountpoint_is_a_one_line_error(tmp_path: Path, config: str, error: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(config)
    result = subprocess.run([CLOUDGW, "mount", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and error in result.stderr, result.stderr


def test_the_unit_file_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` exits 0 on unknown keys and bad values, but names them:
    nothing may be printed.  The binary path is the one the README links."""
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: run scripts/install-test-servers.sh"
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/cloudgw mount --config /etc/cloudgw/%i.toml --foreground" in text
    instance = tmp_path / "cloudgw@office.service"
    instance.write_text(text.replace("/usr/local/bin/cloudgw", CLOUDGW))
    result = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", result
