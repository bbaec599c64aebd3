"""Session-wide fixtures: the real servers the tests run against."""

from __future__ import annotations

import logging
import os
from typing import Iterator

import pytest

from tests.servers import DavServer, S3Server


def pytest_collection_modifyitems(config, items):  # noqa: ANN001
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        raise pytest.UsageError("the test suite needs root and /dev/fuse (real FUSE mounts)")


@pytest.fixture(autouse=True)
def _fail_on_unexpected_warnings(request, caplog):  # noqa: ANN001
    """A test that makes cloudgw log WARNING or worse fails unless marked allow_warnings(pattern)."""
    yield
    marker = request.node.get_closest_marker("allow_warnings")
    allowed = marker.args if marker else ()
    bad = [r for r in caplog.get_records("call") if r.levelno >= logging.WARNING and r.name.startswith("cloudgw")
           and not any(p in r.getMessage() for p in allowed)]
    assert not bad, "unexpected warnings: " + "; ".join(f"{r.name}: {r.getMessage()}" for r in bad[:10])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    from tests.servers.moto import start_moto

    with start_moto() as server:
        yield server


@pytest.fixture(scope="session")
def swift_server() -> Iterator[S3Server]:
    from tests.servers.swift import start_swift

    with start_swift() as server:
        yield server


@pytest.fixture(scope="session")
def apache_server() -> Iterator[DavServer]:
    from tests.servers.apache import start_apache

    with start_apache() as server:
        yield server


@pytest.fixture(scope="session")
def wsgidav_server() -> Iterator[DavServer]:
    from tests.servers.wsgidav import start_wsgidav

    with start_wsgidav() as server:
        yield server


@pytest.fixture(scope="session")
def nextcloud_server() -> Iterator[DavServer]:
    """wsgidav with the Nextcloud emulation (tests/servers/nextcloud_emulation.py)."""
    from tests.servers.wsgidav import start_wsgidav

    with start_wsgidav(nextcloud=True) as server:
        yield server


@pytest.fixture(scope="session")
def graph_server(tmp_path_factory) -> Iterator:  # noqa: ANN001
    """The fake Microsoft identity platform + Graph (tests/servers/graph), signed in once
    (``graph_server.token_template``: a token file to copy per test)."""
    from tests.graph_support import sign_in
    from tests.servers.graph.server import start_graph

    with start_graph() as server:
        server.token_template = tmp_path_factory.mktemp("graph") / "token.json"
        sign_in(server, server.token_template)
        yield server


@pytest.fixture(scope="session")
def personal_graph_server(tmp_path_factory) -> Iterator:  # noqa: ANN001
    """The same fake as a personal OneDrive (cTags everywhere, short drive ids)."""
    from tests.graph_support import sign_in
    from tests.servers.graph.server import start_graph

    with start_graph(drive_type="personal") as server:
        server.token_template = tmp_path_factory.mktemp("graph-personal") / "token.json"
        sign_in(server, server.token_template)
        yield server


@pytest.fixture(scope="session")
def gdrive_server(tmp_path_factory) -> Iterator:  # noqa: ANN001
    """The fake Google OAuth 2.0 + Drive v3 (tests/servers/gdrive), signed in once
    (``gdrive_server.token_template``: a token file to copy per test;
    ``gdrive_server.client_secret_path``: the "Desktop app" client JSON, mode 0600)."""
    from tests.gdrive_support import client_secrets, sign_in
    from tests.servers.gdrive.server import start_gdrive

    home = tmp_path_factory.mktemp("gdrive")
    with start_gdrive() as server:
        server.client_secret_path = client_secrets(server, home / "client_secret.json")
        server.token_template = home / "token.json"
        sign_in(server, server.token_template, server.client_secret_path)
        yield server
