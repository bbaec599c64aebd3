"""Session-wide fixtures: the real servers the tests run against."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from tests.servers import S3Server


def pytest_collection_modifyitems(config, items):  # noqa: ANN001
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        raise pytest.UsageError("the test suite needs root and /dev/fuse (real FUSE mounts)")


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
