"""The composition root: builds every part, owns the one trio nursery, mounts.

Lifecycle:
  1. open the remote and ``check()`` it (missing bucket, bad credentials: UserError);
  2. open the metadata store and cache, recover from an unclean shutdown;
  3. ``pyfuse3.init`` (mount); once a ``stat`` of the mountpoint is answered
     through FUSE, raise the mount's read-ahead and report ready (to the waiting
     ``cloudgw mount`` and to systemd: ``cloudgw.systemd``);
  4. serve until unmounted (``fusermount3 -u``), a signal (SIGINT/SIGTERM), or
     ``cloudgw umount``;
  5. drain the upload queue (bounded by ``drain_timeout``, telling systemd the
     stop is making progress; what is left stays queued on disk for the next
     mount), unmount, close the stores cleanly.

Crash behaviour: ``clean_shutdown`` in the metadata store is cleared while
mounted and set at the end of 5; without it the next start distrusts the clean
cache's block maps (see ``cache.files``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import resource
import signal
import sqlite3
from pathlib import Path
from typing import Any, Awaitable, Callable

import pyfuse3
import trio

from cloudgw.cache.checksums import Checksummer
from cloudgw.cache.evictor import EvictionPolicy, Evictor
from cloudgw.cache.files import CacheFiles
from cloudgw.config import MountConfig
from cloudgw.control import ControlServer
from cloudgw.errors import UserError
from cloudgw.gc_pauses import freeze_startup_heap
from cloudgw.heap_trim import HeapTrimmer
from cloudgw.filesystem import FileSystem
from cloudgw.filesystem.eviction import evictable, evicted, is_clean
from cloudgw.filesystem.recovery import recover
from cloudgw.fuse.operations import FuseOperations
from cloudgw.memory_snapshots import MemorySnapshots
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.base import Remote
from cloudgw.remotes.instrumented import Observer
from cloudgw.remotes.open import open_remotes
from cloudgw.remotes.health import LOGIN_REQUIRED, HealthBoard
from cloudgw.remotes.registry import Common, default_poll_interval
from cloudgw.remotes.router import RouterRemote
from cloudgw.sync.context import SyncContext
from cloudgw.sync.engine import SyncEngine, SyncSettings
from cloudgw.sync.queue_view import queue_files
from cloudgw.systemd import Notifier, watchdog_interval

log = logging.getLogger(__name__)

REMOTE_STATE = "remotes"  # cache_dir/remotes/NAME: what a remote keeps for itself (crypt: sizes)
STATUS_INTERVAL = 5.0  # seconds between systemd status lines (and stop-timeout extensions)
STOP_EXTENSION = 30.0  # each extension gives the stop this long to send the next
CHECKSUM_DRAIN = 30.0  # at a stop, after the uploads: at most this long finishing block checksums


def _changes(count: int) -> str:
    """``1 change`` / ``3 changes`` for status lines an administrator reads."""
    return f"{count} change" if count == 1 else f"{count} changes"


def build_remote(config: MountConfig, observer: Observer | None = None, health: HealthBoard | None = None) -> Remote:
    common = Common(timeout=config.remote_timeout, state_dir=config.cache_dir / REMOTE_STATE, health=health)
    return with_test_faults(open_remotes(config.remotes, common, observer=observer))


def with_test_faults(remote: Remote) -> Remote:
    """Test hook, like ``CLOUDGW_CRASH_AT``: ``CLOUDGW_FAULTS=spec`` wraps the remote in a
    ``FaultyRemote`` (spec syntax: ``FaultPlan.from_spec``) so reliability tests can run
    real programs on a real mount of a misbehaving remote.  Unset: the remote as is."""
    spec = os.environ.get("CLOUDGW_FAULTS")
    if not spec:
        return remote
    from cloudgw.remotes.faulty import FaultPlan, FaultyRemote  # test-only code stays unloaded otherwise

    try:
        plan = FaultPlan.from_spec(spec)
    except ValueError as exc:
        raise UserError(f"CLOUDGW_FAULTS: {exc}") from None
    log.info("fault injection on (CLOUDGW_FAULTS=%s)", spec)
    return FaultyRemote(remote, plan)


def remote_identity(config: MountConfig) -> str:
    """What the cache dir belongs to (no secrets): its placements only make sense there."""
    return json.dumps({name: {"url": s.url, "endpoint_url": s.options.get("endpoint_url")}
                       for name, s in sorted(config.remotes.items())}, sort_keys=True)


def lock_cache_dir(cache_dir: Path) -> int:
    """Hold an exclusive lock on the cache dir for the process's lifetime.

    Two daemons (or a daemon and ``cloudgw fsck``) on one cache dir would
    corrupt each other's state; the lock is released by the kernel when the
    process exits, even after kill -9.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"cache dir {cache_dir} is in use by a running cloudgw (unmount it first, "
                        "or give this mount its own --cache-dir)") from None
    return fd


