"""``mount.cloudgw``: /etc/fstab lines of type ``cloudgw``, turned into a ``cloudgw mount``.

Why this exists: mount(8) and systemd's fstab generator mount a filesystem of
type T by running ``/sbin/mount.T SPEC DIR [-sfnv] [-N NS] [-o OPTIONS] [-t T]``
with every option of the fstab line in one comma-separated ``-o`` string.  This
module only translates that calling convention into the ``cloudgw mount``
command line and runs it (``cloudgw.cli.main``, in this process), so there is
one place that parses and checks mount settings and one daemon start-up path
(fork, wait until the mount answers, return): the helper returns once mounted,
as mount(8) expects, or prints the one-line error that stopped it.

The fstab line::

    s3://bucket/share  /srv/share  cloudgw  _netdev,nofail,cache_dir=/var/cache/cloudgw/share,write_back=5  0 0
    office             /srv/office cloudgw  _netdev,nofail,config=/etc/cloudgw/office.toml  0 0

- SPEC (first field) is the remote URL; with ``config=FILE`` it is a free label
  (by convention the config's name) and must not be a URL: the remotes come from
  the file.
- cloudgw's options: the keys of ``OPTIONS`` below (``cache_dir=`` ... the
  ``cloudgw mount`` flags with ``_`` for ``-``).  The options of a remote type
  (``profile``, ``user``, ``password_file``, ``name_rules``, ...) belong in the
  config file's ``[remotes.NAME]`` table, not in fstab.
- mount(8)'s own options (``_netdev``, ``nofail``, ``noauto``, ``x-systemd.*``,
  ``defaults``, ``user``, atime options, ...) are for mount(8) and systemd and
  are ignored here; ``ro`` is ``--read-only``; ``nosuid``/``nodev``/``noexec``
  (and their opposites) are real mount flags and go to FUSE.
- The mount's source (``fsname``, shown by ``mount``/``df``) is SPEC as written,
  so ``mount -a`` recognises the line as mounted and does not mount it twice.
- Secrets never go in fstab (world-readable, shown by ``mount``): an option that
  looks like one (``password=``, ``secret=``, ``key=``, ``token=`` ...) or a
  password in a URL (SPEC, or an option's value such as ``endpoint_url=``) is
  refused, and the message says which file to use.

Exit codes follow mount(8)'s RETURN CODES: 0 mounted, 1 incorrect invocation
(unknown option, secret, bad usage), 32 mount failure (anything ``cloudgw
mount`` refused or failed at, with its own one-line ``cloudgw: error:``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

PROG = "mount.cloudgw"
EXIT_USAGE = 1  # mount(8): incorrect invocation or permissions
EXIT_MOUNT_FAILURE = 32  # mount(8): mount failure

# fstab key -> ``cloudgw mount`` option taking a value
OPTIONS: dict[str, str] = {
    "config": "--config",
    "cache_dir": "--cache-dir",
    "cache_max_size": "--cache-max-size",
    "cache_max_age": "--cache-max-age",
    "cache_min_free": "--cache-min-free",
    "write_back": "--write-back",
    "poll_interval": "--poll-interval",
    "remote_timeout": "--remote-timeout",
    "drain_timeout": "--drain-timeout",
    "metrics_addr": "--metrics-addr",
    "crypt_password_file": "--crypt-password-file",  # a path: the password itself never goes in fstab
    "log_level": "--log-level",
    "endpoint_url": "--endpoint-url",
    "region": "--region",
}
FLAGS: dict[str, str] = {"path_style": "--path-style", "acl": "--acl"}  # bare key, or =yes/no
FUSE_FLAGS = frozenset({"nosuid", "suid", "nodev", "dev", "noexec", "exec"})  # real mount flags: passed on
# mount(8)'s and systemd's own options, meaningless to the filesystem: ignored
IGNORED = frozenset({
    "defaults", "auto", "noauto", "_netdev", "_rnetdev", "nofail", "user", "nouser", "users", "owner", "group",
    "sync", "async", "dirsync", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
    "strictatime", "nostrictatime", "lazytime", "nolazytime", "silent", "loud", "mand", "nomand",
    "iversion", "noiversion",
})
IGNORED_PREFIXES = ("x-", "X-", "comment=")
_SECRET = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"://[^/@]*:[^/@]*@")
_TRUE, _FALSE = {"", "1", "yes", "true", "on"}, {"0", "no", "false", "off"}

USAGE = f"usage: {PROG} SPEC DIR [-sfnv] [-o OPTIONS] [-t cloudgw]  (run by mount(8) for fstab lines of type cloudgw)"


class HelperError(Exception):
    """Bad invocation: one line, exit 1."""


class HelpWanted(Exception):
    """-h/--help: the usage and the docstring, exit 0."""


@dataclass
class Invocation:
    """mount(8)'s arguments, split."""

    spec: str
    directory: str
    options: list[str] = field(default_factory=list)
    sloppy: bool = False  # -s: ignore options we do not know
    fake: bool = False  # -f: check everything, mount nothing
    verbose: bool = False  # -v


def split_options(text: str) -> list[str]:
    """``a,b=1,c="x,y"`` -> ``["a", "b=1", 'c=x,y']``: commas inside double quotes are
    part of the value, as libmount writes them (the quotes are removed)."""
    return [re.sub(r'^([^="]*=)"(.*)"$', r"\1\2", o) for o in re.findall(r'(?:[^,"]|"[^"]*")+', text)]


