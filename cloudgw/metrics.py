"""Prometheus metrics: ``cloudgw mount --metrics-addr HOST:PORT`` serves ``/metrics``.

What is measured, and where:

- counters that move where the work happens: remote requests, failures,
  latency and bytes moved, per remote and operation, reported by the
  ``InstrumentedRemote`` wrapped around each configured remote
  (``remotes.open``; this class is its ``Observer``);
- everything else is read when Prometheus scrapes (``_GatewayCollector``,
  and ``_GcCollector`` for the garbage collector's pauses, which a
  ``gc_pauses.PauseTimer`` counts without locks):
  the sync backlog from the metadata store (one indexed query over the rows
  waiting for sync), the upload queue from the engine, cache use from the cache
  files, cache hits/misses from the filesystem's read counters, conflicts from
  the store's conflict table (so ``cloudgw_conflicts_total`` counts every
  conflict copy this cache dir ever made, across restarts), the last poll from
  the engine's stats.  Nothing is computed between scrapes.

Names, labels and their meaning are listed in the README ("Metrics").  The
``remote`` label is the name of the ``[remotes.NAME]`` table on a multi-remote
mount and empty on a single-remote mount (Prometheus treats an empty label as
absent, so single-remote series carry no remote label at all).  Gauges of the
backlog and the cache are for the whole mount.

Concurrency: the daemon is one trio thread, and the SQLite connection and the
cache index must not be used from another one.  prometheus_client's own
``start_http_server`` answers in a thread of its own, so it is not used: a
small HTTP/1.1 responder runs as a trio task (``serve``) and calls
``generate_latest`` in the trio thread, where the scrape-time collector may
read the store safely.  A scrape therefore holds the event loop for as long as
the collector takes: a few indexed queries and, for cache use, a sum over the
cache index and one ``stat`` per cache file changed since the last count
(``CacheFiles.used_bytes``; reused while younger than 100 times what it cost
to compute).  The counters
are prometheus_client's (thread-safe); they are updated in the trio thread.

The registry is this object's own ``CollectorRegistry``, not the process-global
default: several gateways (tests) never share series.  The process collector
(CPU, memory, open files, start time) is registered on it too.

Addresses: ``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT``; without a host
the loopback address 127.0.0.1.  Any address is accepted (``0.0.0.0`` for a
Prometheus on another machine): the metrics show file counts and sizes and
remote names, not file names.  A port that cannot be bound is a one-line
``UserError`` before the mount.  Crash behaviour: nothing is persisted here.
"""

from __future__ import annotations

import gc
import logging
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, Info, ProcessCollector
from prometheus_client import disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from cloudgw import __version__
from cloudgw.config import parse_listen_addr
from cloudgw.errors import UserError
from cloudgw.gc_pauses import PauseTimer
from cloudgw.metadata.model import FileState

if TYPE_CHECKING:
    from cloudgw.cache.files import CacheFiles
    from cloudgw.filesystem.data import DataOps
    from cloudgw.metadata.store import MetadataStore
    from cloudgw.sync.engine import SyncEngine

log = logging.getLogger(__name__)
disable_created_metrics()  # no ``*_created`` series next to each counter: noise on a dashboard (process-wide)

# remote calls take from a millisecond (a stat on a LAN) to minutes (a multi-GiB upload)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, float("inf"))
# a young-generation collection takes tens of microseconds, a full one up to tens of milliseconds
GC_PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, float("inf"))
MAX_REQUEST_HEAD = 16 << 10
REQUEST_TIMEOUT = 10.0  # seconds a client gets to send its request


@dataclass
class _Sources:
    store: MetadataStore
    cache: CacheFiles
    engine: SyncEngine
    data: DataOps
    cache_max_size: int