def check_cache_owner(store: MetadataStore, config: MountConfig) -> None:
    identity = remote_identity(config)
    owner = store.get_kv("remote_identity")
    if owner is not None and owner != identity:
        urls = ", ".join(v["url"] for v in json.loads(owner).values())
        raise UserError(f"cache dir {config.cache_dir} belongs to {urls}: use another --cache-dir for this remote")
    store.set_kv("remote_identity", identity)
    # what fsck needs to build the same remotes (options may change between mounts: a new password file)
    store.set_kv("remote_specs", json.dumps({name: spec.to_json() for name, spec in config.remotes.items()}))
    store.set_kv("remote_timeout", str(config.remote_timeout))


def fuse_options(config: MountConfig) -> set[str]:
    options = set(pyfuse3.default_options)
    options |= {f"fsname=cloudgw:{_describe(config)}", "subtype=cloudgw", "default_permissions"}
    if os.geteuid() == 0:
        options.add("allow_other")  # so SMB/NFS servers and other users can use the mount
    if config.read_only:
        options.add("ro")
    options |= set(config.fuse_options)
    if any(o.startswith("fsname=") for o in config.fuse_options):  # given (mount.cloudgw: the fstab's source)
        options.discard(f"fsname=cloudgw:{_describe(config)}")
    return options


def _describe(config: MountConfig) -> str:
    urls = [s.url for s in config.remotes.values()]
    text = urls[0] if len(urls) == 1 else f"{len(urls)}-remotes"
    return text.replace(",", "_").replace(" ", "_")


def raise_readahead(mountpoint: Path, kib: int = 1024) -> None:
    """Bigger kernel read requests: ~1.1 -> ~1.8 GB/s for cached reads (DESIGN)."""
    dev = os.stat(mountpoint).st_dev
    path = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    try:
        path.write_text(str(kib))
    except OSError as exc:
        log.info("could not raise read-ahead (%s): %s", path, exc.strerror)


