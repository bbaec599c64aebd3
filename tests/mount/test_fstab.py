"""fstab lines of type ``cloudgw``, mounted by the real util-linux mount(8).

``mount -T FSTAB DIR`` reads a test fstab and runs ``/sbin/mount.cloudgw`` (the
console script, linked there for the test if it is not already) exactly as at
boot: with a sanitized environment (no HOME, no PATH) and the line's options in
one ``-o``.  Checked: a file:// line and an S3 line (credentials from a file,
never from fstab) mount, a file written through them is uploaded, ``mount -a``
sees the line as mounted, plain ``umount`` uploads what was pending; a
``config=`` line; mount(8)'s own options accepted, ``nosuid``/``nodev``/
``noexec`` become mount flags, ``ro`` mounts read-only; an unknown option or a
secret is one line on stderr, exit != 0, nothing mounted.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.mount.gateway import Gateway
from tests.servers import S3Server
from tests.mount.util import wait_for

pytestmark = pytest.mark.mount

HELPER = Path("/sbin/mount.cloudgw")
_buckets = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def helper_linked() -> Iterator[None]:
    """``/sbin/mount.cloudgw`` -> this venv's console script (mount(8) looks only in /sbin)."""
    script = Path(sys.executable).with_name("mount.cloudgw")
    assert script.exists(), f"{script} missing: reinstall the package (pip install -e .)"
    created = False
    if not HELPER.exists() and not HELPER.is_symlink():
        HELPER.symlink_to(script)
        created = True
    assert HELPER.resolve() == script.resolve(), f"{HELPER} is not this checkout's helper ({HELPER.resolve()})"
    try:
        yield
    finally:
        if created:
            HELPER.unlink()


def helper_pids(mnt: Path) -> list[int]:
    """Daemons started by the helper for ``mnt`` (their command line is the helper's)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                args = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if any(a.endswith("mount.cloudgw") for a in args) and str(mnt) in args:
                pids.append(int(entry))
    return pids


def mount_options(mnt: Path) -> tuple[set[str], str] | None:
    """(per-mount flags, source) of ``mnt`` from /proc/self/mountinfo, or None."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(mnt):
            after = fields[fields.index("-") + 1:]
            return set(fields[5].split(",")), after[1]
    return None


