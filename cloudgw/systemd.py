"""Running under systemd: readiness, status and stop progress, watchdog, journal logging.

The notify protocol (sd_notify(3)) is one datagram of ``KEY=VALUE`` lines to the
AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract
namespace).  Without that variable every call is a no-op, so the daemon calls
the notifier unconditionally.  A send never raises: systemd going away must not
take the mount with it (a failed send is logged once at DEBUG).  A datagram to
a local socket does not block in practice; a one-second timeout bounds it anyway.

What the gateway sends and when (``cloudgw.app`` does the sending):

- ``READY=1`` once a ``stat`` of the mountpoint has been answered through FUSE,
  so units ordered after us (smbd, nfs-server) find a working mount;
- ``STATUS=...`` every few seconds while mounted: what is pending upload;
- ``STOPPING=1`` when a stop begins (SIGTERM, ``cloudgw umount``, an unmount),
  then ``EXTEND_TIMEOUT_USEC`` every few seconds while pending uploads drain,
  so a long drain is not killed by ``TimeoutStopSec`` (the drain itself is
  bounded by ``drain_timeout``; what is left stays queued on disk), and once
  more after it, for the unmount and a clean close;
- ``WATCHDOG=1`` at half of ``WatchdogSec`` from a trio task: a stuck event loop
  stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to the socket systemd gave us, if any."""

    def __init__(self, address: str | None) -> None:
        self._address = "\0" + address[1:] if address and address.startswith("@") else address
        self._failed = False

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> None:
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(1.0)
                # "replace": a path that is not UTF-8 (lone surrogates) must not raise, and
                # systemd ignores a STATUS that is not valid UTF-8
                sock.sendto("\n".join(fields).encode(errors="replace"), self._address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.debug("cannot notify systemd at %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def extend_timeout(self, seconds: float, status: str) -> None:
        self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between pings systemd expects (``WatchdogSec``), or None: half of
    ``$WATCHDOG_USEC``, if it is set for this very process (``$WATCHDOG_PID``)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2_000_000


def stderr_is_journal() -> bool:
    """True when stderr is connected to the journal (systemd sets ``$JOURNAL_STREAM``
    to that stream's device:inode; it is inherited, so it is checked against fd 2)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = stream.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


class JournalFormatter(logging.Formatter):
    """``<N>`` syslog priority prefixes that journald turns into the entry's priority
    (sd-daemon(3)); every line of a multi-line record (a traceback) gets it, since
    journald makes each line its own entry.  No timestamp: the journal adds one."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in _PRIORITIES if record.levelno >= level), 7)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())
