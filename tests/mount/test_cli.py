"""The promises of the ``cloudgw`` command line, through the installed console script.

Bad input: exactly one line on stderr starting ``cloudgw: error:``, exit code != 0,
no traceback, reported by the command itself before it returns (the daemon
reports start-up failures back through its pipe), and nothing left behind: no
mount, no daemon process.  Happy paths: help, status around ``sync --wait``,
``umount`` draining, several remotes from a TOML file, read-only mounts, and a
failing upload that stays visible and queued.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
from pathlib import Path

import pytest

from cloudgw import __version__
from cloudgw.control import request
from tests.mount.conftest import make_backend
from tests.mount.gateway import Gateway, run_cli
from tests.mount.util import daemon_pids, extra_gateway, wait_for

pytestmark = pytest.mark.mount


def assert_clean_failure(proc: subprocess.CompletedProcess, *needles: str, mnt: Path | None = None) -> str:
    """One ``cloudgw: error:`` line, exit != 0, no traceback, no mount or daemon left."""
    everything = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"succeeded: {everything!r}"
    assert "Traceback" not in everything
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {proc.stderr!r}"
    line = lines[0]
    assert line.startswith("cloudgw: error: "), line
    assert proc.stdout == ""
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    if mnt is not None:
        assert not os.path.ismount(mnt)
        assert daemon_pids(mnt) == []
    return line


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_cli(*args, env=env, timeout=timeout, check=False)


# -- bad input ------------------------------------------------------------------------------


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cloudgw.toml"
    path.write_text(text)
    return path


_REMOTE_OK = '[remotes.a]\nurl = "file://{cloud}"\n'

# (id, argv after "cloudgw" with {mnt} {cloud} {tmp} {config} placeholders, TOML text or None, needles)
BAD_INPUT = [
    ("mountpoint-missing", ["mount", "file://{cloud}", "{tmp}/nope"], None, ["does not exist", "mkdir -p"]),
    ("mountpoint-is-a-file", ["mount", "file://{cloud}", "{tmp}/a-file"], None, ["not a directory"]),
    ("url-relative-path", ["mount", "cloud/dir", "{mnt}"], None, ["unsupported remote URL", "file:///"]),
    ("url-file-not-absolute", ["mount", "file://cloud/dir", "{mnt}"], None, ["absolute"]),
    ("url-ftp", ["mount", "ftp://example.com/x", "{mnt}"], None, ["unsupported remote URL 'ftp://"]),
    ("url-s3-no-bucket", ["mount", "s3://", "{mnt}"], None, ["bucket"]),
    ("url-s3-no-bucket-with-prefix", ["mount", "s3:///prefix", "{mnt}"], None, ["bucket"]),
    ("s3-endpoint-malformed", ["mount", "s3://bucket", "{mnt}", "--endpoint-url", "not a url"], None,
     ["endpoint", "--endpoint-url"]),
    ("s3-region-malformed", ["mount", "s3://bucket", "{mnt}", "--endpoint-url", "http://127.0.0.1:9",
                             "--region", "no/such region"], None, ["region"]),
    ("remote-dir-missing", ["mount", "file://{tmp}/no-such-cloud", "{mnt}"], None, ["does not exist"]),
    ("cache-dir-unwritable", ["mount", "file://{cloud}", "{mnt}", "--cache-dir", "{tmp}/a-file/cache"], None,
     ["cache dir", "not writable", "--cache-dir"]),
    ("poll-interval-0", ["mount", "file://{cloud}", "{mnt}", "--poll-interval", "0"], None, ["poll interval", "86400"]),
    ("poll-interval-100000", ["mount", "file://{cloud}", "{mnt}", "--poll-interval", "100000"], None,
     ["poll interval", "86400"]),
    ("poll-interval-words", ["mount", "file://{cloud}", "{mnt}", "--poll-interval", "often"], None, ["poll interval"]),
    ("cache-max-size-words", ["mount", "file://{cloud}", "{mnt}", "--cache-max-size", "lots"], None,
     ["cache size", "20G"]),
    ("cache-max-size-negative", ["mount", "file://{cloud}", "{mnt}", "--cache-max-size=-5G"], None, ["cache size"]),
    ("cache-max-size-unit", ["mount", "file://{cloud}", "{mnt}", "--cache-max-size", "10X"], None, ["cache size"]),
    ("write-back-words", ["mount", "file://{cloud}", "{mnt}", "--write-back", "soon"], None, ["write-back"]),
    ("fuse-max-read", ["mount", "file://{cloud}", "{mnt}", "-o", "max_read=65536"], None, ["max_read"]),
    ("toml-syntax", ["mount", "--config", "{config}", "{mnt}"], '[cache\ndir = "x"\n', ["not valid TOML"]),
    ("toml-missing", ["mount", "--config", "{tmp}/nothing.toml", "{mnt}"], None, ["does not exist"]),
    ("toml-unknown-sync-key", ["mount", "--config", "{config}", "{mnt}"],
     '[sync]\nwrite_bak = 5\n' + _REMOTE_OK, ["unknown", "write_bak"]),
    ("toml-unknown-remote-key", ["mount", "--config", "{config}", "{mnt}"],
     '[remotes.a]\nurl = "file://{cloud}"\nendpoint = "http://x"\n', ["unknown", "endpoint"]),
    ("toml-unknown-top-level-key", ["mount", "--config", "{config}", "{mnt}"],
     'poll_interval = 10\n' + _REMOTE_OK, ["unknown", "poll_interval"]),
    ("toml-unknown-section", ["mount", "--config", "{config}", "{mnt}"],
     '[caches]\ndir = "/tmp"\n' + _REMOTE_OK, ["unknown", "caches"]),
    ("toml-no-remotes", ["mount", "--config", "{config}", "{mnt}"], '[sync]\nwrite_back = 5\n', ["remotes"]),
    ("toml-and-url", ["mount", "file://{cloud}", "{mnt}", "--config", "{config}"], _REMOTE_OK, ["not both"]),
    ("no-remote", ["mount", "{mnt}"], None, ["REMOTE"]),
    ("usage-no-mountpoint", ["mount"], None, ["mountpoint"]),
    ("usage-unknown-option", ["mount", "file://{cloud}", "{mnt}", "--frobnicate"], None, ["--frobnicate"]),
    ("usage-unknown-command", ["frobnicate"], None, ["frobnicate"]),
    ("usage-no-command", [], None, ["COMMAND"]),
    ("status-not-mounted", ["status", "{mnt}"], None, ["no cloudgw daemon serves"]),
    ("sync-not-mounted", ["sync", "{mnt}", "--wait"], None, ["no cloudgw daemon serves"]),
    ("umount-not-mounted", ["umount", "{mnt}"], None, ["no cloudgw daemon serves"]),
]


@pytest.mark.parametrize("argv, toml, needles", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_clean_line(tmp_path: Path, argv: list[str], toml: str | None, needles: list[str]):
    cloud, mnt = tmp_path / "cloud", tmp_path / "mnt"
    cloud.mkdir()
    mnt.mkdir()
    (tmp_path / "a-file").write_text("not a directory")
    subst = {"cloud": str(cloud), "mnt": str(mnt), "tmp": str(tmp_path), "config": str(tmp_path / "cloudgw.toml")}
    if toml is not None:
        _toml(tmp_path, toml.format(**subst))
    args = [a.format(**subst) for a in argv]
    if args[:1] == ["mount"] and "--cache-dir" not in args:
        args += ["--cache-dir", str(tmp_path / "cache")]
    try:
        assert_clean_failure(cli(*args), *needles, mnt=mnt)
        assert os.listdir(mnt) == []
    finally:
        if os.path.ismount(mnt):  # it wrongly mounted: do not leave it behind
            Gateway("", mnt, tmp_path / "cache").force_cleanup()


@pytest.mark.parametrize("via_symlink", [False, True], ids=["same-path", "via-symlink"])
def test_busy_mountpoint_is_refused_and_first_mount_keeps_working(file_gw: Gateway, tmp_path: Path, via_symlink: bool):
    target = file_gw.mnt
    if via_symlink:
        target = tmp_path / "link-to-mnt"
        target.symlink_to(file_gw.mnt)
    (file_gw.mnt / "before").write_text("still here")
    first = daemon_pids(file_gw.mnt)
    assert len(first) == 1
    proc = cli("mount", f"file://{tmp_path / 'cloud'}", str(target), "--cache-dir", str(tmp_path / "cache2"))
    assert_clean_failure(proc, "already")
    assert os.path.ismount(file_gw.mnt)
    assert set(daemon_pids(file_gw.mnt) + daemon_pids(target)) == set(first)
    assert (file_gw.mnt / "before").read_text() == "still here"
    (file_gw.mnt / "after").write_text("works")
    file_gw.sync()
    assert file_gw.backend.view.get("after") == b"works"


def test_missing_bucket(s3_backend, tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = cli("mount", "s3://no-such-bucket/data", str(mnt), "--cache-dir", str(tmp_path / "cache"), "--path-style",
               env=s3_backend.env)
    assert_clean_failure(proc, "no-such-bucket", "does not exist", mnt=mnt)


@pytest.mark.parametrize("wrong", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"])
def test_wrong_credentials_never_show_the_secret(s3_backend, tmp_path: Path, wrong: str):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    bucket = s3_backend.url.removeprefix("s3://").split("/")[0]
    secret = "Wr0ngS3cretKeyDoNotPrint/abcdefghijklmnop" if wrong == "AWS_SECRET_ACCESS_KEY" else None
    env = {**s3_backend.env, wrong: secret or "AKIANOTAKNOWNKEY0000"}
    proc = cli("mount", s3_backend.url, str(mnt), "--cache-dir", str(tmp_path / "cache"), "--path-style", env=env)
    line = assert_clean_failure(proc, bucket, "AWS_ACCESS_KEY_ID", mnt=mnt)
    real_secret = s3_backend.env["AWS_SECRET_ACCESS_KEY"]
    log = (tmp_path / "cache" / "cloudgw.log").read_text()
    for text in (line, proc.stdout, log):
        assert real_secret not in text
        if secret:
            assert secret not in text


# -- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["mount"], ["sync"], ["status"], ["umount"]],
                         ids=["cloudgw", "mount", "sync", "status", "umount"])
def test_help(argv: list[str]):
    proc = cli(*argv, "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: cloudgw" + (f" {argv[0]}" if argv else ""))
    if argv == ["mount"]:
        for option in ("--config", "--cache-dir", "--write-back", "--poll-interval", "--read-only"):
            assert option in proc.stdout


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"cloudgw {__version__}"


# -- status, sync, umount -------------------------------------------------------------------------


def _human_counts(text: str) -> dict[str, int]:
    counts = {}
    for key, pattern in {"dirty": r"^dirty:\s+(\d+) files?, ", "uploading": r"^uploading:\s+(\d+) files?, ",
                         "pending": r"^pending:\s+(\d+) changes?", "failed": r"^failed:\s+(\d+) files?",
                         "conflicts": r"^conflicts:\s+(\d+)$"}.items():
        m = re.search(pattern, text, re.MULTILINE)
        assert m, f"no {key!r} line in status output:\n{text}"
        counts[key] = int(m.group(1))
    return counts


def test_status_counts_drop_to_zero_around_sync_wait(backend, tmp_path: Path):
    with extra_gateway(backend, tmp_path, "--write-back", "3600") as gw:
        (gw.mnt / "dir").mkdir()
        (gw.mnt / "dir" / "one").write_bytes(b"1" * 1000)
        (gw.mnt / "two").write_bytes(b"2" * 3000)
        before = gw.status()
        assert before["dirty_files"] == 2 and before["dirty_bytes"] == 4000
        assert before["pending"] >= 2 and before["pending_bytes"] == 4000
        human = cli("status", str(gw.mnt))
        assert human.returncode == 0 and human.stderr == ""
        assert _human_counts(human.stdout) == {"dirty": 2, "uploading": 0, "pending": before["pending"],
                                               "failed": 0, "conflicts": 0}
        assert "3.9 KiB" in human.stdout
        assert gw.backend.view.files() == {}  # write-back 3600: nothing uploaded yet

        proc = cli("sync", str(gw.mnt), "--wait", "--timeout", "60", timeout=120)
        assert proc.returncode == 0, proc.stderr

        after = gw.status()
        assert (after["dirty_files"], after["uploading_files"], after["pending"], after["pending_bytes"],
                after["failed_files"]) == (0, 0, 0, 0, 0)
        assert _human_counts(cli("status", str(gw.mnt)).stdout) == {
            "dirty": 0, "uploading": 0, "pending": 0, "failed": 0, "conflicts": 0}
        assert gw.backend.view.files() == {"dir/one": 1000, "two": 3000}
        wait_for(lambda: gw.status()["last_poll"] is not None)
        assert re.search(r"^last poll:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cli("status", str(gw.mnt)).stdout, re.M)


def test_umount_uploads_what_is_pending(backend, tmp_path: Path):
    with extra_gateway(backend, tmp_path, "--write-back", "3600") as gw:
        (gw.mnt / "late.txt").write_text("written just before umount")
        assert gw.status()["dirty_files"] == 1
        proc = cli("umount", str(gw.mnt), timeout=120)
        assert proc.returncode == 0 and proc.stderr == ""
        assert not os.path.ismount(gw.mnt)
        wait_for(lambda: not daemon_pids(gw.mnt), timeout=30)
        assert gw.backend.view.files() == {"late.txt": 26}
        assert gw.backend.view.get("late.txt") == b"written just before umount"
        gw.mount()
        assert (gw.mnt / "late.txt").read_text() == "written just before umount"
        assert gw.status()["pending"] == 0


# -- a failing upload: visible, bounded waits, kept for the next mount ----------------------------------


class _Immutable:
    """``chattr +i`` on a remote directory: even root cannot create files in it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> "_Immutable":
        subprocess.run(["chattr", "+i", str(self.path)], check=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["chattr", "-i", str(self.path)], check=True)