class Metrics:
    """The registry and its metrics; the ``Observer`` of the instrumented remotes."""

    def __init__(self, remotes: Iterable[str] = ("",)) -> None:
        self.registry = CollectorRegistry()
        r, labels = self.registry, ["remote", "op"]
        self.requests = Counter("cloudgw_remote_requests", "Remote calls made, by operation", labels, registry=r)
        self.errors = Counter("cloudgw_remote_errors", "Remote calls that failed (not counting answers such as "
                              "'not found' or 'changed meanwhile')", labels, registry=r)
        self.latency = Histogram("cloudgw_remote_request_duration_seconds", "Duration of remote calls, retries "
                                 "included", labels, buckets=LATENCY_BUCKETS, registry=r)
        self.uploaded = Counter("cloudgw_uploaded_bytes", "Bytes stored on the remote by successful uploads "
                                "(server-side copied parts not included)", ["remote"], registry=r)
        self.downloaded = Counter("cloudgw_downloaded_bytes", "Bytes read from the remote", ["remote"], registry=r)
        for name in remotes:  # present (at 0) from the first scrape on
            self.uploaded.labels(remote=name)
            self.downloaded.labels(remote=name)
        Info("cloudgw_build", "cloudgw version", registry=r).info({"version": __version__})
        self.gc_pauses = PauseTimer(GC_PAUSE_BUCKETS)  # installed by the daemon while it serves
        r.register(_GcCollector(self.gc_pauses))
        ProcessCollector(registry=r)
        self._sock: socket.socket | None = None

    # -- Observer (remotes.instrumented) ---------------------------------------------------

    def request(self, remote: str, op: str, seconds: float, failed: bool) -> None:
        self.requests.labels(remote, op).inc()
        self.latency.labels(remote, op).observe(seconds)
        if failed:
            self.errors.labels(remote, op).inc()

    def moved(self, remote: str, direction: str, nbytes: int) -> None:
        if nbytes > 0:
            (self.uploaded if direction == "up" else self.downloaded).labels(remote).inc(nbytes)

    # -- scrape-time values ------------------------------------------------------------------

    def watch(self, *, store: MetadataStore, cache: CacheFiles, engine: SyncEngine, data: DataOps,
              cache_max_size: int) -> None:
        """Register the collector of the gateway's state (once its parts exist)."""
        self.registry.register(_GatewayCollector(_Sources(store, cache, engine, data, cache_max_size)))

    def scrape(self) -> bytes:
        """The text exposition, as served (also handy in tests)."""
        return generate_latest(self.registry)

    # -- the HTTP endpoint ----------------------------------------------------------------------

    def listen(self, addr: str) -> None:
        """Bind ``addr`` now (before the mount: a port in use is a UserError, not a mount
        without metrics); ``serve`` answers on it."""
        host, port = parse_listen_addr(addr)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise UserError(f"metrics address {addr!r}: cannot resolve {host!r} ({exc.strerror})") from None
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(16)
        except OSError as exc:
            sock.close()
            raise UserError(f"cannot serve metrics on {addr}: {exc.strerror} (choose another --metrics-addr "
                            "or [metrics] addr)") from None
        self._sock = sock
        log.info("metrics on http://%s/metrics", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        assert self._sock is not None, "listen() first"
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(self._sock))
        async with listener:
            task_status.started()
            await trio.serve_listeners(self._answer, [listener])

    async def _answer(self, stream: trio.abc.Stream) -> None:
        """One request per connection (``Connection: close``): what a Prometheus scrape,
        curl or a browser needs, nothing more.  Reading the request and sending the answer
        get ``REQUEST_TIMEOUT`` each: a client that stops reading does not keep its task
        and file descriptor forever."""
        async with stream:
            try:
                head = b""
                with trio.move_on_after(REQUEST_TIMEOUT):
                    while b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) < MAX_REQUEST_HEAD:
                        chunk = await stream.receive_some(4096)
                        if not chunk:
                            break
                        head += chunk
                method, target = (head.split(b"\r\n", 1)[0].split(b" ") + [b"", b""])[:2]
                path = target.split(b"?", 1)[0]
                head_only, kind = method == b"HEAD", "text/plain; charset=utf-8"
                if method not in (b"GET", b"HEAD"):
                    status, body, head_only = 405, b"only GET\n", False
                elif path == b"/metrics":
                    try:
                        body, status, kind = self.scrape(), 200, CONTENT_TYPE_LATEST
                    except Exception:
                        log.exception("collecting metrics failed")
                        body, status, kind = b"collecting metrics failed; see the cloudgw log\n", 500, "text/plain"
                elif path == b"/":
                    status, body = 200, b"cloudgw: metrics are at /metrics\n"
                else:
                    status, body = 404, b"not found: try /metrics\n"
                with trio.move_on_after(REQUEST_TIMEOUT):
                    await _respond(stream, status, body, head_only=head_only, content_type=kind)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass  # the client went away


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


