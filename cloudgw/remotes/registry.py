"""Remote types by URL scheme: the one factory every command builds remotes with.

Each remote module exports ``REMOTE_TYPE``, a ``RemoteType`` that declares its
options (TOML keys of ``[remotes.NAME]`` with types, defaults and help) and a
``build`` function from a parsed URL and validated options to a ``Remote``.
``_REMOTES`` below names the module for each URL form: adding a remote is one
new module plus one line there.  Modules are imported only when a remote of
their scheme is built, so ``cloudgw --help`` and the CLI parent of ``mount``
never import botocore or httpx.

Every problem (unknown scheme, unknown or mistyped option, secret file readable
by others) is a one-line ``UserError`` saying where and how to fix it; nothing
here touches the network (``Remote.check()`` does, next).
"""

from __future__ import annotations

import importlib
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cloudgw.errors import UserError
from cloudgw.remotes.base import Remote
from cloudgw.remotes.crypt_guard import env_password, with_crypt
from cloudgw.remotes.health import HealthBoard
from cloudgw.remotes.mapped import with_name_rules
from cloudgw.remotes.names import NameRules

# module, URL forms (the scheme of each form is registered for the module)
_REMOTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cloudgw.remotes.local", ("file:///abs/path",)),
    ("cloudgw.remotes.s3", ("s3://bucket[/prefix]",)),
    ("cloudgw.remotes.webdav", ("webdav://host[:port]/path", "webdavs://host[:port]/path")),
    ("cloudgw.remotes.onedrive", ("onedrive://me/path", "onedrive://drives/DRIVE_ID/path",
                                  "sharepoint://host/sites/SITE/LIBRARY/path")),
    ("cloudgw.remotes.gdrive", ("gdrive://my-drive/path", "gdrive://shared/DRIVE/path")),
)


@dataclass(frozen=True)
class Option:
    """One key of a ``[remotes.NAME]`` table."""

    key: str
    kind: type  # str, bool, int, float or Path
    help: str
    default: Any = None
    secret_file: bool = False  # a path to a file holding a secret: must exist, no access for group/others


@dataclass(frozen=True)
class RemoteURL:
    """A remote URL as given (``text``, for messages) and split into its parts."""

    text: str
    scheme: str  # lower case
    netloc: str
    path: str  # still %-quoted

    def bad(self, why: str = "") -> UserError:
        return bad_url(self.text, why)


@dataclass(frozen=True)
class Common:
    """What every remote gets from the mount's own settings, not from its options."""

    timeout: float = 30.0  # a request, with its retries, fails after this long (seconds)
    state_dir: Path | None = None  # the gateway's folder for this remote's own state (None: keep none)
    name: str = ""  # the remote's name in the config (``""``: the one remote at the root)
    health: HealthBoard | None = None  # where the remote says it is throttled or needs a login (cloudgw status)


