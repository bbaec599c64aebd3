"""A private Samba ``smbd`` on 127.0.0.1 sharing one directory (e.g. a cloudgw mount).

``start_samba(path)`` writes its own ``smb.conf`` into a fresh temp dir: every
directory smbd keeps state in (private, lock, state, cache, pid, ncalrpc) and
the log are under it, the passdb is ``tdbsam:<tmp>/private/passdb.tdb``, it
listens only on ``127.0.0.1:<free port>`` (no NetBIOS, no nmbd, no printers),
and nothing under /etc/samba is read, by smbd or by the smbclient calls.  One
share, ``share``, is ``path`` with the settings of
contrib/samba/smb.conf.example for a FUSE share.  The one user is root (the
suite runs as root; a Samba user must be a Unix user): its password goes into
the passdb through ``smbpasswd -s`` on stdin and into an 0600 authentication
file for ``smbclient -A``, never onto a command line.

smbd runs in the foreground (``-F --no-process-group --debug-stdout``) in its
own session and is stopped (SIGTERM to the group, then SIGKILL) on exit; the
temp dir is removed unless CLOUDGW_KEEP_SAMBA_DIR is set.  The log (``smbd.out``)
is at level 1, or CLOUDGW_SAMBA_LOG_LEVEL (e.g. ``3`` shows every failed VFS call).

Debian packages: ``samba`` and ``smbclient`` (scripts/install-test-servers.sh).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.servers import free_port, wait_for_port

SMBD = "/usr/sbin/smbd"
SMBPASSWD = "/usr/bin/smbpasswd"
SMBCLIENT = "/usr/bin/smbclient"
USER = "root"
SHARE = "share"

_GLOBAL = """\
[global]
    server role = standalone server
    workgroup = WORKGROUP
    netbios name = CLOUDGWTEST
    disable netbios = yes
    smb ports = {port}
    interfaces = 127.0.0.1
    bind interfaces only = yes
    private dir = {d}/private
    lock directory = {d}/lock
    state directory = {d}/state
    cache directory = {d}/cache
    pid directory = {d}/run
    ncalrpc dir = {d}/ncalrpc
    passdb backend = tdbsam:{d}/private/passdb.tdb
    log file = {d}/log.%m
    max log size = 0
    log level = {log_level}
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    map to guest = never
    usershare path =
"""

# The share settings that matter on a FUSE mount (why: contrib/samba/smb.conf.example)
SHARE_OPTIONS = {
    "read only": "no",
    "store dos attributes": "yes",
    "ea support": "yes",
    "map archive": "no",
    "map hidden": "no",
    "map system": "no",
    "map readonly": "no",
    "nt acl support": "no",
    "inherit acls": "no",
    "vfs objects": "",
    "strict sync": "yes",
    "sync always": "no",
    "kernel oplocks": "no",
    "kernel share modes": "no",
    "posix locking": "yes",
    "strict allocate": "no",
    "use sendfile": "no",
}


@dataclass(frozen=True)
class SambaServer:
    """How to reach a running smbd: ``smbclient(...)`` runs commands on the share."""

    port: int
    share: str
    path: Path  # what the share serves
    dir: Path  # smbd's temp dir (smb.conf, logs, passdb)
    client_conf: Path
    auth_file: Path  # smbclient -A (mode 0600)

    @property
    def unc(self) -> str:
        return f"//127.0.0.1/{self.share}"

    def smbclient_argv(self, commands: str) -> list[str]:
        return [SMBCLIENT, self.unc, "-p", str(self.port), "-s", str(self.client_conf), "-A", str(self.auth_file),
                "-c", commands]

    def smbclient(self, commands: str, *, cwd: Path | None = None, check: bool = True,
                  timeout: float = 300) -> str:
        """Run ``commands`` (``;``-separated smbclient commands); its output.  With ``check``, a
        failed command (smbclient's exit code or an ``NT_STATUS_`` error in the output) raises."""
        proc = subprocess.run(self.smbclient_argv(commands), capture_output=True, text=True, cwd=cwd,
                              timeout=timeout, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"})
        out = proc.stdout + proc.stderr
        if check and (proc.returncode != 0 or re.search(r"NT_STATUS_\w+", out)):
            raise AssertionError(f"smbclient -c {commands!r} failed ({proc.returncode}):\n{out[-3000:]}"
                                 f"\n--- smbd log ---\n{self.log()[-3000:]}")
        return out

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in [self.dir / "smbd.out", *sorted(self.dir.glob("log.*"))]
                       if p.exists())


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@contextlib.contextmanager
def start_samba(path: Path, *, share_options: dict[str, str] | None = None) -> Iterator[SambaServer]:
    """Run smbd on a free 127.0.0.1 port sharing ``path`` as ``share``; yield how to reach it."""
    for program in (SMBD, SMBPASSWD, SMBCLIENT):
        if not os.path.exists(program):
            raise RuntimeError(f"{program} is missing: apt-get install samba smbclient"
                               " (scripts/install-test-servers.sh)")
    d = Path(tempfile.mkdtemp(prefix="cloudgw-samba-"))
    proc: subprocess.Popen | None = None
    try:
        for sub in ("private", "lock", "state", "cache", "run", "ncalrpc"):
            (d / sub).mkdir()
        (d / "private").chmod(0o700)
        port = free_port()
        options = {**SHARE_OPTIONS, **(share_options or {})}
        conf = d / "smb.conf"
        log_level = os.environ.get("CLOUDGW_SAMBA_LOG_LEVEL", "1")
        conf.write_text(_GLOBAL.format(d=d, port=port, log_level=log_level) + f"\n[{SHARE}]\n    path = {path}\n"
                        + "".join(f"    {k} = {v}\n" for k, v in options.items()))
        client_conf = d / "client.conf"  # so smbclient reads nothing under /etc/samba
        client_conf.write_text(f"[global]\n    workgroup = WORKGROUP\n    client min protocol = SMB2_10\n"
                               f"    cache directory = {d}/client-cache\n    lock directory = {d}/client-cache\n"
                               f"    state directory = {d}/client-cache\n    private dir = {d}/client-cache\n")
        (d / "client-cache").mkdir(mode=0o700)
        password = secrets.token_urlsafe(12)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
        subprocess.run([SMBPASSWD, "-c", str(conf), "-s", "-a", USER], input=f"{password}\n{password}\n",
                       text=True, check=True, capture_output=True, env=env)
        auth = d / "auth"
        _write_private(auth, f"username = {USER}\npassword = {password}\ndomain = WORKGROUP\n")
        with open(d / "smbd.out", "wb") as out:
            proc = subprocess.Popen([SMBD, "-F", "--no-process-group", "--debug-stdout", "-s", str(conf)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=d,
                                    start_new_session=True, env=env)
        try:
            wait_for_port(port, lambda: proc.poll() is None, "smbd")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {(d / 'smbd.out').read_text(errors='replace')[-2000:]}") from None
        yield SambaServer(port, SHARE, path, d, client_conf, auth)
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if not os.environ.get("CLOUDGW_KEEP_SAMBA_DIR"):
            shutil.rmtree(d, ignore_errors=True)
