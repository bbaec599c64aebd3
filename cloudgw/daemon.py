"""Running the gateway in the foreground, or as a daemon that reports readiness.

``run_daemon`` forks before anything opens a socket or a thread.  The child
detaches (setsid, stdio to /dev/null, logging to ``<cache-dir>/cloudgw.log``, or
to the journal when stderr is the journal: ``cloudgw.systemd``)
and tells the parent through a pipe either "ready" (the mount is up) or the
one-line error that stopped it; the parent prints that and exits accordingly,
so ``cloudgw mount`` returns only when the mount is usable or has failed.

The parent stays light: it checks what needs neither the network nor the
remote's client library (``check_before_mount``), forks, and waits.  Importing
trio, pyfuse3 and botocore and building the remote happen once, in the child;
done in the parent they would be inherited by the child for free, but the
parent would then spend ~0.2 s tearing that interpreter down before its exit
(that is, before ``cloudgw mount`` returns).  A bad remote URL is therefore
reported by the child, through the pipe, like a missing bucket.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

from cloudgw.config import MountConfig
from cloudgw.errors import UserError
from cloudgw.systemd import stderr_is_journal

log = logging.getLogger(__name__)


def _unwrap_user_error(exc: BaseException) -> UserError | None:
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _unwrap_user_error(sub)
            if found is not None:
                return found
    return None


def check_before_mount(config: MountConfig) -> None:
    """What can be checked cheaply before forking, for a fail-early CLI (the
    remote URL is checked when the daemon builds the remote: see above)."""
    clear_dead_mount(config.mountpoint)
    config.validate()
    if not os.path.exists("/dev/fuse"):
        raise UserError("/dev/fuse is missing: load the fuse kernel module (modprobe fuse)")


def clear_dead_mount(mountpoint: Path) -> None:
    """A cloudgw daemon that died (kill -9, OOM) leaves its FUSE mount behind, answering
    ENOTCONN ("transport endpoint is not connected"); detach it (lazily: programs still
    holding it get errors, not a hang) so a restart (systemd's ``Restart=``) can mount
    again.  Its pending data is safe in the cache dir and is uploaded after the remount.
    Only a mount of ours is touched; anything else stays the user's to unmount."""
    kind = _mount_type(mountpoint)
    if kind is None or not kind.startswith("fuse"):
        return
    try:
        os.statvfs(mountpoint)  # always asks the daemon (a stat of the root may be answered from the kernel's cache)
        return  # alive: validate() reports it busy
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            return
    if kind != "fuse.cloudgw":
        raise UserError(f"mountpoint {mountpoint} is a dead FUSE mount of another program: unmount it "
                        f"(fusermount3 -u {mountpoint})")
    log.warning("mountpoint %s is a dead cloudgw mount (its daemon died): detaching it", mountpoint)
    result = subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"mountpoint {mountpoint} is a dead cloudgw mount and fusermount3 -u -z failed: "
                        f"{result.stderr.strip()}")


def _mount_type(mountpoint: Path) -> str | None:
    """The filesystem type of the mount at ``mountpoint`` (/proc/self/mountinfo)."""
    target = os.path.abspath(mountpoint)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            if _unescape(fields[4]) == target:
                found = fields[dash + 1]  # the last mount on a path is the one seen
    return found


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _serve(config: MountConfig, ready: Callable[[], None]) -> None:
    import trio

    from cloudgw.app import Gateway

    try:
        trio.run(Gateway(config).run, ready)
    except BaseException as exc:
        user_error = _unwrap_user_error(exc)
        if user_error is not None:
            raise user_error from None
        raise


def run_foreground(config: MountConfig) -> int:
    try:
        _serve(config, lambda: None)
    except UserError:
        raise
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("cloudgw stopped by an internal error")
        return 1
    return 0


def run_daemon(config: MountConfig, setup_logging: Callable[[], None]) -> int:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            message = pipe.read().decode(errors="replace").strip()
        if message == "ready":
            return 0
        if message:
            print(f"cloudgw: error: {message}", file=sys.stderr)
        else:
            print(f"cloudgw: error: the daemon exited during startup; see {config.cache_dir / 'cloudgw.log'}",
                  file=sys.stderr)
        return _startup_exit_code(pid)

    os.close(read_fd)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if stderr_is_journal() else (0, 1, 2):  # the journal keeps taking our log
        os.dup2(devnull, fd)
    setup_logging()
    reported = False

    def report(message: str) -> None:
        nonlocal reported
        if not reported:
            reported = True
            os.write(write_fd, message.encode())
            os.close(write_fd)

    code = 0
    try:
        _serve(config, lambda: report("ready"))
    except UserError as exc:
        log.error("%s", exc)
        report(str(exc))
        code = 2
    except BaseException as exc:  # the daemon's last word goes to its log
        log.exception("cloudgw stopped by an internal error")
        report(f"internal error: {exc}")
        code = 1
    finally:
        if not reported:
            report("")
    os._exit(code)


def _startup_exit_code(pid: int) -> int:
    """The failed child's own exit code (2: bad input, as ``UserError`` in the
    parent; else 1).  It exits right after reporting, so this does not block."""
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code > 0 else 1
