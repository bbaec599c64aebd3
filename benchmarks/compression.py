"""What compression of an encrypted remote saves and costs, end to end through the real mount:
``.venv/bin/python -m benchmarks.compression [--runs N] [--quick]``.

Four corpora (built once in the workdir, reused while their parameters stay the same):

* ``text``: Python sources of this machine's Python 3.11 (stdlib first, then site-packages) and the
  licence texts of /usr/share/common-licenses, as they are (many small files);
* ``text-big``: the same texts concatenated into 32 MiB files (large files take the two-pass path of
  cloudgw/remotes/crypt_compressed.py: every chunk compressed twice);
* ``office``: docx-like and xlsx-like zips of deflated XML, as Word and Excel write them (built
  from the same texts, as benchmarks/compression_estimate.py does, ~35 KiB to 2 MiB each), plus the PDF and ODT files found on the machine;
* ``office-bin``: the same files, every name ending in ``.bin``: cloudgw does not skip them by
  name (cloudgw/crypt/compress.py), so this shows what trying to compress them costs.

Three modes: ``crypt`` (encrypted only), ``zstd`` and ``lz4`` (``cloudgw crypt init --compress``).
For each run, corpus and mode (the mode order rotates with the run), on a loopback moto server:
a fresh prefix, ``cloudgw crypt init`` with a cheap KDF, a gateway mounted through a counting
proxy (benchmarks/proxy.py), ``cp -r`` of the corpus (its source warm in the page cache) and
``cloudgw sync --wait``: write + upload time, bytes sent, daemon CPU (utime + stime of
/proc/PID/stat).  Unmount, drop the page cache, mount a second gateway with an empty cache, list
and read every file (cold read): time, bytes received, daemon CPU.  Then (not timed) every file is
compared with the source, the objects are listed (stored size) and deleted.

Sizes: text 64 MiB, office 128 MiB by default (--text-mib, --office-mib; --quick: 8 and 16, 1 run).
A read phase that makes no progress for STALL_S is abandoned (py-spy dump of the daemon in the
workdir, daemon killed) and the cell counted as failed; the others go on.  ``--code DIR`` runs
cloudgw from another source tree (e.g. ``git archive REV cloudgw | tar -x -C DIR``) to compare
commits.

Prints a Markdown table (medians over the runs) and writes
benchmarks/results/compression-YYYYMMDD-HHMMSS.{md,json}.  Needs root (mounts, drop_caches) and
/dev/fuse.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

from benchmarks.gateways import alive, pids_with_args
from benchmarks.proxy import CountingProxy
from benchmarks.report import machine_description
from benchmarks.workloads import cpu_seconds, drop_caches, status_kib

log = logging.getLogger("compression")
ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLOUDGW = str(Path(sys.executable).with_name("cloudgw"))
MiB = 1 << 20
BUCKET = "cloudgw-bench-compression"
PASSWORD = "compression benchmark password"
CORPORA = ["text", "text-big", "office", "office-bin"]
BIG_FILE = 32 * MiB  # text-big: ~9 MiB stored with zstd, over crypt_compressed.KEEP_SEALED (8 MiB): two passes
MODES = ["crypt", "zstd", "lz4"]
PYLIB = Path("/root/.pyenv/versions/3.11.7/lib/python3.11")
CORPUS_VERSION = 2  # bump when the way corpora are built changes


# ---------------------------------------------------------------- corpora

def _text_sources() -> list[Path]:
    """Python sources (stdlib first, then site-packages, each sorted) and licence texts."""
    import sysconfig

    lib = PYLIB if PYLIB.is_dir() else Path(sysconfig.get_paths()["stdlib"])
    stdlib = sorted(p for p in lib.rglob("*.py") if "site-packages" not in p.parts)
    site = sorted(lib.glob("site-packages/**/*.py"))
    licences = sorted(p for p in Path("/usr/share/common-licenses").glob("*") if p.is_file())
    return [p for p in licences + stdlib + site if p.is_file() and not p.is_symlink()]


def _docx(out: Path, lines: list[bytes]) -> None:
    paras = b"".join(b'<w:p><w:pPr><w:pStyle w:val="Normal"/></w:pPr><w:r><w:rPr><w:rFonts w:ascii="Calibri"/>'
                     b'</w:rPr><w:t xml:space="preserve">' + escape(l.decode("utf-8", "replace")).encode() +
                     b"</w:t></w:r></w:p>" for l in lines)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", b'<?xml version="1.0"?><Types/>')
        z.writestr("word/document.xml", b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                   b"<w:document><w:body>" + paras + b"</w:body></w:document>")
        z.writestr("word/styles.xml", b'<?xml version="1.0"?><w:styles/>')


def _xlsx(out: Path, words: list[str], rows: int, rng: random.Random) -> None:
    strings = sorted(set(words))[:2000] or ["x"]
    parts = []
    for r in range(1, rows + 1):
        cells = [f'<c r="A{r}" t="s"><v>{rng.randrange(len(strings))}</v></c>',
                 f'<c r="B{r}"><v>{rng.randrange(1, 10**6)}</v></c>',
                 f'<c r="C{r}"><v>{rng.uniform(0, 10**4):.4f}</v></c>',
                 f'<c r="D{r}" s="1"><v>{44000 + rng.randrange(2000)}</v></c>',
                 f'<c r="E{r}"><f>B{r}*C{r}</f><v>{rng.uniform(0, 10**9):.2f}</v></c>',
                 f'<c r="F{r}" t="s"><v>{rng.randrange(len(strings))}</v></c>']
        parts.append(f'<row r="{r}" spans="1:6">{"".join(cells)}</row>')
    sheet = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet><sheetData>' + "".join(parts) +
             "</sheetData></worksheet>")
    shared = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst>' +
              "".join(f"<si><t>{escape(s)}</t></si>" for s in strings) + "</sst>")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook><sheets><sheet name="Sheet1"/></sheets></workbook>')
        z.writestr("xl/worksheets/sheet1.xml", sheet)
        z.writestr("xl/sharedStrings.xml", shared)


def _build_text(dest: Path, target: int) -> None:
    total = 0
    for src in _text_sources():
        if total >= target:
            break
        rel = Path("licences", src.name) if src.parent.name == "common-licenses" else src.relative_to(PYLIB)
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
        total += out.stat().st_size


def _build_text_big(dest: Path, target: int) -> None:
    """The text sources concatenated into BIG_FILE-sized files (like logs, CSV or SQL dumps)."""
    sources = _text_sources()
    k = total = 0
    while total < target:
        with open(dest / f"dump{total // BIG_FILE:03d}.txt", "wb") as out:
            n = 0
            while n < min(BIG_FILE, target - total):
                data = sources[k % len(sources)].read_bytes()[:BIG_FILE - n]
                k += 1
                out.write(data)
                n += len(data)
        total += n


def _build_office(dest: Path, target: int) -> None:
    rng = random.Random(20261206)
    sources = _text_sources()
    found = sorted(Path("/usr/share/doc").rglob("*.pdf")) + sorted(Path("/usr/share/docutils").rglob("*.odt"))
    total = 0
    (dest / "found").mkdir(parents=True, exist_ok=True)
    for src in found:
        shutil.copyfile(src, dest / "found" / src.name)
        total += src.stat().st_size
    i = k = 0
    while total < target:
        sub = dest / f"dept{i % 8}"
        sub.mkdir(exist_ok=True)
        want = int(2 ** rng.uniform(17, 23))  # XML text, log-uniform 128 KiB .. 8 MiB: ~35 KiB .. 2 MiB zipped
        lines: list[bytes] = []
        size = 0
        while size < want:
            data = sources[k % len(sources)].read_bytes()
            k += 1
            lines += data.splitlines()
            size += len(data)
        if i % 5 in (1, 3):
            out = sub / f"sheet{i:04d}.xlsx"
            words = re.findall(r"[A-Za-z_]{3,20}", b"\n".join(lines[:5000]).decode("utf-8", "replace"))
            _xlsx(out, words, rows=max(100, want // 200), rng=rng)
        else:
            out = sub / f"report{i:04d}.docx"
            _docx(out, lines)
        total += out.stat().st_size
        i += 1


def _manifest(root: Path) -> dict[str, list]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = [p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()]
    return out


def build_corpora(workdir: Path, text_target: int, office_target: int) -> dict[str, dict]:
    """{corpus: {"path": dir, "files": {relpath: [size, sha256]}}}, built once per (version, sizes)."""
    out = {}
    for name in CORPORA:
        target = text_target if name.startswith("text") else office_target
        base = workdir / f"corpora-v{CORPUS_VERSION}-{text_target // MiB}-{office_target // MiB}MiB"
        d = base / name
        mf = base / f"{name}.manifest.json"
        if not mf.exists():
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            log.info("building corpus %s in %s", name, d)
            if name == "text":
                _build_text(d, target)
            elif name == "text-big":
                _build_text_big(d, target)
            elif name == "office":
                _build_office(d, target)
            else:  # office-bin: the office corpus, every name ending in .bin
                office = base / "office"
                for p in sorted(office.rglob("*")):
                    if p.is_file():
                        rel = p.relative_to(office)
                        q = (d / rel).with_name(rel.stem + ("-" + rel.suffix[1:] if rel.suffix else "") + ".bin")
                        q.parent.mkdir(parents=True, exist_ok=True)
                        os.link(p, q)
            mf.write_text(json.dumps(_manifest(d)))
        out[name] = {"path": d, "files": json.loads(mf.read_text())}
    return out


# ---------------------------------------------------------------- the gateway

class Mount:
    """One ``cloudgw mount`` of s3://BUCKET/prefix through its own counting proxy, empty cache."""

    def __init__(self, server, workdir: Path, prefix: str, tag: str, password_file: Path) -> None:  # noqa: ANN001
        self.server = server
        self.mnt = workdir / f"mnt-{tag}"
        self.cache = workdir / f"cache-{tag}"
        self.prefix = prefix
        self.password_file = password_file
        self.proxy: CountingProxy | None = None
        self.env = {**os.environ, **server.env()}
        self.pids: list[int] = []

    def __enter__(self) -> "Mount":
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
        shutil.rmtree(self.cache, ignore_errors=True)
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True)
        self.proxy = CountingProxy(int(self.server.endpoint_url.rsplit(":", 1)[1]))
        self.env["AWS_ENDPOINT_URL"] = self.proxy.endpoint_url
        try:
            run([CLOUDGW, "mount", f"s3://{BUCKET}/{self.prefix}", str(self.mnt), "--path-style",
                 "--endpoint-url", self.proxy.endpoint_url, "--cache-dir", str(self.cache),
                 "--write-back", "1", "--poll-interval", "60", "--log-level", "INFO",
                 "--crypt-password-file", str(self.password_file)], env=self.env, timeout=120)
            deadline = time.monotonic() + 30
            while not (os.path.ismount(self.mnt) and (pids := pids_with_args("mount", str(self.mnt)))):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.mnt} not mounted / no daemon after 30 s")
                time.sleep(0.05)
            self.pids = pids
        except BaseException:
            self.cleanup()
            raise
        return self

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def counters(self) -> tuple[int, int, int]:
        """(bytes sent to the server, bytes received, TCP connections) through this mount's proxy so far."""
        return self.proxy.snapshot()

    def peak_rss_mib(self) -> float:
        return max((status_kib(p, "VmHWM") for p in self.pids), default=0) / 1024

    def sync(self) -> None:
        run([CLOUDGW, "sync", str(self.mnt), "--wait", "--timeout", "900"], env=self.env, timeout=960)

    def bad_log_lines(self) -> list[str]:
        path = self.cache / "cloudgw.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return [l for l in text.splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) ", l)]

    def umount(self) -> None:
        run([CLOUDGW, "umount", str(self.mnt), "--timeout", "300"], env=self.env, timeout=400)
        deadline = time.monotonic() + 60
        while any(alive(p) for p in self.pids):
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not exit after umount")
            time.sleep(0.05)

    def abort(self) -> None:
        """Kill the daemon and detach the mount at once."""
        for pid in self.pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)

    def cleanup(self) -> None:
        """Whatever state we are in: no mount, no daemon of ours, no proxy."""
        if os.path.ismount(self.mnt):
            with contextlib.suppress(Exception):
                self.umount()
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
        for pid in self.pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def run(argv: list[str], env: dict | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({proc.returncode}): {proc.stderr.strip()[-600:]}")
    return proc.stdout


def warm(root: Path) -> None:
    """Read the source tree so that the timed copy does not wait for the disk."""
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass


def cold_read(root: Path) -> tuple[float, float, int, int]:
    """List the tree (lstat of every entry), then read every file: (list s, total s, files, bytes)."""
    t0 = time.perf_counter()
    files = []
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                else:
                    e.stat(follow_symlinks=False)
                    files.append(e.path)
    t_list = time.perf_counter() - t0
    buf = bytearray(1 << 20)
    total = 0
    for path in sorted(files):
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
                _progress[0] += 1
    return t_list, time.perf_counter() - t0, len(files), total


def verify(root: Path, manifest: dict[str, list]) -> list[str]:
    """Names whose content through the mount differs from the source (or that are missing / extra)."""
    seen = {}
    for p in root.rglob("*"):
        if p.is_file():
            seen[str(p.relative_to(root))] = [p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()]
            _progress[0] += 1
    return sorted(k for k in set(seen) | set(manifest) if seen.get(k) != manifest.get(k))


_progress = [0]  # bumped by every read through a mount: the watchdog's sign of life
STALL_S = 120  # a read phase that makes no progress this long is abandoned (the daemon hangs)


def guarded(gw: "Mount", fn, what: str):  # noqa: ANN001, ANN201
    """``fn()`` (reads through ``gw``) in a thread; if it stops making progress for STALL_S, dump the
    daemon's stacks (py-spy, if installed) into the workdir, kill the daemon, detach the mount (which
    fails the blocked read) and raise."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=target, daemon=True, name=what)
    t.start()
    last, since = _progress[0], time.monotonic()
    while t.isalive():
        t.join(1)
        if _progress[0] != last:
            last, since = _progress[0], time.monotonic()
        elif t.isalive() and time.monotonic() - since > STALL_S:
            spy = Path(sys.executable).with_name("py-spy")
            dump = gw.mnt.parent / f"stall-{gw.prefix}.txt"
            if spy.exists() and gw.pids:
                with open(dump, "w") as out:
                    subprocess.run([str(spy), "dump", "--pid", str(gw.pids[0])], stdout=out, stderr=out, timeout=60)
            gw.abort()
            t.join(60)
            raise RuntimeError(f"{what}: no progress for {STALL_S} s (daemon stacks in {dump}; daemon killed)")
    if "error" in box:
        raise box["error"]
    return box["result"]


# ---------------------------------------------------------------- one cell

def one_cell(server, admin, workdir: Path, corpus: dict, cname: str, mode: str, run_no: int,  # noqa: ANN001
             password_file: Path) -> dict:
    prefix = f"r{run_no}-{cname}-{mode}-{int(time.time() * 1000) % 10**8}"
    key = workdir / "recovery.pem"
    key.unlink(missing_ok=True)
    run([CLOUDGW, "crypt", "init", f"s3://{BUCKET}/{prefix}", "--endpoint-url", server.endpoint_url, "--path-style",
         "--password-file", str(password_file), "--recovery-key-out", str(key), "--kdf-memory", "19",
         "--kdf-iterations", "2", *(["--compress", mode] if mode != "crypt" else [])],
        env={**os.environ, **server.env()}, timeout=120)
    plain = sum(s for s, _ in corpus["files"].values())
    src = corpus["path"]
    res: dict = {"corpus": cname, "mode": mode, "run": run_no, "prefix": prefix, "plain_bytes": plain,
                 "files": len(corpus["files"]), "load_at_start": os.getloadavg()[0]}
    try:
        warm(src)
        with Mount(server, workdir, prefix, "w", password_file) as gw:
            cpu0, (up0, down0, conn0) = gw.cpu(), gw.counters()
            t0 = time.perf_counter()
            run(["cp", "-r", f"{src}/.", str(gw.mnt)], timeout=1800)
            t_close = time.perf_counter() - t0
            gw.sync()
            t = time.perf_counter() - t0
            cpu1, (up1, down1, conn1) = gw.cpu(), gw.counters()
            res.update(write_s=t, write_close_s=t_close, sent_bytes=up1 - up0, write_received_bytes=down1 - down0,
                       write_connections=conn1 - conn0, write_cpu_s=cpu1 - cpu0, write_peak_rss_mib=gw.peak_rss_mib(),
                       write_daemon_pids=gw.pids)
            gw.umount()
            res["write_bad_log"] = gw.bad_log_lines()[:20]
        objects = [o for page in admin.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
                   for o in page.get("Contents", [])]
        res["stored_bytes"] = sum(o["Size"] for o in objects)
        res["objects"] = len(objects)
        drop_caches()
        with Mount(server, workdir, prefix, "r", password_file) as gw:
            cpu0, (up0, down0, conn0) = gw.cpu(), gw.counters()
            t_list, t, nfiles, nbytes = guarded(gw, lambda: cold_read(gw.mnt), "cold read")
            cpu1, (up1, down1, conn1) = gw.cpu(), gw.counters()
            res.update(read_list_s=t_list, read_s=t, read_files=nfiles, read_bytes=nbytes,
                       received_bytes=down1 - down0, read_sent_bytes=up1 - up0, read_connections=conn1 - conn0,
                       read_cpu_s=cpu1 - cpu0, read_peak_rss_mib=gw.peak_rss_mib())
            bad = guarded(gw, lambda: verify(gw.mnt, corpus["files"]), "verify")
            res["mismatches"] = bad[:20]
            res["mismatch_count"] = len(bad)
            gw.umount()
            res["read_bad_log"] = gw.bad_log_lines()[:20]
    finally:
        _delete_prefix(admin, prefix)
    if res["mismatch_count"]:
        log.warning("%s/%s run %d: %d files differ from the source: %s", cname, mode, run_no,
                    res["mismatch_count"], res["mismatches"][:5])
    for k in ("write_bad_log", "read_bad_log"):
        if res[k]:
            log.warning("%s/%s run %d: daemon log (%s): %s", cname, mode, run_no, k, res[k][:3])
    return res


def _delete_prefix(admin, prefix: str) -> None:  # noqa: ANN001
    with contextlib.suppress(Exception):
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                admin.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


# ---------------------------------------------------------------- report

def _median(rows: list[dict], f) -> float | None:  # noqa: ANN001
    vals = [f(r) for r in rows if r is not None]
    return statistics.median(vals) if vals else None


def summarize(cells: list[dict]) -> list[dict]:
    out = []
    for cname in CORPORA:
        base = None
        for mode in MODES:
            rows = [c for c in cells if c["corpus"] == cname and c["mode"] == mode and "error" not in c]
            if not rows:
                out.append({"corpus": cname, "mode": mode, "runs": 0})
                continue
            plain = rows[0]["plain_bytes"]
            s = {"corpus": cname, "mode": mode, "runs": len(rows), "files": rows[0]["files"],
                 "plain_mib": plain / MiB,
                 "sent_mib": _median(rows, lambda r: r["sent_bytes"] / MiB),
                 "stored_mib": _median(rows, lambda r: r["stored_bytes"] / MiB),
                 "saved_pct": _median(rows, lambda r: 100 * (1 - r["sent_bytes"] / plain)),
                 "stored_saved_pct": _median(rows, lambda r: 100 * (1 - r["stored_bytes"] / plain)),
                 "write_mbs": _median(rows, lambda r: plain / r["write_s"] / 1e6),
                 "write_mbs_range": [min(plain / r["write_s"] / 1e6 for r in rows),
                                     max(plain / r["write_s"] / 1e6 for r in rows)],
                 "write_cpu_s_per_gb": _median(rows, lambda r: r["write_cpu_s"] / (plain / 1e9)),
                 "read_mbs": _median(rows, lambda r: plain / r["read_s"] / 1e6),
                 "read_mbs_range": [min(plain / r["read_s"] / 1e6 for r in rows),
                                    max(plain / r["read_s"] / 1e6 for r in rows)],
                 "read_list_s": _median(rows, lambda r: r["read_list_s"]),
                 "received_mib": _median(rows, lambda r: r["received_bytes"] / MiB),
                 "read_cpu_s_per_gb": _median(rows, lambda r: r["read_cpu_s"] / (plain / 1e9)),
                 "write_connections": _median(rows, lambda r: r["write_connections"]),
                 "read_connections": _median(rows, lambda r: r["read_connections"]),
                 "write_peak_rss_mib": _median(rows, lambda r: r["write_peak_rss_mib"]),
                 "read_peak_rss_mib": _median(rows, lambda r: r["read_peak_rss_mib"]),
                 "mismatches": sum(r["mismatch_count"] for r in rows)}
            if mode == "crypt":
                base = s
            elif base is not None and base.get("runs"):
                s["write_vs_crypt"] = s["write_mbs"] / base["write_mbs"]
                s["read_vs_crypt"] = s["read_mbs"] / base["read_mbs"]
                s["write_cpu_vs_crypt"] = s["write_cpu_s_per_gb"] / base["write_cpu_s_per_gb"]
                s["read_cpu_vs_crypt"] = s["read_cpu_s_per_gb"] / base["read_cpu_s_per_gb"]
            out.append(s)
    return out


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "–" if x is None else format(x, fmt)


def markdown(meta: dict, summary: list[dict]) -> str:
    m = meta["machine"]
    lines = [f"# cloudgw: compression of an encrypted remote, end to end ({meta['started']})", "",
             f"Machine: {m['cpu']}, nproc {meta['nproc']}, {m['memory']} RAM, {m['kernel']}, disk {m['disk']}; "
             f"load average (1/5/15 min) at the start {meta['load_start']}, at the end {meta['load_end']} "
             "(other jobs may share the machine).",
             f"Versions: cloudgw git {meta['git_rev']}{' (uncommitted changes in cloudgw/: ' + meta['git_dirty'] + ')' if meta['git_dirty'] else ''}"
             f"{' — but cloudgw run from ' + meta['code_option'] + ' (--code), not the working tree' if meta.get('code_option') else ''}; "
             f"moto {meta['moto']}; zstandard {meta['zstandard']}; lz4 {meta['lz4']}; Python {m['python']}.",
             f"Command: `{meta['command']}`; runs {meta['runs']}; total time {meta['total_s'] / 60:.1f} min.", "",
             "Each cell: a fresh prefix of a loopback moto S3 server (no IAM auth), `cloudgw crypt init` "
             "(--kdf-memory 19 --kdf-iterations 2; zstd/lz4: --compress), a gateway mounted through a counting "
             "TCP proxy (--write-back 1 --poll-interval 60 --log-level INFO --crypt-password-file), `cp -r` of the "
             "corpus (source warm in the page cache) then `cloudgw sync --wait`; unmount, drop the page cache, "
             "a second gateway with an empty cache lists and reads every file (cold read; the listing is timed too, "
             "it includes the 188-byte size reads a compressed vault needs). Every file read is then compared "
             "with its source (not timed). Medians over the runs (min–max for throughputs); MB/s = 10^6 bytes of "
             "plaintext per second; daemon CPU = utime + stime of the gateway process per 10^9 bytes of plaintext; "
             "sent/received = every byte through the proxy (requests and headers too); stored = sum of object sizes. "
             "×crypt = the mode's median over crypt's (throughput: > 1 faster; CPU: > 1 costlier).", ""]
    for name, desc in meta["corpora"].items():
        lines.append(f"- **{name}**: {desc}")
    lines += ["", "| corpus | mode | plaintext MiB (files) | sent MiB | saved | stored MiB | saved | write+upload MB/s | "
              "×crypt | CPU write s/GB | cold read MB/s | ×crypt | of which listing s | received MiB | CPU read s/GB |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        if not s.get("runs"):
            lines.append(f"| {s['corpus']} | {s['mode']} | failed |" + " |" * 12)
            continue
        wr, rr = s["write_mbs_range"], s["read_mbs_range"]
        lines.append(
            f"| {s['corpus']} | {s['mode']} | {s['plain_mib']:.1f} ({s['files']}) | {s['sent_mib']:.1f} | "
            f"{s['saved_pct']:.0f}% | {s['stored_mib']:.1f} | {s['stored_saved_pct']:.0f}% | {s['write_mbs']:.1f} ({wr[0]:.1f}–{wr[1]:.1f}) | "
            f"{_f(s.get('write_vs_crypt'), '.2f')} | {s['write_cpu_s_per_gb']:.1f} (×{_f(s.get('write_cpu_vs_crypt'), '.2f')}) | "
            f"{s['read_mbs']:.1f} ({rr[0]:.1f}–{rr[1]:.1f}) | {_f(s.get('read_vs_crypt'), '.2f')} | "
            f"{s['read_list_s']:.2f} | {s['received_mib']:.1f} | "
            f"{s['read_cpu_s_per_gb']:.1f} (×{_f(s.get('read_cpu_vs_crypt'), '.2f')}) |".replace("(×–)", ""))
    lines += ["", "Connections through the proxy (moto's server answers HTTP/1.0-style and closes the connection after "
              "each response, so this is about the number of requests) and the daemon's peak RSS (VmHWM):", "",
              "| corpus | mode | write: connections | per file | cold read: connections | per file | "
              "peak RSS write MiB | peak RSS read MiB |", "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        if s.get("runs"):
            lines.append(f"| {s['corpus']} | {s['mode']} | {s['write_connections']:.0f} | "
                         f"{s['write_connections'] / s['files']:.2f} | {s['read_connections']:.0f} | "
                         f"{s['read_connections'] / s['files']:.2f} | {s['write_peak_rss_mib']:.0f} | "
                         f"{s['read_peak_rss_mib']:.0f} |")
    if meta.get("git_dirty_end") != meta.get("git_dirty"):
        lines += ["", f"Uncommitted changes in cloudgw/ at the end: {meta.get('git_dirty_end') or 'none'} "
                  "(other engineers work in the same tree; each mount runs the code as it is then)."]
    bad = [s for s in summary if s.get("mismatches")]
    if bad:
        lines += ["", "**Files that read back different from their source:** " +
                  ", ".join(f"{s['corpus']}/{s['mode']}: {s['mismatches']}" for s in bad)]
    errors = meta.get("errors") or []
    if errors:
        lines += ["", "**Failed cells:**"] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

def _version(mod: str) -> str:
    from importlib.metadata import version

    with contextlib.suppress(Exception):
        return version(mod)
    return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compression", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=None, help="runs per corpus and mode (default 3; --quick: 1)")
    ap.add_argument("--quick", action="store_true", help="1 run, small corpora (text 8 MiB, office 16 MiB)")
    ap.add_argument("--text-mib", type=int, default=None, help="size of the text corpus (default 64; --quick: 8)")
    ap.add_argument("--office-mib", type=int, default=None,
                    help="size of the office corpora (default 128; --quick: 16)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cloudgw-bench-compression"))
    ap.add_argument("--code", type=Path, default=None,
                    help="run cloudgw from this source tree (PYTHONPATH; e.g. `git archive REV cloudgw | tar -x -C DIR`) "
                         "instead of the working tree")
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        sys.exit("benchmarks.compression: needs root and /dev/fuse")
    runs = args.runs or (1 if args.quick else 3)
    text_target = (args.text_mib or (8 if args.quick else 64)) * MiB
    office_target = (args.office_mib or (16 if args.quick else 128)) * MiB
    corpora_sel = [c for c in args.corpora.split(",") if c]
    modes_sel = [m for m in args.modes.split(",") if m]
    workdir = args.workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    if args.code is not None:
        os.environ["PYTHONPATH"] = str(args.code.absolute())  # every cloudgw subprocess imports from there
    code = subprocess.run([sys.executable, "-c", "import cloudgw; print(cloudgw.__file__)"], cwd="/",
                          capture_output=True, text=True).stdout.strip()
    log.info("cloudgw code: %s", code)
    for tag in ("w", "r"):  # a mount left over by a killed earlier run
        if os.path.ismount(workdir / f"mnt-{tag}"):
            subprocess.run(["fusermount3", "-u", "-z", str(workdir / f"mnt-{tag}")], capture_output=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    started = time.time()
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join([".venv/bin/python -m benchmarks.compression", *(argv if argv is not None else sys.argv[1:])]),
            "runs": runs, "text_mib": text_target // MiB, "office_mib": office_target // MiB, "nproc": os.cpu_count(),
            "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "git_rev": git("rev-parse", "--short", "HEAD"),
            "git_dirty": git("status", "--porcelain", "--", "cloudgw").replace("\n", "; "),
            "moto": _version("moto"), "zstandard": _version("zstandard"), "lz4": _version("lz4"),
            "cloudgw_code": code, "code_option": str(args.code) if args.code else None,
            "machine": machine_description(workdir)}
    corpora = build_corpora(workdir, text_target, office_target)
    descs = {"text": "Python 3.11 sources (stdlib, then site-packages) and /usr/share/common-licenses, as they are",
             "text-big": f"the same texts concatenated into {BIG_FILE // MiB} MiB files (like logs or dumps; files "
                         "whose stored form exceeds 8 MiB have every chunk compressed twice: measure, then serve)",
             "office": "docx-like and xlsx-like zips of deflated XML (built from the same texts) plus the PDF/ODT "
                       "files found in /usr/share/doc, /usr/share/docutils",
             "office-bin": "the office files, every name ending in .bin (compression is tried on them)"}
    meta["corpora"] = {c: f"{sum(s for s, _ in corpora[c]['files'].values()) / MiB:.1f} MiB in "
                          f"{len(corpora[c]['files'])} files; {descs[c]}" for c in corpora_sel}
    for c in corpora_sel:
        log.info("corpus %s: %s", c, meta["corpora"][c])

    from tests.servers.moto import start_moto

    password_file = workdir / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    cells: list[dict] = []
    errors: list[str] = []
    try:
        with start_moto(auth=False) as server:
            admin = server.client()
            admin.create_bucket(Bucket=BUCKET)
            for r in range(runs):
                for cname in corpora_sel:
                    order = modes_sel[r % len(modes_sel):] + modes_sel[:r % len(modes_sel)]
                    for mode in order:
                        log.info("run %d/%d: %s, %s", r + 1, runs, cname, mode)
                        try:
                            c = one_cell(server, admin, workdir, corpora[cname], cname, mode, r, password_file)
                        except KeyboardInterrupt:
                            raise
                        except Exception as e:  # noqa: BLE001
                            log.exception("%s/%s run %d failed", cname, mode, r)
                            for tag in ("w", "r"):  # keep the daemons' logs of a failed cell
                                with contextlib.suppress(OSError):
                                    shutil.copyfile(workdir / f"cache-{tag}" / "cloudgw.log",
                                                    workdir / f"failed-{cname}-{mode}-{r}-{tag}.log")
                            errors.append(f"{cname}/{mode} run {r}: {e}"[:500])
                            cells.append({"corpus": cname, "mode": mode, "run": r, "error": str(e)[:2000]})
                            continue
                        cells.append(c)
                        p = c["plain_bytes"]
                        log.info("  write+upload %.1f MB/s (%.1f s), sent %.1f MiB (%.0f%% saved), CPU %.1f s; "
                                 "cold read %.1f MB/s (list %.2f s), received %.1f MiB, CPU %.1f s%s",
                                 p / c["write_s"] / 1e6, c["write_s"], c["sent_bytes"] / MiB,
                                 100 * (1 - c["sent_bytes"] / p), c["write_cpu_s"], p / c["read_s"] / 1e6,
                                 c["read_list_s"], c["received_bytes"] / MiB, c["read_cpu_s"],
                                 f"; {c['mismatch_count']} MISMATCHES" if c["mismatch_count"] else "")
    finally:
        meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        meta["total_s"] = time.time() - started
        meta["errors"] = errors
        meta["git_dirty_end"] = git("status", "--porcelain", "--", "cloudgw").replace("\n", "; ")
        if cells:
            summary = summarize([c for c in cells if c["corpus"] in corpora_sel])
            md = markdown(meta, [s for s in summary if s["corpus"] in corpora_sel and s["mode"] in modes_sel])
            print(md)
            RESULTS_DIR.mkdir(exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
            (RESULTS_DIR / f"compression-{stamp}.md").write_text(md)
            (RESULTS_DIR / f"compression-{stamp}.json").write_text(json.dumps(
                {"meta": meta, "summary": summary, "cells": cells}, indent=1, default=str))
            log.info("wrote %s/compression-%s.{md,json}", RESULTS_DIR, stamp)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
