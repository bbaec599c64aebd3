"""Signing in to the fake Graph server (tests/servers/graph) the way a user does, and
the options a remote on it takes.  Used by the contract, mount and CLI tests."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudgw.remotes.graph_auth import GraphAuth

if TYPE_CHECKING:
    from tests.servers.graph.server import GraphServer

CODE = re.compile(r"enter the code (\S+)")


class _Approver(io.StringIO):
    """Where ``device_login`` prints its message: approves the code at once, as the
    person at the other device would."""

    def __init__(self, server: GraphServer) -> None:
        super().__init__()
        self.server = server

    def write(self, text: str) -> int:
        found = CODE.search(text)
        if found:
            self.server.approve(found.group(1))
        return super().write(text)


def sign_in(server: GraphServer, token_file: Path) -> str:
    """A real msal device-code sign-in against ``server``; the token cache goes to ``token_file``."""
    auth = GraphAuth(server.client_id, f"{server.authority_url}/common", token_file, ca_file=server.ca_file)
    return auth.device_login(_Approver(server))


def signed_in_copy(template: Path, dest: Path) -> Path:
    """A copy of a signed-in token file (one sign-in per session, one file per test)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, dest)
    dest.chmod(0o600)
    return dest


def graph_options(server: GraphServer, token_file: Path, **extra: Any) -> dict[str, Any]:
    """The ``[remotes.NAME]`` options of a remote on ``server`` (besides ``url``)."""
    return {"client_id": server.client_id, "token_file": str(token_file), "graph_url": server.graph_url,
            "authority_url": server.authority_url, "ca_file": str(server.ca_file), **extra}
