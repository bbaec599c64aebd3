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

from cloudgw.config import load_toml, remotes_from_toml
from cloudgw.errors import UserError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("login", help="sign a remote in to its cloud (OneDrive, SharePoint)",
                       description="Sign the remote NAME of the config file in (device code: open the printed URL "
                       "on any device and enter the code) and keep the sign-in in its token_file (mode 600).")
    p.add_argument("--config", type=Path, required=True, help="the TOML file that describes the remote")
    p.add_argument("name", nargs="?", help="the remote's name ([remotes.NAME]); may be left out if there is one")


def cmd_login(args: argparse.Namespace) -> int:
    from cloudgw.remotes.registry import Common, parse_remote_url, remote_type, validate_options

    specs = remotes_from_toml(load_toml(args.config), args.config)
    if args.name is None:
        if len(specs) != 1:
            raise UserError(f"config file {args.config} has {len(specs)} remotes: say which ({', '.join(sorted(specs))})")
        args.name = next(iter(specs))
    spec = specs.get(args.name)
    if spec is None:
        raise UserError(f"config file {args.config} has no [remotes.{args.name}] (remotes: {', '.join(sorted(specs))})")
    kind = remote_type(spec.url)
    login = kind.extra.get("login")
    if login is None:
        raise UserError(f"remote {args.name} ({spec.url.split(':', 1)[0]}://) needs no login: its credentials are "
                        "set in its options")
    url = parse_remote_url(spec.url, kind)
    values = validate_options(kind, spec.url, spec.options, spec.where)
    who = login(url, values, Common(name=args.name), sys.stdout)
    print(f"signed in as {who}; the sign-in is kept in {values.get('token_file')}", flush=True)
    return 0