_UPLOAD_FAILED = [r"upload of stuck/f(\.txt)? failed \(will retry\)", r"changes still pending"]


def test_failing_upload_is_reported_and_stays_queued(file_backend, tmp_path: Path):
    cloud = file_backend.view.root
    (cloud / "stuck").mkdir()
    with extra_gateway(file_backend, tmp_path, "--write-back", "3600") as gw:
        gw.expected_warnings += _UPLOAD_FAILED
        with _Immutable(cloud / "stuck"):
            (gw.mnt / "stuck" / "f.txt").write_text("cannot be uploaded yet")
            (gw.mnt / "fine.txt").write_text("fine")
            proc = cli("sync", str(gw.mnt), "--wait", "--timeout", "3")
            assert proc.returncode == 1
            assert "1 changes still pending" in proc.stderr and "Traceback" not in proc.stderr
            status = gw.status()
            assert status["failed_files"] == 1 and status["pending"] == 1
            assert status["failed"][0]["path"] == "stuck/f.txt"
            assert "not permitted" in status["failed"][0]["error"]
            human = cli("status", str(gw.mnt)).stdout
            assert _human_counts(human)["failed"] == 1
            assert re.search(r"^  stuck/f\.txt: .*not permitted", human, re.M)
            assert file_backend.view.files() == {"fine.txt": 4}

            proc = cli("umount", str(gw.mnt), "--timeout", "2", timeout=90)
            assert proc.returncode == 1
            assert proc.stderr.startswith("cloudgw: unmounted with 1 changes still pending")
            assert not os.path.ismount(gw.mnt)
            wait_for(lambda: not daemon_pids(gw.mnt), timeout=30)
        gw.mount()  # the queue survived the unmount; now the remote accepts it
        gw.sync()
        assert file_backend.view.get("stuck/f.txt") == b"cannot be uploaded yet"
        assert gw.status()["failed_files"] == 0