def parse_invocation(argv: list[str]) -> Invocation:
    """``SPEC DIR [-sfnv] [-N NS] [-o OPTS] [-t TYPE]``, options anywhere after or between."""
    positional: list[str] = []
    flags: set[str] = set()
    options: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("-h", "--help"):
            raise HelpWanted()
        if arg.startswith("-") and len(arg) > 1:
            letters = arg[1:]
            for i, letter in enumerate(letters):
                if letter in "sfnv":
                    flags.add(letter)
                elif letter in "otN":
                    value = letters[i + 1:] or next(it, None)
                    if value is None:
                        raise HelperError(f"option -{letter} needs a value ({USAGE})")
                    if letter == "o":
                        options.extend(split_options(value))
                    elif letter == "t" and value not in ("cloudgw", "fuse.cloudgw"):
                        raise HelperError(f"this helper mounts type cloudgw, not {value!r}")
                    elif letter == "N":
                        raise HelperError("-N (another mount namespace) is not supported: "
                                          "run mount inside the namespace instead (nsenter -m)")
                    break
                else:
                    raise HelperError(f"unknown flag -{letter} ({USAGE})")
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise HelperError(f"expected SPEC and DIR ({USAGE})")
    return Invocation(positional[0], positional[1], options,
                      sloppy="s" in flags, fake="f" in flags, verbose="v" in flags)


def _secret_error(what: str) -> HelperError:
    return HelperError(
        f"{what} looks like a secret: secrets never go in /etc/fstab (anyone can read it); put them in a file: "
        "S3 keys in /root/.aws/credentials (or a profile = \"...\" of it in the config file), "
        "a WebDAV password in the config file's password_file = \"...\" (mode 600), then config=FILE")


def cloudgw_argv(inv: Invocation) -> list[str]:
    """The ``cloudgw`` arguments (``mount ...``) for mount(8)'s invocation ``inv``."""
    if _URL_PASSWORD.search(inv.spec):
        raise _secret_error("the password in the remote URL")
    values: dict[str, str] = {}
    flags: dict[str, bool] = {}
    fuse: list[str] = []
    read_only = False
    for option in inv.options:
        key, has_value, value = option.partition("=")
        name = key.strip().lower().replace("-", "_")
        if option.startswith(IGNORED_PREFIXES) or option in IGNORED:
            continue
        if name in OPTIONS:
            if not has_value or not value:
                raise HelperError(f"option '{key}' needs a value: {key}=...")
            if _URL_PASSWORD.search(value):  # endpoint_url=https://KEY:SECRET@host
                raise _secret_error(f"the password in option '{key}'")
            values[name] = value.upper() if name == "log_level" else value
        elif name in FLAGS:
            if value.lower() not in _TRUE | _FALSE:
                raise HelperError(f"option '{key}' takes no value or yes/no, not {value!r}")
            flags[name] = value.lower() in _TRUE
        elif option in ("ro", "rw"):
            read_only = option == "ro"
        elif option in FUSE_FLAGS:
            fuse.append(option)
        elif _SECRET.search(name) and not name.endswith("_file"):
            raise _secret_error(f"option '{key}'")  # even with -s: never passed on, never echoed
        elif not inv.sloppy:
            raise HelperError(
                f"unknown option '{key}' (cloudgw's are {', '.join([*OPTIONS, *FLAGS])}, ro and "
                "nosuid/nodev/noexec; a remote's own options go in its config file: config=FILE; "
                "-s ignores unknown options)")
    argv = ["mount"]
    config = values.pop("config", None)
    if config is not None:
        if "://" in inv.spec:
            raise HelperError(f"give either a remote URL ({inv.spec}) or config=FILE, not both: "
                              "with config= the first fstab field is a label, e.g. the config's name")
        argv += ["--config", config, inv.directory]
    else:
        if "://" not in inv.spec:
            raise HelperError(f"{inv.spec!r} is not a remote URL (file:///abs/path, s3://bucket[/prefix], "
                              "webdav[s]://host/path): give one as the first fstab field, or config=FILE")
        argv += [inv.spec, inv.directory]
    for name, value in values.items():
        argv += [OPTIONS[name], value]
    argv += [FLAGS[name] for name, on in flags.items() if on]
    if read_only:
        argv.append("--read-only")
    if not re.search(r"[\s,\\]", inv.spec):
        # the source mount(8) shows and compares: without it 'mount -a' would not see the line as mounted
        fuse.append(f"fsname={inv.spec}")
    if fuse:
        argv += ["-o", ",".join(fuse)]
    return argv


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        inv = parse_invocation(args)
        command = cloudgw_argv(inv)
    except HelpWanted:
        print(f"{USAGE}\n\n{__doc__}")
        return 0
    except HelperError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if inv.verbose:
        print(f"{PROG}: cloudgw {' '.join(command)}")
    if inv.fake:
        return 0
    from cloudgw import cli

    try:
        code = cli.main(command)
    except SystemExit as exc:  # argparse's usage errors (already printed as one line)
        code = exc.code if isinstance(exc.code, int) else 1
    return 0 if code == 0 else EXIT_MOUNT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
