"""``cloudgw login``: sign a configured remote in to its cloud (OneDrive/SharePoint today).

The remote's type supplies the flow (``RemoteType.extra["login"]``: for Graph, msal's
device-code flow, made for machines without a browser).  The command prints where to
sign in and the code, waits, and writes the remote's ``token_file`` (mode 0600).  A
running gateway notices the new file at its next request: uploads that waited for the
sign-in resume, no remount.  Nothing secret is printed or passed in argv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cloudgw.config import RemoteSpec, load_toml, remote_options, remotes_from_toml
from cloudgw.errors import UserError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("login", help="sign a remote in to its cloud (OneDrive, SharePoint)",
                       description="Sign a remote in (device code: open the printed URL on any device and enter "
                       "the code) and keep the sign-in in its token_file (mode 600). The remote is NAME of the "
                       "config file (--config), or a URL with the same --remote-option values as its mount.")
    p.add_argument("--config", type=Path, help="the TOML file that describes the remote")
    p.add_argument("name", nargs="?", metavar="NAME|URL",
                   help="with --config: the remote's name ([remotes.NAME]), optional if there is one; else its URL")
    p.add_argument("--remote-option", action="append", default=[], metavar="KEY=VALUE",
                   help="with a URL: an option of the remote (client_id, token_file, tenant, ...); repeatable")


def cmd_login(args: argparse.Namespace) -> int:
    if args.config is None:
        if not args.name or "://" not in args.name:
            raise UserError("say which remote: cloudgw login --config FILE [NAME], or cloudgw login URL "
                            "--remote-option client_id=... --remote-option token_file=...")
        return _login(RemoteSpec(args.name, remote_options(args.remote_option)), "")
    if args.remote_option:
        raise UserError(f"--remote-option with --config: set the option in the remote's section of {args.config}")
    specs = remotes_from_toml(load_toml(args.config), args.config)
    name = args.name
    if name is None:
        if len(specs) != 1:
            raise UserError(f"config file {args.config} has {len(specs)} remotes: say which ({', '.join(sorted(specs))})")
        name = next(iter(specs))
    spec = specs.get(name)
    if spec is None:
        raise UserError(f"config file {args.config} has no [remotes.{name}] (remotes: {', '.join(sorted(specs))})")
    return _login(spec, name)


def _login(spec: RemoteSpec, name: str) -> int:
    """Run the remote type's sign-in for ``spec`` (``name``: its config name, for the daemon's hints)."""
    from cloudgw.remotes.registry import Common, parse_remote_url, remote_type, validate_options

    kind = remote_type(spec.url)
    login = kind.extra.get("login")
    if login is None:
        raise UserError(f"remote {name or spec.url} ({spec.url.split(':', 1)[0]}://) needs no login: its credentials "
                        "are set in its options")
    values = validate_options(kind, spec.url, spec.options, spec.where)
    who = login(parse_remote_url(spec.url, kind), values, Common(name=name), sys.stdout)
    print(f"signed in as {who}; the sign-in is kept in {values.get('token_file')}", flush=True)
    return 0
