"""Fixtures for tests through a real FUSE mount of the real daemon."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.mount.gateway import Gateway
from tests.mount.views import CryptView, DavView, FileView, GDriveView, GraphView, S3View
from tests.servers import DavServer, S3Server
from tests.servers.proxy import OutageProxy, outage_proxy

_buckets = itertools.count()

# The backends of the core mount files (test_basics.py, test_programs.py): the others
# run on file:// and S3 only (``backend`` below), so WebDAV does not double their time.
CORE_BACKENDS = ["file", "s3", "s3-crypt", "webdav-apache", "webdav-wsgidav", "graph", "gdrive"]
CRYPT_PASSWORD = b"correct horse battery staple"


@dataclass
class Backend:
    name: str  # "file", the S3 server's name ("moto", "swift") or "webdav-<server>"
    url: str
    env: dict[str, str]
    view: FileView | S3View | CryptView | GraphView | GDriveView
    args: tuple[str, ...] = ()  # extra arguments of ``cloudgw mount``


def make_backend(kind: str, tmp_path: Path, s3: S3Server | None) -> Backend:
    if kind.endswith("-crypt"):
        return encrypted(make_backend(kind.removesuffix("-crypt"), tmp_path, s3), tmp_path)
    if kind == "file":
        root = tmp_path / "cloud"
        root.mkdir()
        return Backend("file", f"file://{root}", {}, FileView(root))
    assert s3 is not None
    bucket = f"mount-{next(_buckets)}"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    env = s3.env()
    return Backend(s3.name, f"s3://{bucket}/data", env, S3View(client, bucket, "data"), ("--path-style",))


def write_password(path: Path, password: bytes = CRYPT_PASSWORD) -> Path:
    path.write_bytes(password + b"\n")
    path.chmod(0o600)
    return path


def encrypted(plain: Backend, tmp_path: Path, *, encrypt_names: bool = False, compress: str | None = None) -> Backend:
    """``plain`` made an encrypted remote (``cloudgw crypt init``, a cheap KDF for tests)
    and mounted with its password; the view sees it as another gateway would."""
    from tests.mount.gateway import run_cli

    password = write_password(tmp_path / "crypt-password")
    run_cli("crypt", "init", plain.url, "--password-file", str(password), "--recovery-key-out",
            str(tmp_path / "recovery.pem"), "--kdf-memory", "19", "--kdf-iterations", "2",
            *(["--encrypt-names"] if encrypt_names else []), *(["--compress", compress] if compress else []),
            *plain.args, env=plain.env)
    return Backend(f"{plain.name}-crypt", plain.url, plain.env, CryptView(plain.view, CRYPT_PASSWORD),
                   (*plain.args, "--crypt-password-file", str(password)))


def make_dav_backend(server: DavServer, tmp_path: Path) -> Backend:
    """A fresh folder of a WebDAV server; the daemon finds the password in $NETRC."""
    folder = f"mount-{next(_buckets)}"
    server.mkcol(folder)
    netrc = server.write_netrc(tmp_path / "netrc")
    return Backend(f"webdav-{server.name}", server.remote_url(folder), {"NETRC": str(netrc)}, DavView(server, folder))


def make_graph_backend(server, tmp_path: Path, *extra_options: str) -> Backend:  # noqa: ANN001
    """A fresh folder of the fake Graph server's /me drive, signed in (a copy of the
    session's token file), every option on the command line (``--remote-option``)."""
    from tests.graph_support import graph_options, signed_in_copy

    folder = f"mount-{next(_buckets)}"
    server.backdoor.mkdir(folder)
    token = signed_in_copy(server.token_template, tmp_path / "onedrive-token.json")
    options = graph_options(server, token, chunk_size=3 * 327680)
    args = tuple(a for k, v in options.items() for a in ("--remote-option", f"{k}={v}"))
    return Backend("graph", f"onedrive://me/{folder}", {}, GraphView(server, folder),
                   (*args, *(a for o in extra_options for a in ("--remote-option", o))))


GDRIVE_CHUNK = 4 * 262144  # resumable chunks of 1 MiB in mount tests


