"""OpenStack Swift with its ``s3api`` middleware, as a one-replica all-in-one
on 127.0.0.1, from the Debian packages (see scripts/install-test-servers.sh).

``start_swift()`` writes every config into a fresh temp dir (nothing under
/etc/swift is read or written: the helper script points Swift's
``SWIFT_CONF_FILE`` at the temp dir before any server code runs), builds the
account/container/object rings (1 replica, 1 device dir, ``mount_check =
false``), starts memcached, the account/container/object servers and the
proxy on free ports, each in its own process group, waits until an S3 round
trip (create bucket, put/get/delete object, delete bucket) succeeds, and on
exit kills every process group it started and removes the temp dir (kept if
CLOUDGW_KEEP_SWIFT_DIR is set). Each process logs to <tmp>/log/<name>.log; a
failed startup raises RuntimeError with the tail of the relevant logs.

The servers run under the system ``/usr/bin/python3`` (where Debian's
``python3-swift`` lives), not the test venv, with ``workers = 0`` (no forking),
so each server is exactly one process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import S3Server, free_port

SYSTEM_PYTHON = "/usr/bin/python3"
MEMCACHED = "/usr/bin/memcached"
APT_PACKAGES = ("python3-swift", "memcached")
ACCESS_KEY = "test:tester"  # tempauth "account:user"
SECRET_KEY = "testing"
REGION = "us-east-1"
STARTUP_TIMEOUT = 60.0
_SERVERS = ("account", "container", "object")

# Runs under /usr/bin/python3.
#   serve DIR CONF APP [PORT_A PORT_C PORT_O]: run one Swift server; with
#     ports (the proxy), first build the three rings (the RingBuilder calls
#     swift-ring-builder makes: in-process instead of nine ~0.6 s CLI runs,
#     while the backend servers start).
#   watch PROGRAM ARGS...: run PROGRAM (memcached) as a child.
# Both exit when the test process dies without stopping them (kill -9).
_HELPER = r'''
import os, sys, time

def exit_with_parent(on_exit=lambda: None):
    # A native thread: Swift's run_server() replaces the eventlet hub, which
    # drops any greenthread spawned before it.
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        on_exit()
        os._exit(0)

    if "eventlet.patcher" in sys.modules:  # threads may be green by now
        import eventlet.patcher
        thread = eventlet.patcher.original("_thread")
    else:
        import _thread as thread
    thread.start_new_thread(watch, ())

def patch_eventlet():
    # Startup speed (each server otherwise needs ~2 s of CPU before it
    # listens): eventlet's monkey_patch() greens every pre-existing RLock with
    # a full gc.collect() for each (~0.8 s). Patch first (the very call
    # Swift's utils.eventlet_monkey_patch makes, which then has nothing left
    # to do), with gc.collect a no-op meanwhile (it only drops garbage before
    # gc.get_referrers: every live referrer is still found and fixed). The
    # spawner also sets EVENTLET_NO_GREENDNS=yes (no dnspython: every address
    # here is a literal IP) and SETUPTOOLS_USE_DISTUTILS=stdlib (eventlet's
    # `import distutils.version` would otherwise import all of setuptools).
    import gc
    import eventlet.patcher
    collect, gc.collect = gc.collect, lambda *args: 0
    try:
        eventlet.patcher.monkey_patch(
            all=False, socket=True, select=True, thread=True)
    finally:
        gc.collect = collect

def use_swift_dir(swift_dir):
    # Swift reads /etc/swift/swift.conf (hash prefix/suffix, storage policies,
    # constraints) via utils.SWIFT_CONF_FILE; point it at our dir instead,
    # before swift.common.storage_policy is first imported.
    import logging
    from swift.common import utils
    utils.SWIFT_CONF_FILE = os.path.join(swift_dir, "swift.conf")
    utils.HASH_PATH_PREFIX = utils.HASH_PATH_SUFFIX = b""
    utils.validate_configuration()
    from swift.common import constraints, storage_policy
    storage_policy.reload_storage_policies()
    constraints.reload_constraints()

    # No syslog: messages go to stderr only (run_wsgi(verbose=True)), which
    # the spawner sends to the server's log file in the temp dir.
    class NoSyslog(logging.NullHandler):
        def __init__(self, *args, **kwargs):
            logging.NullHandler.__init__(self)
    utils.ThreadSafeSysLogHandler = NoSyslog

def rings(swift_dir, *ports):
    from swift.common.ring import RingBuilder
    for name, port in zip(("account", "container", "object"), ports):
        builder = RingBuilder(6, 1, 0)  # part_power, replicas, min_part_hours
        builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1",
                         "port": int(port), "device": "d1", "weight": 1.0,
                         "meta": ""})
        builder.rebalance()
        builder.save(os.path.join(swift_dir, name + ".builder"))
        builder.get_ring().save(os.path.join(swift_dir, name + ".ring.gz"))

def serve(swift_dir, conf, app, *ring_ports):
    patch_eventlet()
    exit_with_parent()
    use_swift_dir(swift_dir)
    # eventlet.listen() sets SO_REUSEPORT: two test servers handed the same
    # "free" port would then both bind it and share its traffic. Without it a
    # clash fails the bind (for bind_timeout seconds, then the server exits).
    import functools
    import eventlet
    from swift.common import wsgi
    wsgi.listen = functools.partial(eventlet.listen, reuse_port=False)
    if ring_ports:
        try:
            rings(swift_dir, *ring_ports)
        except Exception:
            sys.stderr.write("swift_helper: building the rings failed\n")
            raise
    sys.exit(wsgi.run_wsgi(conf, app, verbose=True))

def watch(*argv):
    import signal, subprocess
    child = subprocess.Popen(argv)
    # Stopped by SIGTERM to the process group: reap the child, then exit.
    signal.signal(signal.SIGTERM, lambda *args: child.terminate())
    exit_with_parent(on_exit=lambda: (child.kill(), child.wait()))
    sys.exit(child.wait())

if __name__ == "__main__":
    {"serve": serve, "watch": watch}[sys.argv[1]](*sys.argv[2:])
'''


def _missing_packages_error(what: str) -> RuntimeError:
    return RuntimeError(
        f"OpenStack Swift is not installed ({what}). Install the Debian "
        f"packages: apt-get install --no-install-recommends "
        f"{' '.join(APT_PACKAGES)}  (or run scripts/install-test-servers.sh)"
    )


_FIND_S3API = """
import importlib.util, os, sys
spec = importlib.util.find_spec("swift")
dirs = spec.submodule_search_locations if spec else []
sys.exit(not any(os.path.isfile(os.path.join(d, "common", "middleware",
                                             "s3api", "s3api.py"))
                 for d in dirs))