def test_sync_wait_client_going_away_does_not_kill_the_daemon(file_backend, tmp_path: Path):
    """A user presses Ctrl-C on ``cloudgw sync --wait`` while an upload keeps failing."""
    cloud = file_backend.view.root
    (cloud / "stuck").mkdir()
    with extra_gateway(file_backend, tmp_path, "--write-back", "3600") as gw:
        gw.expected_warnings += _UPLOAD_FAILED
        with _Immutable(cloud / "stuck"):
            (gw.mnt / "stuck" / "f").write_text("pending")
            answers = request(gw.mnt, {"op": "sync", "wait": True}, timeout=30)
            assert next(answers)["progress"]
            answers.close()  # the client disconnects; the daemon's next progress line finds the socket closed
            # outlive the daemon's next progress tick (0.5 s) with a real command, then check it still serves
            proc = cli("sync", str(gw.mnt), "--wait", "--timeout", "2")
            assert proc.returncode == 1 and "still pending" in proc.stderr
            assert os.path.ismount(gw.mnt) and len(daemon_pids(gw.mnt)) == 1
            assert gw.status()["pending"] == 1
            assert (gw.mnt / "stuck" / "f").read_text() == "pending"
        gw.sync()
        assert file_backend.view.get("stuck/f") == b"pending"