def make_gdrive_backend(server, tmp_path: Path, *extra_options: str) -> Backend:  # noqa: ANN001
    """A fresh folder of the fake Google Drive's My Drive, signed in (a copy of the session's
    token file), every option on the command line (``--remote-option``)."""
    from tests.gdrive_support import gdrive_options
    from tests.graph_support import signed_in_copy

    folder = f"mount-{next(_buckets)}"
    server.backdoor.create_folder("root", folder)
    token = signed_in_copy(server.token_template, tmp_path / "gdrive-token.json")
    options = gdrive_options(server, token, chunk_size=GDRIVE_CHUNK)
    args = tuple(a for k, v in options.items() for a in ("--remote-option", f"{k}={v}"))
    return Backend("gdrive", f"gdrive://my-drive/{folder}", {}, GDriveView(server, folder),
                   (*args, *(a for o in extra_options for a in ("--remote-option", o))))


def backend_for(request, tmp_path: Path) -> Backend:  # noqa: ANN001
    """The backend named by ``request.param`` (one of CORE_BACKENDS)."""
    kind = request.param
    if kind == "graph":
        return make_graph_backend(request.getfixturevalue("graph_server"), tmp_path)
    if kind == "gdrive":
        return make_gdrive_backend(request.getfixturevalue("gdrive_server"), tmp_path)
    if kind.startswith("webdav-"):
        return make_dav_backend(request.getfixturevalue(f"{kind.removeprefix('webdav-')}_server"), tmp_path)
    return make_backend(kind, tmp_path, request.getfixturevalue("moto_server") if kind.startswith("s3") else None)


@pytest.fixture(params=["file", "s3"])
def backend(request, tmp_path: Path) -> Backend:  # noqa: ANN001
    s3 = request.getfixturevalue("moto_server") if request.param == "s3" else None
    return make_backend(request.param, tmp_path, s3)


@pytest.fixture
def file_backend(tmp_path: Path) -> Backend:
    return make_backend("file", tmp_path, None)


@pytest.fixture
def s3_backend(tmp_path: Path, moto_server: S3Server) -> Backend:
    return make_backend("s3", tmp_path, moto_server)


def _gateway(backend: Backend, tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env, args=backend.args)
    gw.backend = backend  # type: ignore[attr-defined]
    try:
        gw.mount()
        yield gw
        gw.umount()
    finally:
        gw.force_cleanup()
    bad = gw.bad_log_lines()
    assert not bad, "daemon logged unexpected warnings:\n" + "\n".join(bad[:20])


@pytest.fixture
def gw(backend: Backend, tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(backend, tmp_path)


@pytest.fixture
def file_gw(file_backend: Backend, tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(file_backend, tmp_path)


@pytest.fixture
def s3_gw(s3_backend: Backend, tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(s3_backend, tmp_path)


def counted_gateway(server: S3Server, tmp_path: Path, *, encrypt: bool = False,
                    compress: str | None = None) -> Iterator[tuple[Gateway, Backend, OutageProxy]]:
    """A gateway on S3 whose every byte to the server passes a counting proxy (not mounted yet)."""
    with outage_proxy(int(server.endpoint_url.rsplit(":", 1)[1])) as proxy:
        backend = make_backend("s3", tmp_path, server)
        if encrypt:
            backend = encrypted(backend, tmp_path, compress=compress)
        backend.env["AWS_ENDPOINT_URL"] = proxy.endpoint_url
        gw = Gateway(backend.url, tmp_path / "mnt", tmp_path / "cache", env=backend.env, args=backend.args)
        try:
            yield gw, backend, proxy
            if os.path.ismount(gw.mnt):
                gw.umount()
        finally:
            gw.force_cleanup()
        assert not gw.bad_log_lines()


@pytest.fixture(params=["moto_server", "swift_server"])
def counted(request, tmp_path: Path) -> Iterator[tuple[Gateway, Backend, OutageProxy]]:  # noqa: ANN001
    """A gateway on S3 (moto, Swift) whose every byte to the server passes a counting proxy."""
    yield from counted_gateway(request.getfixturevalue(request.param), tmp_path)
