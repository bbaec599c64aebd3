"""``cloudgw login``: sign a configured remote in to its cloud (OneDrive/SharePoint, Google Drive).

The remote's type supplies the flow (``RemoteType.extra["login"]``).  For Graph, msal's
device-code flow, made for machines without a browser: the command prints where to sign
in and the code, and waits.  For Google Drive, the installed-app flow with a loopback
redirect: the command prints the sign-in URL and catches the browser's redirect on a
local port; with ``--no-browser`` (a headless NAS, the browser on another device) the
person pastes back the address the browser was sent to.  Either way the command writes
the remote's ``token_file`` (mode 0600).  A running gateway notices the new file at its
next request: uploads that waited for the sign-in resume, no remount.  Nothing secret is
printed or passed in argv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cloudgw.config import RemoteSpec, load_toml, remote_options, remotes_from_toml
from cloudgw.errors import UserError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("login", help="sign a remote in to its cloud (OneDrive, SharePoint, Google Drive)",
                       description="Sign a remote in and keep the sign-in in its token_file (mode 600). "
                       "OneDrive/SharePoint: open the printed URL on any device and enter the code. Google Drive: "
                       "open the printed URL in a browser on this machine; with --no-browser open it on any "
                       "device and paste back the address the browser is sent to. The remote is NAME of the "
                       "config file (--config), or a URL with the same --remote-option values as its mount.")
    p.add_argument("--config", type=Path, help="the TOML file that describes the remote")
    p.add_argument("name", nargs="?", metavar="NAME|URL",
                   help="with --config: the remote's name ([remotes.NAME]), optional if there is one; else its URL")
    p.add_argument("--remote-option", action="append", default=[], metavar="KEY=VALUE",
                   help="with a URL: an option of the remote (client_id, token_file, client_secret_file, ...); "
                   "repeatable")
    p.add_argument("--no-browser", action="store_true",
                   help="Google Drive: no browser on this machine; print the URL, then read the address the "
                   "browser was sent to (http://localhost...) from standard input (OneDrive: no effect)")


def cmd_login(args: argparse.Namespace) -> int:
    if args.config is None:
        if not args.name or "://" not in args.name:
            raise UserError("say which remote: cloudgw login --config FILE [NAME], or cloudgw login URL "
                            "--remote-option client_id=... --remote-option token_file=...")
        return _login(RemoteSpec(args.name, remote_options(args.remote_option)), "", args.no_browser)
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
    return _login(spec, name, args.no_browser)


def _login(spec: RemoteSpec, name: str, no_browser: bool = False) -> int:
    """Run the remote type's sign-in for ``spec`` (``name``: its config name, for the daemon's hints)."""
    from cloudgw.remotes.registry import Common, parse_remote_url, remote_type, validate_options

    # What the flows print (the URL, the code) must reach a pipe at once (| tee, a wrapper script):
    # google-auth-oauthlib prints without flushing, then waits for the browser.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)

    kind = remote_type(spec.url)
    login = kind.extra.get("login")
    if login is None:
        raise UserError(f"remote {name or spec.url} ({spec.url.split(':', 1)[0]}://) needs no login: its credentials "
                        "are set in its options")
    values = validate_options(kind, spec.url, spec.options, spec.where)
    who = login(parse_remote_url(spec.url, kind), values, Common(name=name), sys.stdout, no_browser=no_browser)
    print(f"signed in as {who}; the sign-in is kept in {values.get('token_file')}", flush=True)
    return 0