# -- several remotes from a TOML file -----------------------------------------------------------------


def test_config_file_with_two_remotes(moto_server, tmp_path: Path):
    files = make_backend("file", tmp_path, None)
    s3 = make_backend("s3", tmp_path, moto_server)
    bucket, prefix = s3.url.removeprefix("s3://").split("/", 1)
    mnt, cache = tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    config = _toml(tmp_path, f"""
[cache]
dir = "{cache}"
max_size = "1G"

[sync]
write_back = 0.2
poll_interval = 1

[remotes.local]
url = "{files.url}"

[remotes.cloud]
url = "s3://{bucket}/{prefix}"
endpoint_url = "{moto_server.endpoint_url}"
path_style = true
""")
    # credentials only through the environment; a wrong AWS_ENDPOINT_URL proves the file's endpoint_url is used
    env = {k: v for k, v in s3.env.items() if k != "AWS_ENDPOINT_URL"}
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
    gw = Gateway("(config)", mnt, cache, env=env)
    try:
        run_cli("mount", "--config", str(config), str(mnt), "--log-level", "DEBUG", env=env)
        assert os.path.ismount(mnt)
        assert sorted(os.listdir(mnt)) == ["cloud", "local"]
        assert all((mnt / n).is_dir() for n in ("cloud", "local"))

        (mnt / "local" / "a.txt").write_text("for the directory")
        (mnt / "cloud" / "sub").mkdir()
        (mnt / "cloud" / "sub" / "b.txt").write_text("for the bucket")
        (mnt / "local" / "moving.txt").write_text("crosses remotes")

        # the top level is fixed by the configuration
        refused = {
            "create": lambda: open(mnt / "top.txt", "w"),
            "mkdir": lambda: os.mkdir(mnt / "newdir"),
            "symlink": lambda: os.symlink("local", mnt / "alias"),
            "rename-remote": lambda: os.rename(mnt / "local", mnt / "renamed"),
            "rmdir-remote": lambda: os.rmdir(mnt / "cloud"),
            "move-to-top": lambda: os.rename(mnt / "local" / "a.txt", mnt / "a.txt"),
        }
        for what, op in refused.items():
            with pytest.raises(OSError) as exc:
                op()
            assert exc.value.errno == errno.EPERM, f"{what}: {exc.value}"
        # between two remotes: EXDEV, so mv copies and deletes as between two filesystems
        with pytest.raises(OSError) as exc:
            os.rename(mnt / "local" / "moving.txt", mnt / "cloud" / "moving.txt")
        assert exc.value.errno == errno.EXDEV
        subprocess.run(["mv", str(mnt / "local" / "moving.txt"), str(mnt / "cloud" / "moving.txt")], check=True)
        assert sorted(os.listdir(mnt)) == ["cloud", "local"]

        gw.sync()
        assert files.view.files() == {"a.txt": 17}
        assert files.view.get("a.txt") == b"for the directory"
        assert s3.view.files() == {"sub/b.txt": 14, "moving.txt": 15}
        assert s3.view.get("sub/b.txt") == b"for the bucket"
        assert gw.status()["pending"] == 0

        # and outside changes of either remote show up in the right folder
        files.view.put("outside.txt", b"x")
        s3.view.put("outside.txt", b"yy")
        wait_for(lambda: (mnt / "local" / "outside.txt").exists() and (mnt / "cloud" / "outside.txt").exists())
        assert (mnt / "cloud" / "outside.txt").read_bytes() == b"yy"
        gw.umount()
    finally:
        gw.force_cleanup()
    bad = gw.bad_log_lines()
    assert not bad, "daemon logged unexpected warnings:\n" + "\n".join(bad[:20])