async def _respond(stream: trio.abc.Stream, status: int, body: bytes, *, head_only: bool,
                   content_type: str) -> None:
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    await stream.send_all(head if head_only else head + body)


class _GatewayCollector:
    """Values read at scrape time, in the trio thread (module docstring)."""

    def __init__(self, sources: _Sources) -> None:
        self.s = sources
        self._used: tuple[float, float, int] | None = None  # (when, seconds it took, bytes)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # no up-front description: registering must not collect (nothing to read yet)

    def collect(self) -> Iterator[Metric]:
        s = self.s
        backlog, oldest_ns = s.store.sync_backlog()
        dirty = [backlog.get(st.value, (0, 0)) for st in (FileState.DIRTY, FileState.CONFLICT)]
        uploading = backlog.get(FileState.UPLOADING.value, (0, 0))
        queued, uploading_n, failed = s.engine.queue.counts()  # no snapshot: it sorts the whole queue
        deletes = s.engine.tombstones.pending()
        yield _gauge("cloudgw_dirty_files", "Files changed here and not uploaded yet (dirty or in conflict)",
                     sum(n for n, _ in dirty))
        yield _gauge("cloudgw_dirty_bytes", "Size of the dirty files", sum(b for _, b in dirty))
        yield _gauge("cloudgw_uploading_bytes", "Size of the files being uploaded", uploading[1])
        yield _gauge("cloudgw_uploads_in_progress", "Upload queue entries being sent now (files, folders, moves)",
                     uploading_n)
        yield _gauge("cloudgw_pending_changes", "Changes waiting for the remote: queued, uploading, deletes",
                     queued + uploading_n + deletes)
        yield _gauge("cloudgw_pending_deletes", "Remote deletes waiting to be made", deletes)
        yield _gauge("cloudgw_failed_uploads", "Queue entries whose last attempt failed (retried with backoff)",
                     failed)
        age = max(0.0, time.time() - oldest_ns / 1e9) if oldest_ns is not None else 0.0
        yield _gauge("cloudgw_oldest_dirty_age_seconds", "Seconds since the last local change of the dirty file "
                     "changed longest ago (0: nothing dirty)", age)
        yield _gauge("cloudgw_cache_used_bytes", "Disk space used by cached file data", self._cache_used())
        yield _gauge("cloudgw_cache_files", "Files with data in the cache", s.cache.count())
        yield _gauge("cloudgw_cache_max_bytes", "Configured limit of clean data kept in the cache", s.cache_max_size)
        yield CounterMetricFamily("cloudgw_cache_hits", "Read requests served from the disk cache alone "
                                  "(reads the kernel's page cache answers are not seen)", value=s.data.read_hits)
        yield CounterMetricFamily("cloudgw_cache_misses", "Read requests that waited for data from the remote",
                                  value=s.data.read_misses)
        yield CounterMetricFamily("cloudgw_conflicts", "Conflict copies made (this cache dir, all time)",
                                  value=s.store.conflict_count())
        last_poll = s.engine.ctx.stats.last_poll_ok
        if last_poll is not None:  # absent until a poll succeeded
            yield _gauge("cloudgw_last_poll_timestamp_seconds", "When the last successful poll of the remote "
                         "ended (Unix time)", last_poll)

    def _cache_used(self) -> int:
        now = time.monotonic()
        if self._used is not None and now - self._used[0] < 100 * self._used[1]:
            return self._used[2]
        total = self.s.cache.used_bytes(count_unknown=False)  # (after a crash: counted by the evictor)
        self._used = (now, time.monotonic() - now, total)
        return total


class _GcCollector:
    """The garbage collector's pauses and frozen objects (``cloudgw.gc_pauses``), read at scrape."""

    def __init__(self, pauses: PauseTimer) -> None:
        self.pauses = pauses

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily("cloudgw_gc_pause_seconds", "Pauses of Python's cyclic garbage collector, "
                                       "which every request waits out, by generation (2: a full collection)",
                                       labels=["generation"])
        for generation in range(3):
            buckets, total = self.pauses.histogram(generation)
            family.add_metric([str(generation)], [(floatToGoString(b), n) for b, n in buckets], total)
        yield family
        yield _gauge("cloudgw_gc_frozen_objects", "Objects alive when the mount answered, which the garbage "
                     "collector no longer walks", gc.get_freeze_count())


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
