"""cloudgw side by side with rclone mount, s3fs and the raw disk: ``python -m benchmarks.run``.

Starts the server(s) on loopback (S3: moto, Swift+s3api; WebDAV: Apache
mod_dav_fs, where s3fs is skipped and only the workloads that mean something
on WebDAV run by default), puts the shared data, then for each run and each mount session mounts every gateway in turn
(the order rotates with the run), runs the workloads, unmounts.  Prints the
table and writes it to benchmarks/results/ as JSON and Markdown.  Needs root
(mounts, drop_caches) and /dev/fuse; see the README section "Benchmarks".
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.gateways import CRYPT_WORKLOADS, GATEWAYS, Gateway, Settings, _lazy_unmount
from benchmarks.report import Results, load_average, machine_description
from benchmarks.workloads import TITLES, GiB, KiB, MiB, WORKLOADS, Params, ServerBench

log = logging.getLogger("bench")
SERVERS = {"both": ["moto", "swift"], "all": ["moto", "swift", "webdav", "smb"]}
# WebDAV: cold read, write + upload, small files, metadata, change propagation (and peak RSS in each);
# cached/random reads and the 4 KiB edit measure the local cache (the same as on S3) or a partial upload
# WebDAV does not have
WEBDAV_WORKLOADS = {2, 3, 4, 5, 7}
DEFAULT_GATEWAYS = "cloudgw,rclone,s3fs,raw,cloudgw-crypt,rclone-crypt"
CRYPT_GATEWAYS = "cloudgw,cloudgw-crypt,rclone,rclone-crypt"  # --crypt
ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_size(text: str) -> int:
    units = {"K": KiB, "M": MiB, "G": GiB}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def parse_workloads(text: str) -> set[int]:
    names = {v: k for k, v in WORKLOADS.items()}
    out = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part.isdigit() and int(part) in WORKLOADS:
            out.add(int(part))
        elif part in names:
            out.add(names[part])
        else:
            raise argparse.ArgumentTypeError(
                f"unknown workload {part!r}; one of: " + ", ".join(f"{k}={v}" for k, v in WORKLOADS.items()))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark cloudgw against rclone mount, s3fs and the raw disk on loopback S3 and WebDAV servers.",
        epilog="Workloads: " + ", ".join(f"{k} {v}" for k, v in WORKLOADS.items()))
    p.add_argument("--quick", action="store_true", help="tiny sizes, one run: a smoke check (a few minutes)")
    p.add_argument("--only", type=parse_workloads, metavar="WORKLOAD[,WORKLOAD]",
                   help="run only these workloads (numbers or names); on webdav the default is "
                   + ",".join(str(w) for w in sorted(WEBDAV_WORKLOADS)))
    p.add_argument("--runs", type=int, help="runs per figure (default 3; --quick 1)")
    p.add_argument("--server", choices=["moto", "swift", "webdav", "smb", "both", "all"],
                   help="both: moto and swift; all (default; --crypt: moto): moto, swift, webdav (Apache mod_dav_fs) "
                   "and smb (smbd re-exporting the cloudgw mount of a moto bucket vs plain ext4: benchmarks/smb.py)")
    p.add_argument("--full", action="store_true",
                   help="the nominal sizes: 1 GiB file, 10,000 files, 10,000 entries, workload 9 from 1k to 10k "
                   "(several hours on 2 cores, mostly moto's ranged GETs and s3fs's small-file uploads)")
    p.add_argument("--large", action="store_true",
                   help="workload 5 with 100,000 entries and workload 9 up to 100,000 (hours more)")
    p.add_argument("--gateways", help=f"comma separated subset of {DEFAULT_GATEWAYS} (the default; --crypt: "
                   f"{CRYPT_GATEWAYS}). cloudgw-crypt and rclone-crypt: encrypted remotes on S3 servers, workloads "
                   + ",".join(str(w) for w in sorted(CRYPT_WORKLOADS)) + " only")
    p.add_argument("--crypt", action="store_true",
                   help="the encryption comparison alone: cloudgw, cloudgw-crypt, rclone, rclone-crypt, workloads "
                   + ",".join(str(w) for w in sorted(CRYPT_WORKLOADS)) + ", on moto (unless --gateways, --only, "
                   "--server say otherwise)")
    p.add_argument("--crypt-names", action="store_true",
                   help="the encrypted gateways encrypt file names too (cloudgw crypt init --encrypt-names, rclone "
                   "filename_encryption standard); default: names in clear on both")
    p.add_argument("--size", type=parse_size, help="big file size for workloads 1-3, 6, 8 (default 256M)")
    p.add_argument("--files", type=int, help="workload 4: number of 64 KiB files (default 300)")
    p.add_argument("--entries", type=int, help="workload 5: number of entries (default 5000)")
    p.add_argument("--scale-files", help="workload 9: N for workload 4, comma separated (default 50,300)")
    p.add_argument("--scale-entries", help="workload 9: N for workload 5, comma separated (default 500,5000)")
    p.add_argument("--random-seconds", type=float, help="workload 6: seconds per mode (default 2)")
    p.add_argument("--poll-interval", type=float,
                   help="remote change poll interval of every gateway, all workloads but 7 (default 60)")
    p.add_argument("--prop-poll-interval", type=float,
                   help="the same, in workload 7 (remote change propagation; default 10)")
    p.add_argument("--write-back", type=float, help="write-back delay of cloudgw and rclone (default 1)")
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/cloudgw-bench"),
                   help="mountpoints, caches and the raw directory (all on one disk); removed at the end")
    p.add_argument("--keep-workdir", action="store_true",
                   help="leave the workdir (gateway logs, caches) in place at the end, for a post-mortem")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--no-save", action="store_true", help="print the table only")
    return p


def make_params(args: argparse.Namespace) -> Params:
    if args.quick:
        params = Params(size=32 * MiB, files=50, entries=200, scale_files=(20, 50), scale_entries=(50, 200),
                        random_seconds=0.5,
                        poll_interval=60.0, prop_poll_interval=2.0, write_back=0.5, phase_timeout=300,
                        quick=True)
    else:
        params = Params()
    if args.full:
        params.size, params.files, params.entries = 1 * GiB, 10_000, 10_000
        params.scale_files = params.scale_entries = (1000, 10_000)
        params.random_seconds = 3.0
    if args.large:
        params.entries = 100_000
        params.scale_files = (1000, 10_000, 100_000)
        params.scale_entries = (1000, 10_000, 100_000)
    for name in ("size", "files", "entries", "random_seconds", "poll_interval", "prop_poll_interval", "write_back"):
        value = getattr(args, name)
        if value is not None:
            setattr(params, name, value)
    for name in ("scale_files", "scale_entries"):
        value = getattr(args, name)
        if value:
            setattr(params, name, tuple(sorted(int(x) for x in value.split(",") if x.strip())))
    return params


def check_environment() -> None:
    if os.geteuid() != 0:
        sys.exit("benchmarks: needs root (FUSE mounts for every gateway, /proc/sys/vm/drop_caches)")
    if not os.path.exists("/dev/fuse"):
        sys.exit("benchmarks: /dev/fuse is missing (modprobe fuse)")


@contextlib.contextmanager
def start_server(name: str):  # noqa: ANN201
    if name == "webdav":
        from tests.servers.apache import start_apache

        with start_apache() as server:
            yield server
    elif name == "moto":
        from tests.servers.moto import start_moto

        # no IAM authentication: signatures are not checked, which keeps moto's
        # per-request cost down; every gateway signs its requests as usual
        with start_moto(auth=False) as server:
            yield server
    else:
        from tests.servers.swift import start_swift

        with start_swift() as server:
            yield server


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    check_environment()
    params = make_params(args)
    runs = args.runs or (1 if args.quick else 3)
    if args.crypt and args.only is None:
        args.only = set(CRYPT_WORKLOADS)
    selected = args.only or set(WORKLOADS)
    server = args.server or ("moto" if args.crypt else "all")
    servers = SERVERS.get(server, [server])
    gateway_list = args.gateways or (CRYPT_GATEWAYS if args.crypt else DEFAULT_GATEWAYS)
    names = [g.strip() for g in gateway_list.split(",") if g.strip()]
    unknown = [n for n in names if n not in GATEWAYS]
    if unknown:
        sys.exit(f"benchmarks: unknown gateway(s) {unknown}; choose from {list(GATEWAYS)}")

    workdir = args.workdir.absolute()
    cleanup_stale(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(write_back=params.write_back, poll_interval=params.poll_interval,
                        encrypt_names=args.crypt_names)
    signal.signal(signal.SIGTERM, _terminate)
    results = Results()
    results.machine = machine_description(workdir)
    results.params = {"size": params.size, "files": params.files, "file_size": params.file_size,
                      "entries": params.entries, "scale_files": list(params.scale_files),
                      "scale_entries": list(params.scale_entries), "runs": runs,
                      "random_seconds": params.random_seconds, "small_write_size": params.small_write_size,
                      "write_back": params.write_back,
                      "poll_interval": params.poll_interval, "prop_poll_interval": params.prop_poll_interval,
                      "quick": params.quick, "full": args.full, "large": args.large, "crypt_names": args.crypt_names,
                      "workloads": sorted(selected), "servers": servers, "gateways": names}
    if "webdav" in servers:
        results.params["webdav_workloads"] = sorted(args.only or WEBDAV_WORKLOADS)
    results.notes += [
        "Every gateway reaches the server through its own counting TCP proxy (benchmarks/proxy.py), "
        "which measures the bytes sent/received.",
        f"Same settings for all: write-back {params.write_back:g} s (cloudgw --write-back, rclone --vfs-write-back; "
        f"s3fs uploads on close), remote-change poll {params.poll_interval:g} s, {params.prop_poll_interval:g} s in "
        "workload 7 (cloudgw --poll-interval, rclone --dir-cache-time and --poll-interval, s3fs stat_cache_expire).",
        "'close → on remote': cloudgw `sync --wait` (which starts the upload at once); rclone and s3fs: the "
        "bucket (WebDAV: the DAV tree on disk) is polled until the object (size / new ETag) or all objects "
        "are there.",
        "Page cache dropped (echo 3 > drop_caches) before every read and metadata phase; 'cached' = in the "
        "gateway's disk cache.",
        "'daemon CPU' (s/GB): user + system CPU time of the gateway process (/proc/PID/stat utime + stime, all "
        "its threads) per GB of file data, from the first byte read or written until the read ends or the "
        "data is on the remote (cloudgw's `sync --wait` and the benchmark's polling are other processes).",
    ]
    started = time.monotonic()
    try:
        gateways = [GATEWAYS[n](workdir, settings) for n in names]
        kinds = {"webdav" if s == "webdav" else "s3" for s in servers if s != "smb"}
        results.versions = {g.name: g.version() for g in gateways
                            if g.name != "raw" and not g.encrypted and kinds & g.kinds}
        encrypted = [g.name for g in gateways if g.encrypted]
        if encrypted and "s3" in kinds:
            names_how = ("encrypted on both (cloudgw --encrypt-names, rclone filename_encryption standard)"
                         if args.crypt_names else "in clear on both (cloudgw's default; rclone filename_encryption "
                         "off, which appends .bin)")
            results.notes.append(
                f"Encrypted ({', '.join(encrypted)}; S3 servers only, workloads "
                + ", ".join(TITLES[w] for w in sorted(CRYPT_WORKLOADS & selected)) + "): cloudgw-crypt mounts a "
                "prefix made an encrypted remote by `cloudgw crypt init` (default Argon2id, not timed) with "
                "--crypt-password-file; rclone-crypt mounts a crypt remote over the S3 remote (RCLONE_CONFIG_* "
                "environment variables, password from `rclone obscure -`), with the same mount options as rclone. "
                f"Names {names_how}. Each reads its own encrypted copy of the big file (put through its own "
                "format at setup).")
        if "webdav" in servers:
            results.notes.append(
                "WebDAV (Apache mod_dav_fs): cloudgw mounts webdav://127.0.0.1:PORT/dav/PREFIX (credentials in a "
                "0600 netrc file), rclone `:webdav:` with vendor other (an 0600 rclone.conf, password obscured); "
                "s3fs has no WebDAV. Shared data and the outside change of workload 7 are written into the DAV "
                "tree on disk (aside, then renamed into place); requests per step are counted in Apache's access "
                "log. rclone has no change feed on WebDAV: it sees remote changes "
                "when --dir-cache-time expires. Workloads on WebDAV: "
                + ", ".join(TITLES[w] for w in sorted(args.only or WEBDAV_WORKLOADS)) + ".")
        for server_name in servers:
            if server_name == "smb":
                from benchmarks.smb import run_smb

                run_smb(workdir, params, results, runs, settings, explicit_size=args.size is not None)
                continue
            chosen = (args.only or WEBDAV_WORKLOADS) if server_name == "webdav" else selected
            run_server(server_name, workdir, params, results, chosen, gateways, runs)
    except KeyboardInterrupt:
        log.warning("interrupted: writing what was measured so far")
        results.notes.append("INTERRUPTED: incomplete run")
    finally:
        results.duration_s = time.monotonic() - started
        results.machine["load_at_end"] = load_average()
        cleanup_stale(workdir)
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(results.markdown())
    if not args.no_save:
        json_path, md_path = results.write(args.results_dir)
        print(f"written: {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}, "
              f"{md_path.relative_to(ROOT) if md_path.is_relative_to(ROOT) else md_path}")
    return 0


def _terminate(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt


def run_server(server_name: str, workdir: Path, params: Params, results: Results, selected: set[int],
               gateways: list[Gateway], runs: int) -> None:
    log.info("starting %s", server_name)
    try:
        cm = start_server(server_name)
        server = cm.__enter__()
    except Exception as exc:  # noqa: BLE001
        log.error("could not start %s: %s", server_name, exc)
        results.notes.append(f"{server_name}: could not start the server: {str(exc).splitlines()[0][:200]}")
        return
    try:
        if server_name == "swift":
            results.versions.setdefault("swift", _swift_version())
        elif server_name == "webdav":
            results.versions.setdefault("apache", _apache_version())
        else:
            results.versions.setdefault("moto", _moto_version())
        kind = "webdav" if server_name == "webdav" else "s3"
        skipped = [gw.name for gw in gateways if kind not in gw.kinds]
        if skipped:
            log.info("[%s] skipped (no %s): %s", server_name, kind, ", ".join(skipped))
            results.notes.append(f"{server_name}: {', '.join(skipped)} skipped (not run on {kind} servers).")
        gateways = [gw for gw in gateways if kind in gw.kinds]
        bench = ServerBench(server, workdir / server_name, params, results, selected, gateways, name=server_name)
        for gw in gateways:  # each server gets its own mountpoints and caches
            gw.__init__(workdir / server_name, gw.settings)
        t = time.monotonic()
        bench.setup()
        log.info("[%s] setup done in %.0f s", server_name, time.monotonic() - t)
        sessions = bench.sessions()
        for run in range(runs):
            order = gateways[run % len(gateways):] + gateways[:run % len(gateways)]
            for label, session in sessions:
                for gw in order:
                    t = time.monotonic()
                    session(gw, run)
                    log.info("[%s] run %d/%d, %s, %s: %.1f s", server_name, run + 1, runs, label, gw.name,
                             time.monotonic() - t)
    finally:
        cm.__exit__(None, None, None)


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


def _apache_version() -> str:
    from tests.servers.apache import APACHE

    out = subprocess.run([APACHE, "-v"], capture_output=True, text=True).stdout.splitlines()
    return out[0].split(":", 1)[1].strip() if out and ":" in out[0] else "?"


def _swift_version() -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-swift"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def cleanup_stale(workdir: Path) -> None:
    """Unmount whatever a previous (killed) run left mounted under workdir."""
    if not workdir.exists():
        return
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in points:
        if point.startswith(str(workdir) + "/"):
            _lazy_unmount(Path(point))


if __name__ == "__main__":
    sys.exit(main())