def raise_open_files_limit() -> None:
    """Take the hard limit of open files as the soft one.  Started from a shell the daemon gets
    1024, yet it holds a cache file per open handle, 128 spare cache files (``cache.spares``)
    and its connections; the hard limit is what the administrator allows (the unit sets
    65536).  Go programs such as rclone do the same at start."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.info("could not raise the open files limit from %d to %d: %s", soft, hard, exc)


class Gateway:
    """One mounted gateway; ``run`` serves until unmounted."""

    def __init__(self, config: MountConfig) -> None:
        self.config = config
        self._stop = trio.Event()
        self._drained: bool | None = None
        self._stopping = False  # a stop (signal, umount, unmount) has begun
        self.notifier = Notifier.from_environment()
        self.health = HealthBoard()  # remotes report "login required" / "throttled" here (cloudgw status)

    async def run(self, ready: Callable[[], None] = lambda: None) -> None:
        config = self.config
        raise_open_files_limit()
        metrics = None
        if config.metrics_addr:  # prometheus_client is imported only when metrics are asked for
            from cloudgw.metrics import Metrics
            metrics = Metrics(config.remotes)
            metrics.listen(config.metrics_addr)  # before anything else: a port in use is a UserError
        snapshots = MemorySnapshots.from_environment()  # a diagnostic hook, off unless set
        trimmer = HeapTrimmer.from_environment()
        if snapshots is not None:
            snapshots.start()
        health = self.health
        remote = build_remote(config, metrics, health)
        await remote.check()
        lock_fd = lock_cache_dir(config.cache_dir)
        os.chmod(config.cache_dir, 0o700)
        try:
            store = MetadataStore(config.cache_dir / "metadata.db")
        except sqlite3.DatabaseError as exc:
            os.close(lock_fd)
            raise UserError(f"the metadata database in {config.cache_dir} is damaged ({exc}); run 'cloudgw fsck"
                            f" {config.cache_dir}', then restore the cache dir or mount with a new one") from None
        try:
            check_cache_owner(store, config)
        except UserError:
            store.close()
            os.close(lock_fd)
            raise
        clean = store.get_kv("clean_shutdown") != "0"
        cache = CacheFiles(config.cache_dir / "cache", trust_maps=clean, keep_maps=store.inos_with_unsynced_data())
        recover(store, cache)
        store.set_kv("clean_shutdown", "0")
        send, receive = trio.open_memory_channel(float("inf"))
        ctx = SyncContext(store, cache, remote, send, uid=os.getuid(), gid=os.getgid())
        evictor = Evictor(cache, EvictionPolicy(config.cache_max_size, config.cache_max_age, config.cache_min_free),
                          can_evict=lambda ino: evictable(store, fs.ns.open_count, ino),
                          on_evicted=lambda ino: evicted(store, ino))
        poll_interval = config.poll_interval if config.poll_interval is not None else \
            default_poll_interval([s.url for s in config.remotes.values()])
        engine = SyncEngine(ctx, SyncSettings(write_back_delay=config.write_back, poll_interval=poll_interval,
                                              upload_concurrency=config.upload_concurrency),
                            make_room=evictor.make_room)
        fs = FileSystem(store, cache, engine, read_only=config.read_only, acls=config.acl,
                        fixed_root=remote.capabilities.fixed_root, make_room=evictor.make_room)
        ops = FuseOperations(fs)
        if metrics is not None:
            metrics.watch(store=store, cache=cache, engine=engine, data=fs.data, cache_max_size=config.cache_max_size)
        checksummer = Checksummer(cache, lambda ino: is_clean(store, ino))
        control = ControlServer(config.mountpoint, lambda req, reply: self._control(engine, req, reply))
        control_sock = control.bind()
        self.engine = engine
        # signed in again: what waited is retried now (a throttle's end is not: each upload's own backoff
        # spreads them out, instead of a burst that invites the next throttle)
        health.on_recovered(lambda name, state: engine.retry_failed() if state == LOGIN_REQUIRED else None)
        mounted = False
        if metrics is not None:
            metrics.gc_pauses.install()  # removed in the ``finally`` below
        try:
            pyfuse3.init(ops, str(config.mountpoint), fuse_options(config))
            mounted = True
            async with trio.open_nursery() as nursery:
                await nursery.start(engine.run)
                await nursery.start(ops.run_invalidations, receive)
                await nursery.start(evictor.run)
                await nursery.start(checksummer.run)
                await nursery.start(trimmer.run)  # freed memory back to the system after bursts
                await nursery.start(control.run, control_sock)
                if metrics is not None:
                    await nursery.start(metrics.serve)
                if snapshots is not None:
                    await nursery.start(snapshots.run)
                nursery.start_soon(self._signals)
                nursery.start_soon(self._stopper)
                nursery.start_soon(self._announce_ready, ready,
                                   (lambda: None) if config.read_only else cache.spares.start)
                await pyfuse3.main()
                if self._drained is None:
                    self._drained = await self._drain_for_stop(config.drain_timeout)
                with trio.move_on_after(CHECKSUM_DRAIN):
                    await checksummer.drain()
                nursery.cancel_scope.cancel()
        finally:
            if metrics is not None:
                metrics.gc_pauses.remove()
            if snapshots is not None:
                snapshots.stop()
            if mounted:
                pyfuse3.close(unmount=True)
            control_sock.close()
            cache.close()
            store.set_kv("clean_shutdown", "1")
            store.close()
            await remote.aclose()

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("received %s", signal.Signals(signum).name)
                self._stop.set()

    async def _stopper(self) -> None:
        await self._stop.wait()
        self._drained = await self._drain_for_stop(self.config.drain_timeout)
        pyfuse3.terminate()

    async def _announce_ready(self, ready: Callable[[], None], after_mount: Callable[[], None]) -> None:
        """Ready once the mount answers: the stat in ``raise_readahead`` goes through FUSE,
        which needs ``pyfuse3.main()`` serving, hence a thread.  Then ``after_mount`` starts
        what the mount must not wait for (the spare cache files' filler), and, under systemd,
        the status line is kept current and its watchdog fed (see ``cloudgw.systemd``)."""
        config = self.config
        # abandon_on_cancel: a stop that ends pyfuse3.main() before the stat is answered must
        # not wait for it (nothing answers it until pyfuse3.close, after this nursery, unmounts)
        await trio.to_thread.run_sync(raise_readahead, config.mountpoint, abandon_on_cancel=True)
        log.info("mounted %s on %s", ", ".join(s.url for s in config.remotes.values()), config.mountpoint)
        ready()
        after_mount()
        freeze_startup_heap()  # full collections stop walking the libraries' own objects (cloudgw.gc_pauses)
        if self._stopping or not self.notifier.enabled:
            return  # a stop began meanwhile: systemd heard STOPPING=1, READY=1 would contradict it
        self.notifier.ready(self._status_line())
        interval = watchdog_interval()
        async with trio.open_nursery() as nursery:
            if interval is not None:
                nursery.start_soon(self._feed_watchdog, interval)
            while True:
                await trio.sleep(STATUS_INTERVAL)
                if self._stopping:  # the stop's own STATUS lines take over; a "mounted" one would undo them
                    break
                self.notifier.status(self._status_line())
            nursery.cancel_scope.cancel()

    async def _feed_watchdog(self, interval: float) -> None:
        """Pings from the event loop itself: a loop stuck in a blocking call stops them."""
        while True:
            self.notifier.watchdog()
            await trio.sleep(interval)

    def _status_line(self) -> str:
        """One line for ``systemctl status``; cheap (queue counts, no table scan)."""
        failed = self.engine.queue.counts()[2]
        pending = self.engine.pending()
        text = f"mounted on {self.config.mountpoint}; {_changes(pending)} pending upload" if pending else \
            f"mounted on {self.config.mountpoint}; everything uploaded"
        if failed:
            text += f", {failed} failing (cloudgw status)"
        return text

    async def _drain_for_stop(self, timeout: float) -> bool:
        """Upload what is pending before unmounting, at most ``timeout`` seconds.

        systemd hears ``STOPPING=1`` and then, while the drain lasts, a timeout
        extension every few seconds: a stop that is uploading a large file is not
        killed at ``TimeoutStopSec``.  The extensions come from the event loop, not from
        upload progress: a drain stuck on a remote that does not answer is extended too,
        until ``timeout`` ends it; only a daemon whose loop hangs sends none and is killed.
        """
        self._stopping = True
        log.info("stopping: uploading what is pending (up to %gs)", timeout)
        self.notifier.stopping(f"stopping: {_changes(self.engine.pending())} left to upload")
        async with trio.open_nursery() as nursery:
            async def extend() -> None:
                while True:
                    left = _changes(self.engine.pending())
                    self.notifier.extend_timeout(STOP_EXTENSION, f"stopping: {left} left to upload")
                    await trio.sleep(STATUS_INTERVAL)

            if self.notifier.enabled:
                nursery.start_soon(extend)
            drained = await self.engine.drain(timeout)
            nursery.cancel_scope.cancel()
        if not drained:
            log.warning("%d changes still pending; they stay queued and are uploaded at the next mount",
                        self.engine.pending())
        # what follows (block checksums, unmount, closing the stores) gets its own extension:
        # the last one above may be nearly used up, and a kill now skips the clean shutdown
        self.notifier.extend_timeout(CHECKSUM_DRAIN + STOP_EXTENSION, "stopping: unmounting" if drained else
                                     f"stopping: {self.engine.pending()} changes stay queued for the next start")
        return drained

    async def _control(self, engine: SyncEngine, req: dict[str, Any], reply: Callable[[dict], Awaitable[None]]) -> None:
        op = req.get("op")
        if op == "status":
            await reply({**engine.status(), "remotes": self.health.snapshot(),
                         **(queue_files(engine) if req.get("files") else {})})
        elif op == "sync":
            engine.sync_now()
            if not req.get("wait"):
                await reply({"started": True})
                return
            timeout = float(req.get("timeout") or 0) or None
            deadline = trio.current_time() + timeout if timeout else float("inf")
            drained = False
            async with trio.open_nursery() as nursery:
                async def drain() -> None:
                    nonlocal drained
                    drained = await engine.drain(max(0.0, deadline - trio.current_time()) if timeout else 1e9)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(drain)
                while True:
                    status = engine.status()
                    await reply({"progress": True, "pending": status["pending"], "pending_bytes": status["pending_bytes"]})
                    await trio.sleep(0.5)
            await reply({"done": True, "drained": drained, **engine.status()})
        elif op == "poll":
            await engine.poll_now()
            await reply({"done": True})
        elif op == "umount":
            timeout = float(req.get("timeout", self.config.drain_timeout))
            drained = await self._drain_for_stop(timeout)
            self._drained = drained
            await reply({"done": True, "drained": drained, "pending": engine.pending()})
            pyfuse3.terminate()
        else:
            await reply({"error": f"unknown request {op!r}"})