@dataclass(frozen=True)
class RemoteType:
    """A kind of remote: its options and how to build one."""

    options: tuple[Option, ...]
    build: Callable[[RemoteURL, dict[str, Any], Common], Remote]
    query_allowed: bool = False  # whether the URL may carry ?query (none does today)
    # seconds between polls when the mount does not say: a change feed makes an idle poll one
    # request, so it can be short (None: the mount's default, 60 s)
    poll_interval: float | None = None
    # names the remote cannot store (``cloudgw.remotes.names``): fixed rules, or a function of the
    # validated options; rules that map names put a ``MappedNamesRemote`` around the remote
    names: NameRules | Callable[[dict[str, Any]], NameRules | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # free for the remote's own use


# options every remote type takes (handled here, not by the remote's ``build``)
COMMON_OPTIONS: tuple[Option, ...] = (
    Option("crypt_password_file", Path, "file holding the password of an encrypted remote (cloudgw crypt init); "
           "without it, CLOUDGW_CRYPT_PASSWORD", secret_file=True),
)


def url_forms() -> str:
    return ", ".join(form for _, forms in _REMOTES for form in forms)


def bad_url(url: str, why: str = "") -> UserError:
    """The one error for a URL a remote cannot use; ``why`` says what is wrong with it.
    A password written into the URL (``user:password@host``) is never shown."""
    url = masked_url(url)
    return UserError(f"unsupported remote URL {url!r}{': ' + why if why else ''}: use {url_forms()}")


_USERINFO_PASSWORD = re.compile(r"(://[^@/?#:]*:)[^@]*@")


def masked_url(url: str) -> str:
    """``url`` with a password written into it (``user:password@host``) replaced by ``***``."""
    return _USERINFO_PASSWORD.sub(r"\1***@", url, count=1)


def scheme_of(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""


def remote_type(url: str) -> RemoteType:
    """The ``RemoteType`` for ``url``'s scheme (imports its module)."""
    scheme = scheme_of(url)
    for module, forms in _REMOTES:
        if any(scheme_of(form) == scheme for form in forms):
            return importlib.import_module(module).REMOTE_TYPE
    raise bad_url(url)


def default_poll_interval(urls: list[str], fallback: float = 60.0) -> float:
    """The poll interval for a mount of ``urls`` that sets none: the longest any of them
    wants (one poll loop serves them all; a listed remote must not be listed every 15 s)."""
    return max((remote_type(url).poll_interval or fallback for url in urls), default=fallback)


def option_keys(url: str) -> set[str]:
    return {o.key for o in (*remote_type(url).options, *COMMON_OPTIONS)}


def open_remote(url: str, options: Mapping[str, Any] | None = None, common: Common = Common(), *,
                where: str = "", crypt: bool = True) -> Remote:
    """Build (but do not contact) the remote for ``url``; call ``check()`` next.

    ``options`` are the keys of the remote's config table other than ``url``
    (None values mean "not given"); ``where`` names their origin for errors
    (``"config file X: [remotes.NAME]"``).  ``crypt=False``: never encrypted, whatever the
    options and environment say (the remote's raw objects).
    """
    kind = remote_type(url)
    where_url = parse_remote_url(url, kind)
    values = validate_options(kind, url, options or {}, where)
    common_values = {o.key: values.pop(o.key) for o in COMMON_OPTIONS}
    remote = kind.build(where_url, values, common)
    rules = kind.names(values) if callable(kind.names) else kind.names
    password_file = common_values["crypt_password_file"]
    if not crypt:  # the remote as stored (cloudgw crypt manages its vault)
        return with_name_rules(remote, rules)
    password = (read_secret(password_file, f"{where or 'command line'}: crypt_password_file").encode()
                if password_file is not None else env_password())
    return with_crypt(with_name_rules(remote, rules), password, masked_url(url), common.state_dir)


def parse_remote_url(url: str, kind: RemoteType) -> RemoteURL:
    """``url`` split into its parts (no network); a ``UserError`` for what no remote takes."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise bad_url(url) from None
    if (parts.query and not kind.query_allowed) or parts.fragment:
        raise bad_url(url, "no ?query or #fragment allowed")
    return RemoteURL(url, parts.scheme.lower(), parts.netloc, parts.path)


def validate_options(kind: RemoteType, url: str, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``given`` checked against ``kind.options``, defaults filled in."""
    prefix = f"{where}: " if where else ""
    declared = {o.key: o for o in (*kind.options, *COMMON_OPTIONS)}
    unknown = sorted(k for k, v in given.items() if k not in declared and v is not None)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise UserError(f"{prefix}unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
                        f" for {scheme_of(url)}:// remotes (options: {known})")
    values: dict[str, Any] = {}
    for key, option in declared.items():
        value = given.get(key)
        values[key] = option.default if value is None else _typed(option, value, prefix)
    return values


def _typed(option: Option, value: Any, prefix: str) -> Any:
    kind = option.kind
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:  # str, Path
        ok = isinstance(value, str) and value != ""
    if not ok:
        raise UserError(f"{prefix}{option.key} must be {_KIND_NAMES[kind]}, not {value!r}: {option.help}")
    if kind is Path:
        value = Path(value).expanduser()
        if option.secret_file:
            check_secret_file(value, f"{prefix}{option.key}")
    return value


_KIND_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", Path: "a file path"}


def check_secret_file(path: Path, what: str) -> None:
    """A file holding a secret must exist and be readable by its owner only (like ssh keys)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UserError(f"{what}: cannot read {path} ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what}: {path} is not a regular file")
    if st.st_mode & 0o077:
        raise UserError(f"{what}: {path} is readable by others (mode {st.st_mode & 0o777:04o}): chmod 600 {path}")


def read_secret(path: Path, what: str) -> str:
    """The secret in ``path`` (first line, without its line end), checked as above."""
    check_secret_file(path, what)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{what}: cannot read {path} ({exc})") from None
    secret = text.splitlines()[0] if text else ""
    if not secret:
        raise UserError(f"{what}: {path} is empty")
    return secret