# -- read-only --------------------------------------------------------------------------------------


def test_read_only_mount_refuses_writes_with_erofs(backend, tmp_path: Path):
    backend.view.put("docs/readme.txt", b"read me")
    with extra_gateway(backend, tmp_path, "--read-only") as gw:
        mnt = gw.mnt
        assert (mnt / "docs" / "readme.txt").read_bytes() == b"read me"
        attempts = {
            "create": lambda: open(mnt / "new.txt", "w"),
            "open-for-write": lambda: open(mnt / "docs" / "readme.txt", "r+b"),
            "append": lambda: open(mnt / "docs" / "readme.txt", "ab"),
            "mkdir": lambda: os.mkdir(mnt / "newdir"),
            "unlink": lambda: os.unlink(mnt / "docs" / "readme.txt"),
            "rmdir": lambda: os.rmdir(mnt / "docs"),
            "rename": lambda: os.rename(mnt / "docs" / "readme.txt", mnt / "docs" / "moved.txt"),
            "chmod": lambda: os.chmod(mnt / "docs" / "readme.txt", 0o600),
            "utime": lambda: os.utime(mnt / "docs" / "readme.txt", (0, 0)),
            "symlink": lambda: os.symlink("docs", mnt / "link"),
            "setxattr": lambda: os.setxattr(mnt / "docs" / "readme.txt", "user.x", b"1"),
            "truncate": lambda: os.truncate(mnt / "docs" / "readme.txt", 0),
        }
        for what, op in attempts.items():
            with pytest.raises(OSError) as exc:
                op()
            assert exc.value.errno == errno.EROFS, f"{what}: {exc.value}"
        cp = subprocess.run(["cp", "/etc/hostname", str(mnt / "copied")], capture_output=True, text=True)
        assert cp.returncode != 0 and "Read-only file system" in cp.stderr
        assert (mnt / "docs" / "readme.txt").read_bytes() == b"read me"
        assert gw.status()["pending"] == 0
        # the remote's own changes still show up
        backend.view.put("docs/new-outside.txt", b"hello")
        wait_for(lambda: (mnt / "docs" / "new-outside.txt").exists())
        assert (mnt / "docs" / "new-outside.txt").read_bytes() == b"hello"
    assert backend.view.files() == {"docs/readme.txt": 7, "docs/new-outside.txt": 5}