class FstabMount:
    """One fstab line for ``mnt``, mounted with ``mount -T``; a Gateway view of it for the log."""

    def __init__(self, tmp_path: Path, spec: str, options: str, env: dict[str, str] | None = None) -> None:
        self.mnt = tmp_path / "mnt"
        self.mnt.mkdir(exist_ok=True)
        self.cache_dir = tmp_path / "cache"
        self.fstab = tmp_path / "fstab"
        self.fstab.write_text(f"# test fstab\n{spec} {self.mnt} cloudgw {options} 0 0\n")
        # what mount(8) gets from its caller; it hands the helper this minus HOME, PATH, ...
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | (env or {})
        self.gw = Gateway(spec, self.mnt, self.cache_dir, env=self.env)

    def mount(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mount", *extra, "-T", str(self.fstab), str(self.mnt)], capture_output=True,
                              text=True, env=self.env, timeout=120)

    def umount(self) -> None:
        proc = subprocess.run(["umount", str(self.mnt)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert not os.path.ismount(self.mnt)
        wait_for(lambda: not helper_pids(self.mnt), timeout=90)  # the daemon drains, then exits

    def cleanup(self) -> None:
        if os.path.ismount(self.mnt):
            subprocess.run(["umount", str(self.mnt)], capture_output=True)
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
        try:
            wait_for(lambda: not helper_pids(self.mnt), timeout=90)
        finally:
            for pid in helper_pids(self.mnt):
                os.kill(pid, 9)
        bad = self.gw.bad_log_lines()
        assert not bad, "daemon logged unexpected warnings:\n" + "\n".join(bad[:20])


@pytest.fixture
def fstab_mounts() -> Iterator[list[FstabMount]]:
    made: list[FstabMount] = []
    yield made
    for m in made:
        m.cleanup()


def _mounted_ok(m: FstabMount, *extra: str) -> None:
    proc = m.mount(*extra)
    assert proc.returncode == 0, f"mount failed ({proc.returncode}): {proc.stderr.strip()}"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert os.path.ismount(m.mnt)  # mount(8) returned: the mount answers already


def test_file_line_mounts_uploads_and_umount_uploads_what_is_pending(tmp_path: Path, fstab_mounts: list):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    # a write-back delay of an hour: only the unmount can upload the second file in this test
    opts = f"rw,nofail,cache_dir={tmp_path}/cache,write_back=3600,poll_interval=1,drain_timeout=120,log_level=debug"
    m = FstabMount(tmp_path, f"file://{cloud}", opts)
    fstab_mounts.append(m)
    _mounted_ok(m)
    (m.mnt / "synced.txt").write_bytes(b"first")
    m.gw.sync()
    assert (cloud / "synced.txt").read_bytes() == b"first"

    # mount -a compares the fstab source with the mounted one: it must see this line as mounted
    proc = subprocess.run(["mount", "-a", "-T", str(m.fstab)], capture_output=True, text=True, env=m.env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(helper_pids(m.mnt)) == 1
    assert mount_options(m.mnt)[1] == f"file://{cloud}"

    (m.mnt / "pending.txt").write_bytes(b"written just before umount")
    assert m.gw.status()["dirty_files"] == 1
    m.umount()  # plain umount(8): returns at once; the daemon uploads what is pending, then exits
    assert (cloud / "pending.txt").read_bytes() == b"written just before umount"
    assert re.search(r"uploading what is pending \(up to 120s\)", m.gw.log()), m.gw.log()[-2000:]


def test_s3_line_with_credentials_from_a_file(tmp_path: Path, moto_server: S3Server, fstab_mounts: list):
    bucket = f"fstab-{next(_buckets)}"
    client = moto_server.client()
    client.create_bucket(Bucket=bucket)
    credentials = tmp_path / "aws-credentials"
    credentials.touch(mode=0o600)
    credentials.write_text(f"[default]\naws_access_key_id = {moto_server.access_key}\n"
                           f"aws_secret_access_key = {moto_server.secret_key}\n")
    opts = (f"_netdev,nofail,cache_dir={tmp_path}/cache,write_back=0.2,poll_interval=1,"
            f"endpoint_url={moto_server.endpoint_url},region={moto_server.region},path_style")
    # /root/.aws/credentials in real life; a file of the test's own here (boto3 reads this variable)
    m = FstabMount(tmp_path, f"s3://{bucket}/share", opts,
                   env={"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(tmp_path / "none")})
    fstab_mounts.append(m)
    _mounted_ok(m)
    (m.mnt / "report.txt").write_bytes(b"quarterly numbers")
    m.gw.sync()
    assert client.get_object(Bucket=bucket, Key="share/report.txt")["Body"].read() == b"quarterly numbers"
    m.umount()


def test_config_line(tmp_path: Path, fstab_mounts: list):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    (cloud / "old.txt").write_bytes(b"already there")
    config = tmp_path / "office.toml"
    # the fstab's mountpoint wins over the config's own (as MOUNTPOINT after --config does)
    config.write_text(f'mountpoint = "{tmp_path}/elsewhere"\n\n'
                      f'[cache]\ndir = "{tmp_path}/cache"\n\n[sync]\nwrite_back = 0.2\npoll_interval = 1\n\n'
                      f'[remotes.docs]\nurl = "file://{cloud}"\n')
    m = FstabMount(tmp_path, "office", f"_netdev,nofail,config={config}")
    fstab_mounts.append(m)
    _mounted_ok(m)
    assert (m.mnt / "docs" / "old.txt").read_bytes() == b"already there"
    (m.mnt / "docs" / "new.txt").write_bytes(b"from the mount")
    m.gw.sync()
    assert (cloud / "new.txt").read_bytes() == b"from the mount"
    assert mount_options(m.mnt)[1] == "office"
    m.umount()


def test_mount8_options_are_accepted_and_mount_flags_applied(tmp_path: Path, fstab_mounts: list):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    opts = (f"_netdev,nofail,noauto,x-systemd.automount,x-systemd.mount-timeout=30,comment=test,defaults,rw,"
            f"noatime,nosuid,nodev,noexec,cache_dir={tmp_path}/cache,write_back=0.2")
    m = FstabMount(tmp_path, f"file://{cloud}", opts)
    fstab_mounts.append(m)
    _mounted_ok(m)
    flags, _ = mount_options(m.mnt)
    assert {"rw", "nosuid", "nodev", "noexec"} <= flags, flags
    (m.mnt / "a.txt").write_bytes(b"a")
    m.umount()
    assert (cloud / "a.txt").read_bytes() == b"a"


def test_ro_mounts_read_only(tmp_path: Path, fstab_mounts: list):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    (cloud / "keep.txt").write_bytes(b"read me")
    m = FstabMount(tmp_path, f"file://{cloud}", f"ro,_netdev,cache_dir={tmp_path}/cache")
    fstab_mounts.append(m)
    _mounted_ok(m)
    assert "ro" in mount_options(m.mnt)[0]
    assert (m.mnt / "keep.txt").read_bytes() == b"read me"
    with pytest.raises(OSError) as exc:
        (m.mnt / "new.txt").write_bytes(b"x")
    assert exc.value.errno == errno.EROFS
    m.umount()
    assert sorted(p.name for p in cloud.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(("options", "needles"), [
    ("_netdev,foo,write_back=5", ["unknown option 'foo'", "-s ignores"]),
    ("profile=work", ["unknown option 'profile'", "config file"]),
    ("write_back", ["option 'write_back' needs a value"]),
    ("password=hunter2", ["option 'password' looks like a secret", "file"]),
    ("aws_secret_access_key=hunter2", ["looks like a secret", "/root/.aws/credentials"]),
    ("token=hunter2", ["looks like a secret"]),
    ("endpoint_url=http://AKIAEXAMPLE:hunter2@127.0.0.1:9000", ["password in option 'endpoint_url'"]),
], ids=["unknown", "remote-option", "no-value", "password", "aws-secret", "token", "url-password-in-a-value"])
def test_bad_options_fail_with_one_line(tmp_path: Path, options: str, needles: list[str], fstab_mounts: list):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    m = FstabMount(tmp_path, f"file://{cloud}", f"{options},cache_dir={tmp_path}/cache")
    proc = m.mount()
    assert proc.returncode == 1, (proc.returncode, proc.stderr)  # mount(8): incorrect invocation
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mount.cloudgw: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0]
    assert "hunter2" not in proc.stdout + proc.stderr
    assert not os.path.ismount(m.mnt)
    assert helper_pids(m.mnt) == []


def test_secret_refused_even_when_sloppy(tmp_path: Path):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    m = FstabMount(tmp_path, f"file://{cloud}", f"foo,secret=hunter2,cache_dir={tmp_path}/cache")
    proc = m.mount("-s")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "looks like a secret" in proc.stderr and "hunter2" not in proc.stderr
    assert not os.path.ismount(m.mnt)


def test_sloppy_ignores_unknown_options(tmp_path: Path, fstab_mounts: list):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    m = FstabMount(tmp_path, f"file://{cloud}", f"foo,bar=1,cache_dir={tmp_path}/cache")
    fstab_mounts.append(m)
    _mounted_ok(m, "-s")
    m.umount()


def test_fake_mount_checks_the_line_and_mounts_nothing(tmp_path: Path):
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    # a value with a comma in double quotes, as libmount allows
    m = FstabMount(tmp_path, f"file://{cloud}", f'_netdev,cache_dir="{tmp_path}/ca,che",write_back=7,ro')
    proc = m.mount("-f", "-v")  # mount(8) passes -f and -v on to the helper
    assert proc.returncode == 0, proc.stderr
    assert f"cloudgw mount file://{cloud} {m.mnt} --cache-dir {tmp_path}/ca,che --write-back 7 --read-only" in proc.stdout
    assert not os.path.ismount(m.mnt)
    assert helper_pids(m.mnt) == [] and not (tmp_path / "ca,che").exists()


def test_mount_failure_is_one_line_and_exit_32(tmp_path: Path):
    m = FstabMount(tmp_path, f"file://{tmp_path}/no-such-cloud", f"cache_dir={tmp_path}/cache")
    proc = m.mount()
    assert proc.returncode == 32, (proc.returncode, proc.stderr)  # mount(8): mount failure
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not os.path.ismount(m.mnt)
    assert helper_pids(m.mnt) == []


def test_every_cloudgw_mount_option_has_an_fstab_key():
    """A new ``cloudgw mount --option`` needs its fstab key in ``cloudgw.fstab``
    (--foreground does not belong in fstab: mount(8) waits for the helper; --read-only is ``ro``;
    --remote-option: a remote's own options go in its config file, ``config=FILE``)."""
    import re

    from cloudgw.fstab import FLAGS, OPTIONS
    from tests.mount.gateway import run_cli

    usage = run_cli("mount", "--help").stdout
    long_options = set(re.findall(r"--([a-z][a-z-]+)", usage)) - {"help", "foreground", "read-only", "remote-option"}
    assert long_options, usage
    keys = set(OPTIONS) | set(FLAGS)
    assert {o.replace("-", "_") for o in long_options} <= keys
