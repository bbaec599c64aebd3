"""Running the gateway in the foreground, or as a daemon that reports readiness.

``run_daemon`` forks before anything opens a socket or a thread.  The child
detaches (setsid, stdio to /dev/null, logging to ``<cache-dir>/cloudgw.log``)
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

import logging
import os
import sys
from typing import Callable

from cloudgw.config import MountConfig
from cloudgw.errors import UserError

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
    config.validate()
    if not os.path.exists("/dev/fuse"):
        raise UserError("/dev/fuse is missing: load the fuse kernel module (modprobe fuse)")


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
    for fd in (0, 1, 2):
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