"""


def _check_installed() -> None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise _missing_packages_error(f"{SYSTEM_PYTHON} not found")
    if not os.access(MEMCACHED, os.X_OK):
        raise _missing_packages_error(f"{MEMCACHED} not found")
    # Find (not import: that takes ~1 s) Swift's s3api module.
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", _FIND_S3API], capture_output=True, text=True
    )
    if probe.returncode != 0:
        raise _missing_packages_error(
            f"{SYSTEM_PYTHON} has no swift.common.middleware.s3api"
            + (f": {probe.stderr.strip()[-300:]}" if probe.stderr.strip() else "")
        )


def _write_configs(d: Path, ports: dict[str, int], memcache_port: int) -> None:
    (d / "swift.conf").write_text(
        textwrap.dedent(f"""\
        [swift-hash]
        swift_hash_path_prefix = {secrets.token_hex(8)}
        swift_hash_path_suffix = {secrets.token_hex(8)}

        [storage-policy:0]
        name = Policy-0
        default = yes
        """)
    )
    common = textwrap.dedent(f"""\
        [DEFAULT]
        bind_ip = 127.0.0.1
        workers = 0
        swift_dir = {d}
        devices = {d / "srv"}
        mount_check = false
        disable_fallocate = true
        fallocate_reserve = 0
        log_level = INFO
        bind_timeout = 5
        """)
    for name in _SERVERS:
        (d / f"{name}-server.conf").write_text(
            common
            + textwrap.dedent(f"""\
            bind_port = {ports[name]}
            log_name = {name}-server

            [pipeline:main]
            pipeline = {name}-server

            [app:{name}-server]
            use = egg:swift#{name}
            """)
        )
    (d / "proxy-server.conf").write_text(
        common
        + textwrap.dedent(f"""\
        bind_port = {ports["proxy"]}
        log_name = proxy-server

        [pipeline:main]
        pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

        [app:proxy-server]
        use = egg:swift#proxy
        account_autocreate = true

        [filter:s3api]
        use = egg:swift#s3api
        location = {REGION}

        [filter:tempauth]
        use = egg:swift#tempauth
        user_{ACCESS_KEY.replace(":", "_")} = {SECRET_KEY} .admin

        [filter:cache]
        use = egg:swift#memcache
        memcache_servers = 127.0.0.1:{memcache_port}

        [filter:catch_errors]
        use = egg:swift#catch_errors

        [filter:gatekeeper]
        use = egg:swift#gatekeeper

        [filter:healthcheck]
        use = egg:swift#healthcheck

        [filter:proxy-logging]
        use = egg:swift#proxy_logging

        [filter:listing_formats]
        use = egg:swift#listing_formats

        [filter:copy]
        use = egg:swift#copy

        [filter:slo]
        use = egg:swift#slo

        [filter:dlo]
        use = egg:swift#dlo

        [filter:versioned_writes]
        use = egg:swift#versioned_writes
        allow_versioned_writes = true
        allow_object_versioning = true

        [filter:symlink]
        use = egg:swift#symlink
        """)
    )


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as e:
            return f"(no log: {e})"
        tail = "\n".join("    " + line for line in text.splitlines()[-lines:])
        return f"--- tail of {self.log}:\n{tail or '    (empty)'}"


def _stop(procs: list[_Proc]) -> None:
    """SIGTERM every process group, then SIGKILL what is left after 5 s."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        # The group may hold more than the leader; make sure it is all gone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait()


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _round_trip(client) -> None:
    """Create a bucket, write, read and delete an object in it, delete the
    bucket: proxy, memcached, account, container and object server all work."""
    from botocore.exceptions import ClientError

    bucket = "cloudgw-startup-probe"
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as e:  # an earlier attempt got this far
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
    body = client.get_object(Bucket=bucket, Key="probe")["Body"].read()
    if body != b"ok":
        raise RuntimeError(f"swift: startup probe read back {body!r}, not b'ok'")
    client.delete_object(Bucket=bucket, Key="probe")
    client.delete_bucket(Bucket=bucket)


