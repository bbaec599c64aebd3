"""Mount configuration: from command-line options or a TOML file, validated early.

Every problem raises ``UserError`` with one line that says what is wrong and how
to fix it; nothing here touches the network.

TOML format (``cloudgw mount --config FILE [MOUNTPOINT]``)::

    mountpoint = "/srv/cloud"      # optional if MOUNTPOINT is given (it wins)

    [cache]
    dir = "/var/cache/cloudgw"     # required unless --cache-dir is given
    max_size = "20G"               # clean data kept (K/M/G/T suffixes)
    max_age = "30d"                # optional: evict clean data unused this long
    min_free = "2G"                # keep this much free on the cache disk

    [sync]
    write_back = 5                 # seconds after the last close
    poll_interval = 60             # seconds, 1 .. 86400
    upload_concurrency = 4
    drain_timeout = "10m"          # at a stop, keep uploading what is pending this long

    [metrics]
    addr = "127.0.0.1:9464"        # optional: serve Prometheus /metrics (cloudgw.metrics)

    [remotes.photos]               # one top-level folder per remote
    url = "s3://bucket/prefix"
    endpoint_url = "http://127.0.0.1:9000"   # optional, else AWS_ENDPOINT_URL
    region = "us-east-1"                      # optional
    path_style = true                         # optional

    [remotes.archive]
    url = "file:///srv/archive"

The keys a ``[remotes.NAME]`` table accepts besides ``url`` are the options its
remote type declares (``cloudgw.remotes.registry``); they are checked when the
remote is built.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudgw.errors import UserError

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str | int, what: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise UserError(f"invalid {what} {text!r}: use a number of bytes with an optional K/M/G/T suffix, e.g. 20G")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])


def parse_duration(text: str | int | float, what: str) -> float:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
        if not m:
            raise UserError(f"invalid {what} {text!r}: use seconds or a number with s/m/h/d, e.g. 30s or 7d")
        value = float(m.group(1)) * _TIME_UNITS[m.group(2)]
    if value < 0:
        raise UserError(f"invalid {what} {text!r}: must not be negative")
    return value


def parse_listen_addr(text: str, what: str = "metrics address") -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT``; without a host
    127.0.0.1 (loopback: nothing is exposed to the network unless a host says so)."""
    raw = str(text).strip()
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        port = rest.removeprefix(":") if sep and rest.startswith(":") else ""
    elif raw.count(":") > 1:
        host, port = "", ""  # a bare IPv6 address: needs brackets to carry a port
    else:
        host, _, port = raw.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"invalid {what} {text!r}: use HOST:PORT, [IPv6]:PORT or PORT (1-65535), e.g. 127.0.0.1:9464")
    return host or "127.0.0.1", int(port)


@dataclass(frozen=True)
class RemoteSpec:
    """One remote as configured: its URL and the options of its type (checked when the
    remote is built, by ``cloudgw.remotes.registry``, so this module imports no remote)."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)
    where: str = "command line"  # where the options come from, for error messages

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options}

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str) -> "RemoteSpec":
        """From ``to_json`` (or the flat S3 keys that mounts before the registry recorded)."""
        options = doc.get("options")
        if options is None:
            options = {k: v for k, v in doc.items() if k in ("endpoint_url", "region", "path_style") and v is not None}
        return cls(doc["url"], dict(options), where)


@dataclass(frozen=True)
class MountConfig:
    mountpoint: Path
    cache_dir: Path
    remotes: dict[str, RemoteSpec]  # {"": spec} for a single remote at the root
    cache_max_size: int = 10 << 30
    cache_max_age: float | None = None
    cache_min_free: int = 1 << 30
    write_back: float = 5.0
    poll_interval: float | None = None  # None: the longest its remotes want (``default_poll_interval``)
    upload_concurrency: int = 4
    read_only: bool = False
    acl: bool = False  # POSIX ACLs honoured (--acl)
    fuse_options: tuple[str, ...] = ()
    foreground: bool = False
    drain_timeout: float = 60.0
    remote_timeout: float = 30.0  # a remote request (with retries) fails after this long
    metrics_addr: str | None = None  # serve Prometheus /metrics here (``cloudgw.metrics``); None: off
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.poll_interval is not None and not 1 <= self.poll_interval <= 86400:
            raise UserError(f"invalid poll interval {self.poll_interval:g}s: choose 1 to 86400 seconds (1 day)")
        if self.write_back < 0 or self.write_back > 86400:
            raise UserError(f"invalid write-back delay {self.write_back:g}s: choose 0 to 86400 seconds")
        if self.upload_concurrency < 1:
            raise UserError("upload_concurrency must be at least 1")
        check_mountpoint(self.mountpoint)
        check_cache_dir(self.cache_dir)


def check_mountpoint(path: Path) -> None:
    if not path.exists():
        raise UserError(f"mountpoint {path} does not exist: create it with 'mkdir -p {path}'")
    if not path.is_dir():
        raise UserError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise UserError(f"mountpoint {path} is busy: something is already mounted there (unmount it first)")


def check_cache_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".cloudgw-write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cache dir {path} is not writable ({exc.strerror}): choose another with --cache-dir") from None


def remote_options(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` pairs as a remote's options: VALUE as a TOML value where it is one
    (``true``, ``10485760``, ``"text"``), else as text."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--remote-option {pair!r}: use KEY=VALUE")
        try:
            options[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            options[key.strip()] = value
    return options


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from None


def remotes_from_toml(doc: dict[str, Any], path: Path) -> dict[str, RemoteSpec]:
    table = doc.get("remotes")
    if not isinstance(table, dict) or not table:
        raise UserError(f"config file {path} has no [remotes.NAME] sections: add at least one with url = \"...\"")
    specs = {}
    for name, body in table.items():
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise UserError(f"config file {path}: [remotes.{name}] needs url = \"file:///...\" or \"s3://bucket\"")
        if "/" in name or name in (".", ".."):
            raise UserError(f"config file {path}: remote name {name!r} cannot be a folder name")
        options = {k: v for k, v in body.items() if k != "url"}
        specs[name] = RemoteSpec(body["url"], options, f"config file {path}: [remotes.{name}]")
    return specs


def section(doc: dict[str, Any], name: str, path: Path, allowed: set[str]) -> dict[str, Any]:
    body = doc.get(name, {})
    if not isinstance(body, dict):
        raise UserError(f"config file {path}: [{name}] must be a table")
    unknown = set(body) - allowed
    if unknown:
        raise UserError(f"config file {path}: [{name}] has unknown keys {sorted(unknown)}")
    return body
