"""Results: raw records, medians with min–max, ratios, JSON and Markdown.

Every measurement is one ``Record`` (server, workload, metric, gateway, run,
value or error).  The tables show per metric the median of the runs and their
min–max, then the ratio of cloudgw's median to each peer's and to raw.  For
"lower is better" metrics (seconds, bytes, MiB of RSS) a ratio below 1 means
cloudgw is better; for the others above 1.

The encrypted gateways (``cloudgw-crypt``, ``rclone-crypt``) get a table of
their own per server: their rows side by side with the unencrypted cloudgw and
rclone, and the ratios encrypted ÷ unencrypted cloudgw, cloudgw-crypt ÷
rclone-crypt and rclone-crypt ÷ rclone.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PEERS = ("rclone", "s3fs", "raw")
SERVER_TITLES = {"webdav": "WebDAV server: Apache mod_dav_fs (webdav)",
                 "smb": "SMB re-export: smbd on the cloudgw mount (moto) vs on plain ext4 (raw) (smb)"}
ORDER = ("cloudgw", "rclone", "s3fs", "raw", "cloudgw-crypt", "rclone-crypt")
CRYPT = ("cloudgw-crypt", "rclone-crypt")
CRYPT_ORDER = ("cloudgw", "cloudgw-crypt", "rclone", "rclone-crypt")
CRYPT_RATIOS = (("cloudgw-crypt", "cloudgw"), ("cloudgw-crypt", "rclone-crypt"), ("rclone-crypt", "rclone"))


@dataclass
class Record:
    server: str
    workload: str  # e.g. "1 cached read"
    metric: str  # e.g. "throughput"
    unit: str  # e.g. "MB/s"
    better: str  # "higher" or "lower"
    gateway: str
    run: int
    value: float | None = None
    error: str | None = None
    kind: str = "metric"  # or "rss"


@dataclass
class Results:
    started: float = field(default_factory=time.time)
    machine: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def add(self, server: str, workload: str, metric: str, unit: str, better: str, gateway: str, run: int,
            value: float, kind: str = "metric") -> None:
        self.records.append(Record(server, workload, metric, unit, better, gateway, run, value=value, kind=kind))

    def fail(self, server: str, workload: str, metric: str, unit: str, better: str, gateway: str, run: int,
             error: str) -> None:
        self.records.append(Record(server, workload, metric, unit, better, gateway, run, error=error))

    def has(self, server: str, workload: str, metric: str, gateway: str, run: int) -> bool:
        return any(r.server == server and r.workload == workload and r.metric == metric and r.gateway == gateway
                   and r.run == run for r in self.records)

    # -- aggregation -------------------------------------------------------------------------

    def rows(self, server: str, kind: str = "metric") -> list[dict]:
        """One row per (workload, metric): per gateway median/min/max/n/errors, ratios."""
        keys: list[tuple[str, str]] = []
        for r in self.records:
            if r.server == server and r.kind == kind and (r.workload, r.metric) not in keys:
                keys.append((r.workload, r.metric))
        keys.sort(key=lambda k: _workload_sort_key(k[0]))
        rows = []
        for workload, metric in keys:
            recs = [r for r in self.records if r.server == server and r.kind == kind
                    and r.workload == workload and r.metric == metric]
            row = {"workload": workload, "metric": metric, "unit": recs[0].unit, "better": recs[0].better,
                   "gateways": {}}
            for gw in ORDER:
                mine = [r for r in recs if r.gateway == gw]
                if not mine:
                    continue
                values = [r.value for r in mine if r.value is not None]
                errors = [r.error for r in mine if r.error is not None]
                cell: dict = {"values": values, "errors": errors, "runs": len(mine)}
                if values:
                    cell.update(median=statistics.median(values), min=min(values), max=max(values))
                row["gateways"][gw] = cell
            ours = row["gateways"].get("cloudgw", {}).get("median")
            row["ratios"] = {}
            for peer in PEERS:
                theirs = row["gateways"].get(peer, {}).get("median")
                if ours is not None and theirs:
                    row["ratios"][peer] = ours / theirs
            crypt = {}
            for a, b in CRYPT_RATIOS:
                ratio = _ratio(row, a, b)
                if ratio is not None:
                    crypt[f"{a}/{b}"] = ratio
            if crypt:
                row["crypt_ratios"] = crypt
            rows.append(row)
        return rows

    def servers(self) -> list[str]:
        seen: list[str] = []
        for r in self.records:
            if r.server not in seen:
                seen.append(r.server)
        return seen

    # -- output ------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "duration_s": round(self.duration_s, 1),
            "machine": self.machine,
            "versions": self.versions,
            "params": self.params,
            "notes": self.notes,
            "summary": {s: {"metrics": self.rows(s), "peak_rss": self.rows(s, "rss"),
                            "requests": self.rows(s, "requests")} for s in self.servers()},
            "records": [asdict(r) for r in self.records],
        }

    def markdown(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started))
        m = self.machine
        out = [f"# cloudgw benchmarks, {when}", ""]
        out.append(f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory', '?')} RAM, "
                   f"{m.get('kernel', '?')}, disk {m.get('disk', '?')}; {m.get('os', '')}.")
        out.append("Versions: " + "; ".join(f"{k} {v}" for k, v in self.versions.items()) + ".")
        p = self.params
        out.append(f"Parameters: {_param_text(p)}. Total time {self.duration_s / 60:.1f} min. Load average "
                   f"(1/5/15 min) at the start {m.get('load_at_start', '?')}, at the end {m.get('load_at_end', '?')} "
                   "(other jobs may share the machine).")
        out.append("")
        out.append("Cells: median of the runs (min–max); `k✗` = k runs failed. Ratios are cloudgw's median "
                   "over the peer's: ↑ metrics (higher is better) want a ratio above 1, ↓ metrics below 1.")
        for note in self.notes:
            out.append(f"- {note}")
        for server in self.servers():
            out += ["", f"## {SERVER_TITLES.get(server, 'S3 server: ' + server)}", ""]
            out += _table(self.rows(server))
            rss = self.rows(server, "rss")
            if _with(rss, exclude=CRYPT):
                out += ["", f"### Peak RSS of the gateway process during each workload ({server}, MiB ↓)", ""]
                out += _table(rss, show_unit=False)
            crypt = _with(self.rows(server), only=CRYPT)
            if crypt:
                out += ["", f"### Encrypted: cloudgw-crypt and rclone-crypt beside the unencrypted gateways ({server})",
                        "", "Ratios: ↑ metrics want above 1, ↓ metrics below 1 (cloudgw-crypt/cloudgw: the "
                        "goal is ≥ 0.80 for ↑ metrics).", ""]
                out += _table(crypt, order=CRYPT_ORDER, pairs=CRYPT_RATIOS)
                crypt_rss = _with(rss, only=CRYPT)
                if crypt_rss:
                    out += ["", f"Peak RSS of the gateway process ({server}, MiB ↓):", ""]
                    out += _table(crypt_rss, show_unit=False, order=CRYPT_ORDER, pairs=CRYPT_RATIOS)
            requests = self.rows(server, "requests")
            if requests:
                out += ["", f"### Requests the server answered during each step, per method ({server}, ↓)", ""]
                out += _table(requests, show_unit=False)
            fails = [r for r in self.records if r.server == server and r.error]
            if fails:
                out += ["", "Failures:", ""]
                seen = set()
                for r in fails:
                    key = (r.workload, r.gateway, r.error)
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append(f"- {r.gateway}, {r.workload} / {r.metric} (run {r.run + 1}): {r.error}")
        return "\n".join(out) + "\n"

    def write(self, directory: Path) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.started))
        tag = "-".join(self.servers()) or "none"
        if self.params.get("quick"):
            tag += "-quick"
        json_path = directory / f"{stamp}-{tag}.json"
        md_path = directory / f"{stamp}-{tag}.md"
        json_path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        md_path.write_text(self.markdown())
        return json_path, md_path


def _workload_sort_key(workload: str) -> tuple[int, str]:
    m = re.match(r"(\d+)", workload)
    return (int(m.group(1)) if m else 99, workload)


def _param_text(p: dict) -> str:
    parts = []
    for key, label in (("size", "big file"), ("files", "W4 files"), ("file_size", "small file"),
                       ("entries", "W5 entries"), ("scale_files", "W9 files"), ("scale_entries", "W9 entries"), ("runs", "runs"),
                       ("random_seconds", "random-read seconds"), ("small_write_size", "4 KiB-write file"), ("write_back", "write-back"),
                       ("poll_interval", "poll interval"), ("prop_poll_interval", "poll interval in W7"),
                       ("smb_size", "SMB file")):
        if key in p:
            value = p[key]
            if key in ("size", "file_size", "small_write_size", "smb_size"):
                value = human_bytes(value)
            elif key in ("write_back", "poll_interval", "prop_poll_interval", "random_seconds"):
                value = f"{value:g} s"
            parts.append(f"{label} {value}")
    return ", ".join(parts)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:g}"


def fmt(x: float) -> str:
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _cell(cell: dict | None) -> str:
    if not cell:
        return "–"
    errors = cell["errors"]
    if "median" not in cell:
        reason = _short(errors[0]) if errors else "?"
        return f"failed: {reason}"
    text = fmt(cell["median"])
    if len(cell["values"]) > 1:
        text += f" ({fmt(cell['min'])}–{fmt(cell['max'])})"
    if errors:
        text += f" {len(errors)}✗"
    return text


def _short(error: str, limit: int = 60) -> str:
    error = error.replace("|", "/").replace("\n", " ")
    return error if len(error) <= limit else error[: limit - 1] + "…"


def _ratio(row: dict, a: str, b: str) -> float | None:
    ours = row["gateways"].get(a, {}).get("median")
    theirs = row["gateways"].get(b, {}).get("median")
    return ours / theirs if ours is not None and theirs else None


def _with(rows: list[dict], only: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list[dict]:
    """The rows with a cell of one of ``only`` (any gateway if empty) that is not in ``exclude``."""
    return [r for r in rows if any((not only or gw in only) and gw not in exclude for gw in r["gateways"])]


def _table(rows: list[dict], show_unit: bool = True, order: tuple[str, ...] = ORDER,
           pairs: tuple[tuple[str, str], ...] | None = None) -> list[str]:
    """Medians per gateway of ``order`` (default: the unencrypted gateways) and the ratios of
    ``pairs`` (default: cloudgw over each peer)."""
    if pairs is None:
        order = tuple(gw for gw in order if gw not in CRYPT)
        rows = _with(rows, only=order)
    present = [gw for gw in order if any(gw in r["gateways"] for r in rows)]
    if pairs is None:
        pairs = tuple(("cloudgw", p) for p in PEERS)
    pairs = tuple((a, b) for a, b in pairs if a in present and b in present)
    head = ["workload", "metric", *present, *[f"{a}/{b}" for a, b in pairs]]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        arrow = "↑" if r["better"] == "higher" else "↓"
        metric = f"{r['metric']} ({r['unit']} {arrow})" if show_unit else r["metric"]
        cells = [r["workload"], metric, *[_cell(r["gateways"].get(gw)) for gw in present]]
        for a, b in pairs:
            ratio = _ratio(r, a, b)
            cells.append(f"{ratio:.2f}" if ratio is not None else "–")
        out.append("| " + " | ".join(cells) + " |")
    return out


# -- the machine ----------------------------------------------------------------------------------

def machine_description(workdir: Path) -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    disk = "?"
    try:
        out = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", str(workdir)], capture_output=True,
                             text=True).stdout.split()
        if out:
            disk = f"{out[1]} on {out[0]}" if len(out) > 1 else out[0]
    except OSError:
        pass
    os_name = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": f"Linux {platform.release()}",
            "disk": disk, "os": os_name, "python": platform.python_version(),
            "load_at_start": load_average()}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
