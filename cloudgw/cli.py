"""The ``cloudgw`` command line: mount, sync, status, umount.

Every user-facing failure is one line on stderr ("cloudgw: error: ...") and
exit code 2 (bad input) or 1 (runtime failure); never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from cloudgw import __version__, crypt_cli, login_cli
from cloudgw.config import (
    MountConfig,
    RemoteSpec,
    load_toml,
    parse_duration,
    parse_listen_addr,
    parse_size,
    remote_options,
    remotes_from_toml,
    section,
)
from cloudgw.errors import CloudgwError, UserError


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line too, like every other error (subcommand parsers inherit this)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"cloudgw: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cloudgw", description="Mount clouds as one local filesystem with a write-back disk cache.")
    p.add_argument("--version", action="version", version=f"cloudgw {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    m = sub.add_parser("mount", help="mount a remote (or several, with --config)",
                       description="Mount REMOTE (file:///abs/path or s3://bucket[/prefix]) on MOUNTPOINT. "
                       "S3 credentials, region and endpoint come from boto3's standard chain "
                       "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, ~/.aws).")
    m.add_argument("remote", nargs="?", help="file:///abs/path or s3://bucket[/prefix] (omit with --config)")
    m.add_argument("mountpoint", nargs="?", help="an existing empty directory (with --config: default its mountpoint key)")
    m.add_argument("--config", type=Path, help="TOML file describing the remotes and, optionally, the mountpoint (see README)")
    m.add_argument("--cache-dir", type=Path, help="where cached and pending data lives (default /var/cache/cloudgw/<mountpoint>)")
    m.add_argument("--cache-max-size", default=None, help="clean data kept in the cache, e.g. 20G (default 10G)")
    m.add_argument("--cache-max-age", default=None, help="evict clean data unused this long, e.g. 30d")
    m.add_argument("--cache-min-free", default=None, help="free space to keep on the cache disk (default 1G)")
    m.add_argument("--write-back", default=None, help="seconds after the last close before uploading (default 5)")
    m.add_argument("--poll-interval", default=None, help="seconds between remote change polls, 1..86400 (default 60)")
    m.add_argument("--remote-timeout", default=None,
                   help="seconds before a remote request (with its retries) fails with EIO (default 30)")
    m.add_argument("--drain-timeout", default=None,
                   help="at a stop (SIGTERM, unmount): seconds to keep uploading what is pending (default 60)")
    m.add_argument("--endpoint-url", help="S3 endpoint (else AWS_ENDPOINT_URL / AWS)")
    m.add_argument("--region", help="S3 region (else AWS_DEFAULT_REGION)")
    m.add_argument("--path-style", action="store_true", default=None, help="S3 path-style addressing")
    m.add_argument("--crypt-password-file", type=Path, default=None,
                   help="password of an encrypted remote (cloudgw crypt init); or CLOUDGW_CRYPT_PASSWORD")
    m.add_argument("--remote-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the remote, as in a [remotes.NAME] table (e.g. client_id=..., "
                   "token_file=/etc/cloudgw/onedrive.json); repeatable; not with --config")
    m.add_argument("--metrics-addr", default=None, metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (PORT alone: on 127.0.0.1)")
    m.add_argument("--foreground", "-f", action="store_true", help="stay in the foreground, log to stderr")
    m.add_argument("--read-only", action="store_true", help="mount read-only")
    m.add_argument("--acl", action="store_true",
                   help="honour POSIX ACLs (setfacl/getfacl; kept on this gateway); every permission check of "
                   "another user's file then asks the daemon (see the README)")
    m.add_argument("-o", dest="options", action="append", default=[], help="extra FUSE options, comma separated")
    m.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    s = sub.add_parser("sync", help="upload everything pending now", description="Upload every pending change now.")
    s.add_argument("mountpoint", type=Path)
    s.add_argument("--wait", action="store_true", help="return when nothing is pending (progress on a terminal)")
    s.add_argument("--timeout", type=float, default=0, help="with --wait: give up after this many seconds (exit 1)")

    st = sub.add_parser("status", help="what is dirty, uploading, failed, conflicted",
                        description="Show pending uploads, failures, conflicts and the last poll.")
    st.add_argument("mountpoint", type=Path)
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--files", action="store_true",
                    help="also list the upload queue file by file: state, size, age, attempts, next try, last error")

    u = sub.add_parser("umount", help="upload what is pending, then unmount",
                       description="Drain the upload queue (bounded by --timeout), then unmount. "
                       "What is not uploaded in time stays queued for the next mount.")
    u.add_argument("mountpoint", type=Path)
    u.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for uploads (default 60)")
    f = sub.add_parser("fsck", help="check (and repair) a cache dir against its metadata and remote",
                       description="Check an unmounted gateway's cache dir: metadata integrity, pending data, "
                       "stray cache files, and how the remote differs. Exit 1 if unrepaired errors remain.")
    f.add_argument("cache_dir", type=Path)
    f.add_argument("--repair", action="store_true", help="repair what can be repaired without losing data")
    f.add_argument("--local-only", action="store_true", help="do not contact the remote")
    f.add_argument("--verify-remote", action="store_true",
                   help="read every remote file (an encrypted remote authenticates each chunk): slow, thorough")
    f.add_argument("--json", action="store_true", help="machine-readable output")
    crypt_cli.add_parsers(sub)
    login_cli.add_parser(sub)
    return p


def _default_cache_dir(mountpoint: Path) -> Path:
    base = Path("/var/cache/cloudgw") if os.geteuid() == 0 else Path.home() / ".cache" / "cloudgw"
    return base / os.path.realpath(mountpoint).strip("/").replace("/", "_")


def mount_config(args: argparse.Namespace) -> MountConfig:
    doc: dict = {}
    if args.config is not None:
        given = [p for p in (args.remote, args.mountpoint) if p is not None]
        if len(given) > 1:
            raise UserError("give either REMOTE or --config, not both")
        doc = load_toml(args.config)
        unknown = set(doc) - {"mountpoint", "cache", "sync", "remotes", "metrics"}
        if unknown:
            raise UserError(f"config file {args.config} has unknown keys {sorted(unknown)}: only mountpoint, "
                            "[cache], [sync], [metrics] and [remotes.NAME] belong at the top level")
        mountpoint_text = given[0] if given else doc.get("mountpoint")
        if mountpoint_text is None:
            raise UserError(f"missing MOUNTPOINT: give it after --config, or set mountpoint = \"/srv/...\" in {args.config}")
        if not given and not (isinstance(mountpoint_text, str) and mountpoint_text.startswith("/")):
            raise UserError(f"config file {args.config}: mountpoint must be an absolute path, e.g. \"/srv/cloud\"")
        remotes = remotes_from_toml(doc, args.config)
        if args.remote_option:
            raise UserError(f"--remote-option with --config: set the option in the remote's section of {args.config}")
        if args.crypt_password_file is not None:
            if len(remotes) != 1:
                raise UserError("--crypt-password-file with several remotes: set crypt_password_file in the "
                                f"section of each encrypted remote of {args.config}")
            [(name, spec)] = remotes.items()
            remotes = {name: RemoteSpec(spec.url, {**spec.options, "crypt_password_file": str(args.crypt_password_file)},
                                        spec.where)}
        cache = section(doc, "cache", args.config, {"dir", "max_size", "max_age", "min_free"})
        sync = section(doc, "sync", args.config, {"write_back", "poll_interval", "upload_concurrency", "remote_timeout",
                                                  "drain_timeout"})
    else:
        usage = "cloudgw mount file:///abs/path|s3://bucket[/prefix] MOUNTPOINT (or --config FILE)"
        if args.remote is None:
            raise UserError(f"missing REMOTE and mountpoint: {usage}")
        if args.mountpoint is None:
            missing = "mountpoint" if "://" in args.remote else "REMOTE"
            raise UserError(f"missing {missing}: {usage}")
        mountpoint_text = args.mountpoint
        given = {"endpoint_url": args.endpoint_url, "region": args.region, "path_style": args.path_style,
                 "crypt_password_file": str(args.crypt_password_file) if args.crypt_password_file else None}
        given.update(remote_options(args.remote_option))
        remotes = {"": RemoteSpec(args.remote, {k: v for k, v in given.items() if v is not None})}
        cache, sync = {}, {}

    def pick(cli_value, file_value, default):  # noqa: ANN001, ANN202
        return cli_value if cli_value is not None else (file_value if file_value is not None else default)

    mountpoint = Path(mountpoint_text).absolute()
    cache_dir = args.cache_dir or (Path(cache["dir"]) if "dir" in cache else _default_cache_dir(mountpoint))
    max_age = pick(args.cache_max_age, cache.get("max_age"), None)
    concurrency = sync.get("upload_concurrency", 4)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool):
        raise UserError("upload_concurrency must be a whole number")
    options = tuple(o for opt in args.options for o in opt.split(",") if o)
    bad = [o for o in options if o.startswith("max_read")]
    if bad:
        raise UserError("-o max_read is not supported (the mount fails silently with it on libfuse 3.14)")
    # unset: the daemon asks the remotes' types (``default_poll_interval``); asking here would import each
    # remote's module (botocore, httpx) into this process, which only forks and waits (cloudgw.daemon)
    poll = pick(args.poll_interval, sync.get("poll_interval"), None)
    return MountConfig(
        mountpoint=mountpoint,
        cache_dir=Path(cache_dir).absolute(),
        remotes=remotes,
        cache_max_size=parse_size(pick(args.cache_max_size, cache.get("max_size"), "10G"), "cache size"),
        cache_max_age=parse_duration(max_age, "cache max age") if max_age is not None else None,
        cache_min_free=parse_size(pick(args.cache_min_free, cache.get("min_free"), "1G"), "cache free-space reserve"),
        write_back=parse_duration(pick(args.write_back, sync.get("write_back"), 5), "write-back delay"),
        poll_interval=parse_duration(poll, "poll interval") if poll is not None else None,
        upload_concurrency=concurrency,
        remote_timeout=parse_duration(pick(args.remote_timeout, sync.get("remote_timeout"), 30), "remote timeout"),
        drain_timeout=parse_duration(pick(args.drain_timeout, sync.get("drain_timeout"), 60), "drain timeout"),
        metrics_addr=_metrics_addr(pick(args.metrics_addr, section(doc, "metrics", args.config, {"addr"}).get("addr"),
                                        None)),
        read_only=args.read_only,
        acl=args.acl,
        fuse_options=options,
        foreground=args.foreground,
    )


def _metrics_addr(text: str | None) -> str | None:
    """The metrics address checked and written out in full (``9464`` -> ``127.0.0.1:9464``)."""
    if text is None:
        return None
    host, port = parse_listen_addr(text)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _setup_logging(level: str, logfile: Path | None) -> None:
    """To the journal, with priorities, when stderr is the journal (run by systemd, even
    daemonized: the daemon then keeps its stderr); else to ``logfile``, else to stderr."""
    from cloudgw.systemd import JournalFormatter, stderr_is_journal

    handler: logging.Handler
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if stderr_is_journal():
        handler, formatter = logging.StreamHandler(sys.stderr), JournalFormatter()
    elif logfile is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        fd = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handler = logging.StreamHandler(os.fdopen(fd, "a", buffering=1))
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_mount(args: argparse.Namespace) -> int:
    from cloudgw.daemon import check_before_mount, run_daemon, run_foreground

    config = mount_config(args)
    check_before_mount(config)
    if config.foreground:
        _setup_logging(args.log_level, None)
        return run_foreground(config)
    return run_daemon(config, lambda: _setup_logging(args.log_level, config.cache_dir / "cloudgw.log"))


def cmd_sync(args: argparse.Namespace) -> int:
    from cloudgw.control import request

    if not args.wait:
        for answer in request(args.mountpoint, {"op": "sync"}):
            print("sync started")
        return 0
    tty = sys.stderr.isatty()
    final: dict = {}
    for answer in request(args.mountpoint, {"op": "sync", "wait": True, "timeout": args.timeout}, timeout=None):
        if answer.get("progress") and tty:
            print(f"\rpending: {answer['pending']} changes, {_human(answer['pending_bytes'])}   ", end="", file=sys.stderr)
        if answer.get("done"):
            final = answer
    if tty:
        print(file=sys.stderr)
    if not final.get("drained"):
        print(f"cloudgw: {final.get('pending', '?')} changes still pending "
              f"({final.get('failed_files', 0)} failing); see 'cloudgw status {args.mountpoint}'", file=sys.stderr)
        return 1
    return 0


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def cmd_status(args: argparse.Namespace) -> int:
    from cloudgw.control import request

    status = next(request(args.mountpoint, {"op": "status", "files": True} if args.files else {"op": "status"}))
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    last = status.get("last_poll")
    print(f"dirty:      {status['dirty_files']} files, {_human(status['dirty_bytes'])}")
    print(f"uploading:  {status['uploading_files']} files, {_human(status['uploading_bytes'])}")
    print(f"pending:    {status['pending']} changes (incl. {status['pending_deletes']} remote deletes)")
    print(f"failed:     {status['failed_files']} files")
    for f in status["failed"]:
        print(f"  {f['path']}: {f['error']} ({f['attempts']} attempts)")
    print(f"conflicts:  {status['conflicts']}")
    for c in status["recent_conflicts"]:
        print(f"  {c['path']} -> remote version kept as {c['copy']}")
    for name, c in sorted(status.get("remotes", {}).items()):
        until = f" until {time.strftime('%H:%M:%S', time.localtime(c['until']))}" if c.get("until") else ""
        print(f"remote {name or '(root)'}: {c['state']}{until}" + (f" ({c['detail']})" if c.get("detail") else ""))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last)) if last else "never"
    print(f"last poll:  {when}" + (f" (last error: {status['last_poll_error']})" if status.get("last_poll_error") else ""))
    for e in status["errors"][-5:]:
        print(f"  {time.strftime('%H:%M:%S', time.localtime(e['time']))} {e['message']}")
    if args.files:
        _print_queue(status)
    return 0


def _print_queue(status: dict) -> None:
    """The upload queue as a table (rows: ``cloudgw.sync.queue_view``)."""
    rows, now = status.get("files", []), status.get("time", time.time())
    print()
    if not rows:
        print("upload queue: empty")
        return
    table = [("QUEUE", "STATE", "SIZE", "AGE", "TRIES", "NEXT TRY", "PATH (LAST ERROR)", "")]
    for r in rows:
        table.append((
            r["queue"], r["state"] or "-", _human(r["size"]) if r["size"] is not None else "-",
            _ago(now - r["changed"]) if r["changed"] is not None else "-", str(r["attempts"] or "-"),
            _when(r["next_try"] - now) if r["next_try"] is not None else ("now" if r["queue"] == "uploading" else "-"),
            r["path"], (r["last_error"] or "")[:120]))
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:6], widths)) + "  " + row[6]
              + (f"  ({row[7]})" if row[7] and row is not table[0] else ""))
    if status.get("files_more"):
        print(f"... and {status['files_more']} more not shown ({status['files_total']} in all)")


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _when(seconds: float) -> str:
    return "now" if seconds <= 0.5 else f"in {_ago(seconds)}"


def cmd_umount(args: argparse.Namespace) -> int:
    from cloudgw.control import request

    final: dict = {}
    for answer in request(args.mountpoint, {"op": "umount", "timeout": args.timeout}, timeout=args.timeout + 60):
        final = answer
    deadline = time.monotonic() + 30
    while os.path.ismount(args.mountpoint) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not final.get("drained", False):
        print(f"cloudgw: unmounted with {final.get('pending', '?')} changes still pending; "
              "they are uploaded at the next mount", file=sys.stderr)
        return 1
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    import trio

    from cloudgw.fsck import run_fsck

    _setup_logging("ERROR", None)
    fsck = trio.run(lambda: run_fsck(args.cache_dir.absolute(), repair=args.repair, remote_check=not args.local_only,
                                      verify_remote=args.verify_remote))
    if args.json:
        print(json.dumps({"findings": [f.as_dict() for f in fsck.findings], "errors": len(fsck.errors)}, indent=2))
    else:
        for f in fsck.findings:
            mark = " (repaired)" if f.repaired else ""
            print(f"{f.severity:7} {f.code:22} {f.path}: {f.message}{mark}" if f.path else
                  f"{f.severity:7} {f.code:22} {f.message}{mark}")
        print(f"{len(fsck.errors)} errors" if fsck.errors else "no errors")
    return 1 if fsck.errors else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"mount": cmd_mount, "sync": cmd_sync, "status": cmd_status, "umount": cmd_umount, "fsck": cmd_fsck,
                "crypt": crypt_cli.cmd_crypt, "decrypt": crypt_cli.cmd_decrypt, "login": login_cli.cmd_login}
    try:
        return commands[args.command](args)
    except UserError as exc:
        print(f"cloudgw: error: {exc}", file=sys.stderr)
        return 2
    except CloudgwError as exc:  # a remote that failed (unreachable, refused, changed meanwhile)
        print(f"cloudgw: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
