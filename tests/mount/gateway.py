"""Driving the real daemon: ``cloudgw mount`` in a subprocess on a real FUSE mount.

``Gateway`` starts the daemon exactly as a user does (the CLI, daemonized, which
returns once the mount is ready), and offers what a user does around it:
sync --wait, status, umount, and kill -9 for crash tests.  The daemon's log is
checked at the end: WARNING or worse fails the test unless it was expected.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOUDGW = str(Path(sys.executable).with_name("cloudgw"))


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([CLOUDGW, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"cloudgw {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@dataclass
class Gateway:
    remote_url: str
    mnt: Path
    cache_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    expected_warnings: list[str] = field(default_factory=list)
    _log_checked_upto: int = 0

    def mount(self, *extra: str) -> None:
        self.mnt.mkdir(parents=True, exist_ok=True)
        run_cli("mount", self.remote_url, str(self.mnt), "--cache-dir", str(self.cache_dir),
                "--write-back", "0.2", "--poll-interval", "1", "--log-level", "DEBUG",
                *self.args, *extra, env=self.env)
        assert os.path.ismount(self.mnt)

    @property
    def log_path(self) -> Path:
        return self.cache_dir / "cloudgw.log"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def sync(self, timeout: float = 120) -> None:
        run_cli("sync", str(self.mnt), "--wait", "--timeout", str(timeout), env=self.env, timeout=timeout + 30)

    def status(self) -> dict:
        return json.loads(run_cli("status", str(self.mnt), "--json", env=self.env).stdout)

    def poll(self) -> None:
        from cloudgw.control import request

        list(request(self.mnt, {"op": "poll"}, timeout=60))

    def pid(self) -> int:
        out = subprocess.run(["pgrep", "-f", f"cloudgw mount .* {self.mnt} "], capture_output=True, text=True).stdout
        pids = [int(p) for p in out.split()]
        assert pids, "daemon not running"
        return pids[0]

    def umount(self, timeout: float = 60) -> None:
        if os.path.ismount(self.mnt):
            run_cli("umount", str(self.mnt), "--timeout", str(timeout), env=self.env, timeout=timeout + 60)
        self.wait_gone()

    def kill9(self) -> None:
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
        deadline = time.monotonic() + 10
        while os.path.ismount(self.mnt) and time.monotonic() < deadline:
            time.sleep(0.05)

    def wait_gone(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if subprocess.run(["pgrep", "-f", f"cloudgw mount .* {self.mnt} "], capture_output=True).returncode:
                return
            time.sleep(0.1)
        raise AssertionError("daemon did not exit after unmount")

    def bad_log_lines(self) -> list[str]:
        lines = [l for l in self.log().splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) ", l)]
        return [l for l in lines if not any(re.search(p, l) for p in self.expected_warnings)]

    def force_cleanup(self) -> None:
        if os.path.ismount(self.mnt):
            try:
                self.umount(timeout=30)
            except Exception:
                subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
        subprocess.run(["pkill", "-9", "-f", f"cloudgw mount .* {self.mnt} "], capture_output=True)