def _wait_ready(server: S3Server, procs: list[_Proc], ports: list[int]) -> None:
    """Wait until every port listens (servers bind after loading their app)
    and an S3 round trip through every server succeeds; fail fast if a
    process exits."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    # No botocore retries: its backoff would only slow the polling down.
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=5,
        ),
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    waiting = list(ports)
    last_error: Exception | str | None = None
    while True:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(
                    f"swift: {proc.name} exited with status "
                    f"{proc.popen.returncode} during startup\n{proc.tail()}"
                )
        waiting = [port for port in waiting if not _accepts(port)]
        if waiting:
            last_error = f"ports not listening yet: {waiting}"
        else:
            try:
                _round_trip(client)
                return
            except (BotoCoreError, ClientError) as e:
                last_error = e
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"swift: no successful S3 round trip (bucket + object) on "
                f"{server.endpoint_url} after {STARTUP_TIMEOUT:.0f} s; last "
                f"error: {last_error!r}\n"
                + "\n".join(proc.tail(15) for proc in procs)
            )
        time.sleep(0.05)


@contextlib.contextmanager
def start_swift() -> Iterator[S3Server]:
    """Start Swift + s3api on 127.0.0.1; yield how to reach it; stop it."""
    _check_installed()
    d = Path(tempfile.mkdtemp(prefix="cloudgw-swift-"))
    procs: list[_Proc] = []
    try:
        (d / "srv" / "d1").mkdir(parents=True)
        (d / "log").mkdir()
        helper = d / "swift_helper.py"
        helper.write_text(_HELPER)
        ports = {name: free_port() for name in (*_SERVERS, "proxy")}
        memcache_port = free_port()
        _write_configs(d, ports, memcache_port)
        env = dict(
            os.environ,
            EVENTLET_NO_GREENDNS="yes",
            SETUPTOOLS_USE_DISTUTILS="stdlib",
            PYTHONUNBUFFERED="1",
        )
        # The venv's variables must not leak into the system python.
        for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            env.pop(var, None)

        def spawn(name: str, argv: list[str]) -> None:
            log = d / "log" / f"{name}.log"
            with open(log, "ab") as log_fd:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=subprocess.STDOUT,
                    cwd=d,
                    env=env,
                    start_new_session=True,  # own process group
                )
            procs.append(_Proc(name, popen, log))

        memcached = [MEMCACHED, "-l", "127.0.0.1", "-p", str(memcache_port),
                     "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            memcached += ["-u", "root"]  # it refuses root without this
        spawn("memcached", [SYSTEM_PYTHON, str(helper), "watch", *memcached])
        ring_ports = [str(ports[n]) for n in _SERVERS]
        for name in (*_SERVERS, "proxy"):
            spawn(
                f"{name}-server",
                [SYSTEM_PYTHON, str(helper), "serve", str(d),
                 str(d / f"{name}-server.conf"), f"{name}-server",
                 *(ring_ports if name == "proxy" else [])],
            )
        server = S3Server(
            name="swift",
            endpoint_url=f"http://127.0.0.1:{ports['proxy']}",
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
        )
        _wait_ready(server, procs, [*ports.values(), memcache_port])
        yield server
    finally:
        _stop(procs)
        if os.environ.get("CLOUDGW_KEEP_SWIFT_DIR"):
            print(f"swift: kept {d} (CLOUDGW_KEEP_SWIFT_DIR is set)")
        else:
            shutil.rmtree(d, ignore_errors=True)
