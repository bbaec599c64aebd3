"""One contract suite, many remotes: the ``h`` fixture is a ``Harness`` for each.

Every remote runs on a real store: a temp directory, moto (a fresh bucket per
test, with and without a key prefix), Swift's s3api (marked ``swift``), a
router with a local remote mounted as ``mnt``, and WebDAV on Apache mod_dav_fs,
wsgidav and wsgidav's Nextcloud emulation, and the fakes of Microsoft Graph and Google
Drive (tests/servers/graph, tests/servers/gdrive) (a fresh folder per test).  A harness also has a
``backdoor`` to change the store behind the remote's back (another client
writing, a crash leaving an incomplete upload) and a list of deliberately
broken configurations for ``check()``.

Multipart runs with a few MiB here: S3 remotes are built with a 6 MiB
multipart threshold, 5 MiB parts (S3's minimum) and a 6 MiB copy threshold; the
Nextcloud emulation's remotes chunk uploads above 6 MiB in 5 MiB chunks (once
``check()`` has found it a Nextcloud).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

from cloudgw.remotes.base import Remote
from cloudgw.remotes.local import TMP_PREFIX, LocalRemote
from cloudgw.remotes.router import RouterRemote
from cloudgw.remotes.s3 import S3Remote

if TYPE_CHECKING:
    from cloudgw.remotes.webdav import WebDavRemote
from tests.servers import DavServer, S3Server, free_port

MiB = 1 << 20
S3_TEST_OPTIONS = dict(
    multipart_threshold=6 * MiB,
    part_size=5 * MiB,
    copy_threshold=6 * MiB,
    stale_upload_age=0.0,
    retry_deadline=10.0,
)


@dataclass
class Broken:
    """A misconfigured remote whose ``check()`` must raise a UserError matching
    ``match``; ``secret`` must never appear in the message."""

    label: str
    remote: Remote
    match: str
    secret: str | None = None


@dataclass
class Harness:
    kind: str  # "local", "s3", "router", "webdav-<server>", "graph-<type>" or "gdrive"
    remote: Remote
    base: str  # the test area inside the remote: "" (or the mount name for the router)
    put_outside: Callable[[str, bytes], None]  # write behind the remote's back
    leave_incomplete_upload: Callable[[str], None]  # what a crash mid-upload leaves
    broken: Callable[[], list[Broken]]
    # The object changes between our expectation check and the commit: does the
    # write still fail?  Yes where something enforces the condition at commit
    # (the local re-check, moto's If-None-Match/If-Match on PUT); Swift rejects
    # conditional PUTs, so only the documented check-then-write window is left.
    closes_race_window: bool = True
    # Concurrent writers of one path are serialised: only our per-path lock
    # does that (moto checks If-None-Match without a lock of its own).
    serialises_writers: bool = True
    # Every new version gets a revision no earlier version had.  wsgidav's ETag is
    # inode-mtime(whole seconds)-size: a version written in the same second, with the
    # same size, into a recycled inode repeats an older version's ETag.
    unique_revs: bool = True
    # A delta write may read (or leave uncopied) this many bytes more than the parts with
    # the edit: an encrypting remote's parts cut chunks, whose other pieces it fetches.
    delta_slack: int = 0
    # Where the object at a path of this remote lies on the local disk (file:// underneath, whatever
    # wraps it): what a test checks there (a hard link's shared inode); None elsewhere.
    disk_path: Callable[[str], Path] | None = None

    def p(self, *names: str) -> str:
        return "/".join([self.base, *names]) if self.base else "/".join(names)


# -- servers (moto_server and swift_server are session fixtures in tests/conftest.py)


@pytest.fixture(scope="session")
def swift_bucket(swift_server: S3Server) -> str:
    """One bucket for the session: a one-replica Swift answers 503 SlowDown to a
    quick series of bucket creations, so Swift tests get a fresh prefix instead."""
    name = f"cgw-{uuid.uuid4().hex[:20]}"
    swift_server.client().create_bucket(Bucket=name)
    return name


# -- harnesses ---------------------------------------------------------------


def _local(root: Path) -> Harness:
    root.mkdir(parents=True, exist_ok=True)

    def put_outside(path: str, data: bytes) -> None:
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:  # in place, as another program would
            f.write(data)

    def leave_incomplete_upload(path: str) -> None:
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.parent / f"{TMP_PREFIX}{p.name}.crashed").write_bytes(b"half a file")

    def broken() -> list[Broken]:
        a_file = root.parent / f"{root.name}-not-a-dir"
        a_file.write_bytes(b"")
        return [
            Broken("missing directory", LocalRemote(root.parent / "does-not-exist"), r"does not exist.*create"),
            Broken("a file, not a directory", LocalRemote(a_file), r"not a directory"),
        ]

    return Harness("local", LocalRemote(root, stale_tmp_age=0.0), "", put_outside, leave_incomplete_upload, broken,
                   disk_path=lambda path: root / path)


def _s3(server: S3Server, prefix: str, bucket: str | None = None) -> Harness:
    """A remote on a fresh bucket, or under a fresh ``prefix`` of ``bucket``."""
    raw = server.client()
    if bucket is None:
        bucket = f"cgw-{uuid.uuid4().hex[:20]}"
        raw.create_bucket(Bucket=bucket)
    key_prefix = prefix.strip("/") + "/" if prefix else ""
    if prefix == "pre/fix":  # decoys next to the prefix that no operation may touch or show
        raw.put_object(Bucket=bucket, Key="outside.txt", Body=b"not ours")
        raw.put_object(Bucket=bucket, Key=prefix.strip("/") + "ture.txt", Body=b"not ours either")
        raw.create_multipart_upload(Bucket=bucket, Key="outside-upload")

    def make(**overrides: Any) -> S3Remote:
        kwargs: dict[str, Any] = dict(
            endpoint_url=server.endpoint_url,
            region=server.region,
            path_style=True,
            access_key=server.access_key,
            secret_key=server.secret_key,
            **S3_TEST_OPTIONS,
        )
        kwargs.update(overrides)
        return S3Remote(kwargs.pop("bucket", bucket), prefix, **kwargs)

    def put_outside(path: str, data: bytes) -> None:
        raw.put_object(Bucket=bucket, Key=key_prefix + path, Body=data)

    def leave_incomplete_upload(path: str) -> None:
        up = raw.create_multipart_upload(Bucket=bucket, Key=key_prefix + path)
        raw.upload_part(Bucket=bucket, Key=key_prefix + path, UploadId=up["UploadId"], PartNumber=1, Body=b"x" * 100)

    def broken() -> list[Broken]:
        wrong_secret = "Wr0ng-" + uuid.uuid4().hex
        return [
            Broken("missing bucket", make(bucket=f"cgw-missing-{uuid.uuid4().hex[:12]}"), r"does not exist.*create it"),
            Broken(
                "wrong secret key",
                make(secret_key=wrong_secret),
                r"rejected the signature.*AWS_SECRET_ACCESS_KEY",
                wrong_secret,
            ),
            Broken(
                "unknown access key",
                make(access_key="AKIAUNKNOWN0123456789", secret_key=wrong_secret),
                r"(not known|rejected the signature).*AWS_ACCESS_KEY_ID",
                wrong_secret,
            ),
            Broken(
                "unreachable endpoint",
                make(endpoint_url=f"http://127.0.0.1:{free_port()}"),
                r"cannot reach S3 endpoint http://127\.0\.0\.1:\d+",
            ),
        ]

    return Harness(
        "s3", make(), "", put_outside, leave_incomplete_upload, broken,
        closes_race_window=server.name == "moto", serialises_writers=False,
    )


def make_webdav(server: DavServer, folder: str, **overrides: Any) -> WebDavRemote:
    """A remote on ``folder`` of ``server`` (credentials given directly; the options and
    netrc paths are tested in test_webdav.py)."""
    from cloudgw.remotes.webdav import WebDavRemote

    kwargs: dict[str, Any] = dict(user=server.user, password=server.password, retry_deadline=10.0,
                                  stale_upload_age=0.0)
    if server.name == "nextcloud":  # chunked uploads above 6 MiB, in 5 MiB chunks (Nextcloud's minimum)
        from tests.servers.wsgidav import NEXTCLOUD_UPLOADS

        kwargs.update(uploads_url=NEXTCLOUD_UPLOADS, chunk_threshold=6 * MiB, chunk_size=5 * MiB)
    kwargs.update(overrides)
    return WebDavRemote(kwargs.pop("base", f"http://127.0.0.1:{server.port}"), f"{server.path}/{folder}", **kwargs)


def _webdav(server: DavServer) -> Harness:
    """A remote on a fresh folder of a WebDAV server; the backdoor is another client's
    plain HTTP (PUT, MKCOL), as a user with a file manager would change things."""
    from cloudgw.remotes.webdav_io import tmp_name

    folder = f"t-{uuid.uuid4().hex[:12]}"
    server.mkcol(folder)
    client = server.client()

    def put_outside(path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            server.mkcol(f"{folder}/{parent}")
        r = client.put(server.url(f"{folder}/{path}"), content=data)
        assert r.status_code in (200, 201, 204), r.status_code

    def leave_incomplete_upload(path: str) -> None:
        parent, _, name = path.rpartition("/")
        put_outside(f"{parent}/{tmp_name(name)}" if parent else tmp_name(name), b"half a file")

    def broken() -> list[Broken]:
        wrong = "Wr0ng-" + uuid.uuid4().hex
        return [
            Broken("wrong password", make_webdav(server, folder, password=wrong),
                   rf"WebDAV server http://127\.0\.0\.1:{server.port} refused user '{server.user}' \(401", wrong),
            Broken("unreachable server", make_webdav(server, folder, base=f"http://127.0.0.1:{free_port()}"),
                   r"cannot reach WebDAV server http://127\.0\.0\.1:\d+"),
            Broken("missing folder", make_webdav(server, f"missing-{uuid.uuid4().hex[:8]}"),
                   r"does not exist on the server: create that folder first"),
        ]

    return Harness(f"webdav-{server.name}", make_webdav(server, folder), "", put_outside, leave_incomplete_upload,
                   broken, unique_revs=server.name == "apache")


GRAPH_FRAGMENT = 3 * 327680  # upload-session fragments of 960 KiB: BIG files take several


def make_graph(server: Any, folder: str, state_dir: Path, token_file: Path, **options: Any) -> Remote:
    """A remote on ``folder`` of the fake's /me drive, built as the registry builds it (with
    the OneDrive name rules around it)."""
    from cloudgw.remotes.registry import Common, open_remote
    from tests.graph_support import graph_options

    return open_remote(f"onedrive://me/{folder}", graph_options(server, token_file, chunk_size=GRAPH_FRAGMENT,
                                                                 **options),
                       Common(timeout=10.0, state_dir=state_dir), crypt=False)


def _graph(server: Any, tmp_path: Path) -> Harness:
    """A remote on a fresh folder of the fake Graph drive; the backdoor changes the drive as
    Office 365 or another PC would."""
    from cloudgw.remotes.upload_sessions import SessionRecord, SessionRecords
    from tests.graph_support import signed_in_copy

    folder = f"t-{uuid.uuid4().hex[:12]}"
    server.backdoor.mkdir(folder)
    token = signed_in_copy(server.token_template, tmp_path / "graph-token.json")
    state = tmp_path / "graph-state"

    def put_outside(path: str, data: bytes) -> None:
        server.backdoor.put(f"{folder}/{path}", data)

    def leave_incomplete_upload(path: str) -> None:  # a session record our crashed process left, long expired
        SessionRecords(state / "upload-sessions").save(SessionRecord(path, f"{server.authority_url}/_pre/upload/gone",
                                                                     BIG_SESSION, "any", created=1.0, expires=2.0))

    def broken() -> list[Broken]:
        return [
            Broken("missing folder", make_graph(server, f"missing-{uuid.uuid4().hex[:8]}", state, token),
                   r"no such drive or folder"),
            Broken("not signed in", make_graph(server, folder, state, tmp_path / "nobody.json"),
                   r"login required: not signed in.*run 'cloudgw login"),
        ]

    return Harness(f"graph-{server.drive_type}", make_graph(server, folder, state, token), "", put_outside,
                   leave_incomplete_upload, broken)


BIG_SESSION = 20 * MiB
GDRIVE_CHUNK = 4 * 262144  # resumable chunks of 1 MiB: BIG files take several


def make_gdrive(server: Any, folder: str, state_dir: Path, token_file: Path, **options: Any) -> Remote:
    """A remote on ``folder`` of the fake's My Drive, built as the registry builds it (with
    the Drive name rules around it)."""
    from cloudgw.remotes.registry import Common, open_remote
    from tests.gdrive_support import gdrive_options

    return open_remote(f"gdrive://my-drive/{folder}", gdrive_options(server, token_file, chunk_size=GDRIVE_CHUNK,
                                                                      **options),
                       Common(timeout=10.0, state_dir=state_dir), crypt=False)


def _gdrive(server: Any, tmp_path: Path) -> Harness:
    """A remote on a fresh folder of the fake's My Drive; the backdoor changes the drive as the
    Drive web UI or another user would (by path: create or upload a new version, folders made
    as needed).  Drive has no conditional requests: nothing closes the check-then-write window."""
    from cloudgw.remotes.upload_sessions import SessionRecord, SessionRecords
    from tests import gdrive_support, graph_support

    folder = f"t-{uuid.uuid4().hex[:12]}"
    server.backdoor.create_folder("root", folder)
    token = graph_support.signed_in_copy(server.token_template, tmp_path / "gdrive-token.json")
    state = tmp_path / "gdrive-state"

    def put_outside(path: str, data: bytes) -> None:
        gdrive_support.put(server.backdoor, f"{folder}/{path}", data)

    def leave_incomplete_upload(path: str) -> None:  # a session record our crashed process left, long expired
        gone = f"{server.root_url}upload/drive/v3/files?uploadType=resumable&upload_id=gone-{uuid.uuid4().hex}"
        SessionRecords(state / "upload-sessions").save(SessionRecord(path, gone, BIG_SESSION, "any", created=1.0,
                                                                     expires=2.0))

    def broken() -> list[Broken]:
        return [
            Broken("missing folder", make_gdrive(server, f"missing-{uuid.uuid4().hex[:8]}", state, token),
                   r"no such folder"),
            Broken("not signed in", make_gdrive(server, folder, state, tmp_path / "nobody.json"),
                   r"login required: not signed in.*run 'cloudgw login"),
        ]

    return Harness("gdrive", make_gdrive(server, folder, state, token), "", put_outside, leave_incomplete_upload,
                   broken, closes_race_window=False)


def _router(inner: Harness) -> Harness:
    remote = RouterRemote({"mnt": inner.remote})

    def strip(path: str) -> str:
        assert path.startswith("mnt/"), path
        return path[len("mnt/") :]

    def broken() -> list[Broken]:
        return [
            Broken(f"router over {b.label}", RouterRemote({"mnt": b.remote}), r"^remote 'mnt': .*" + b.match, b.secret)
            for b in inner.broken()
        ]

    return Harness(
        "router",
        remote,
        "mnt",
        lambda path, data: inner.put_outside(strip(path), data),
        lambda path: inner.leave_incomplete_upload(strip(path)),
        broken,
        disk_path=None if inner.disk_path is None else lambda path: inner.disk_path(strip(path)),
    )


def _mapped(root: Path) -> Harness:
    """A local directory under OneDrive's name rules (``MappedNamesRemote``), every test inside
    a folder whose name must be mapped (``a*b:c.`` is stored as ``a＊b：c．``), so each call
    goes through the mapping; the backdoor writes the stored names, as another client would."""
    from cloudgw.remotes.mapped import MappedNamesRemote
    from cloudgw.remotes.names import NameCodec, named_on_linux

    codec = NameCodec(named_on_linux("onedrive"))
    inner = _local(root)
    base = "a*b:c."
    (root / codec.encode(base)).mkdir()

    def broken() -> list[Broken]:
        return [Broken(b.label, MappedNamesRemote(b.remote, codec), b.match, b.secret) for b in inner.broken()]

    return Harness("local-mapped", MappedNamesRemote(inner.remote, codec), base,
                   lambda path, data: inner.put_outside(codec.encode_path(path), data),
                   lambda path: inner.leave_incomplete_upload(codec.encode_path(path)), broken,
                   disk_path=lambda path: root / codec.encode_path(path))


class CountingObserver:
    """What an ``InstrumentedRemote`` reports, kept for the test to look at."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bool]] = []
        self.bytes = {"up": 0, "down": 0}

    def request(self, remote: str, op: str, seconds: float, failed: bool) -> None:
        assert seconds >= 0
        self.requests.append((remote, op, failed))

    def moved(self, remote: str, direction: str, nbytes: int) -> None:
        self.bytes[direction] += nbytes


def _instrumented(inner: Harness) -> Harness:
    """The metrics wrapper (``InstrumentedRemote``) must change nothing a caller sees."""
    from cloudgw.remotes.instrumented import InstrumentedRemote

    observer = CountingObserver()

    def wrap(remote: Remote) -> Remote:
        return InstrumentedRemote(remote, "x", observer)

    def broken() -> list[Broken]:
        return [Broken(f"instrumented {b.label}", wrap(b.remote), b.match, b.secret) for b in inner.broken()]

    return Harness(f"{inner.kind}-instrumented", wrap(inner.remote), inner.base, inner.put_outside,
                   inner.leave_incomplete_upload, broken, inner.closes_race_window, inner.serialises_writers,
                   inner.unique_revs, disk_path=inner.disk_path)


FAST_KDF_PARAMS = dict(memory_kib=8192, iterations=1, lanes=1)  # a vault unlocks in milliseconds in tests


def _crypt(inner: Harness, *, encrypt_names: bool = False, compress: str | None = None,
           state_dir: Path | None = None) -> Harness:
    """``CryptRemote`` over ``inner`` (a vault put on its store first); the backdoor writes
    what another gateway with the password would (encrypted contents, and names; compressed
    in a vault with ``compress``)."""
    import io

    from cloudgw.crypt import VAULT_NAME
    from cloudgw.crypt import format as fmt
    from cloudgw.crypt.compress import codec_of
    from cloudgw.crypt.names import NameCipher
    from cloudgw.crypt.vault import KdfParams, create_vault, unlock
    from cloudgw.remotes.crypt import CryptRemote

    password = uuid.uuid4().hex.encode()
    vault, _pem = create_vault(password, encrypt_names=encrypt_names, kdf=KdfParams(**FAST_KDF_PARAMS),
                               compress=compress)
    keys = unlock(vault, password)
    inner.put_outside(VAULT_NAME, vault)
    names = NameCipher(keys.names_key) if encrypt_names else None

    def stored(path: str) -> str:
        return names.encrypt_path(path) if names is not None else path

    def put_outside(path: str, data: bytes) -> None:
        out = io.BytesIO()
        fmt.encrypt_stream(io.BytesIO(data), out, fmt.new_header(keys, compressed=compress is not None),
                           codec_of(compress))
        inner.put_outside(stored(path), out.getvalue())

    def broken() -> list[Broken]:
        wrong = CryptRemote(inner.remote, b"Wr0ng-" + password, label="the remote")
        return [
            *(Broken(f"encrypted {b.label}", CryptRemote(b.remote, password), b.match, b.secret)
              for b in inner.broken()),
            Broken("wrong password", wrong, r"^wrong password for this encrypted remote", password.decode()),
        ]

    remote = CryptRemote(inner.remote, password, state_dir=state_dir)
    remote.unlocked(keys)
    # compressed: an edit also sends the first part (it holds the chunk table)
    slack = 2 * fmt.SLOT + (5 * MiB if compress else 0)
    kind = f"{inner.kind}-crypt{'-names' if encrypt_names else ''}{'-' + compress if compress else ''}"
    return Harness(kind, remote, inner.base, put_outside,
                   lambda path: inner.leave_incomplete_upload(stored(path)), broken, inner.closes_race_window,
                   inner.serialises_writers, inner.unique_revs, delta_slack=slack,
                   disk_path=None if inner.disk_path is None else lambda path: inner.disk_path(stored(path)))


@pytest.fixture(
    params=[
        "local-crypt",
        "local-crypt-names",
        "s3-moto-crypt",
        "s3-moto-crypt-names",
        "local-crypt-zstd",
        "s3-moto-crypt-lz4",
        "webdav-wsgidav-crypt-zstd",
        "webdav-wsgidav-crypt",
        "webdav-nextcloud-crypt",
        "local",
        "local-instrumented",
        "s3-moto-instrumented",
        "s3-moto",
        "s3-moto-prefix",
        "router-local",
        "local-mapped",
        pytest.param("s3-swift", marks=pytest.mark.swift),
        "webdav-apache",
        "webdav-wsgidav",
        "webdav-nextcloud",
        "graph-business",
        "graph-personal",
        "graph-business-crypt-names",
        "gdrive",
        "gdrive-crypt-names",
    ]
)
def harness(request, tmp_path: Path) -> Harness:
    kind = request.param
    if kind == "local":
        return _local(tmp_path / "root")
    if kind in ("local-crypt", "local-crypt-names"):
        return _crypt(_local(tmp_path / "root"), encrypt_names=kind.endswith("-names"))
    if kind == "local-crypt-zstd":  # sizes kept on disk, as a gateway keeps them
        return _crypt(_local(tmp_path / "root"), compress="zstd", state_dir=tmp_path / "state")
    if kind == "s3-moto-crypt-lz4":
        return _crypt(_s3(request.getfixturevalue("moto_server"), ""), compress="lz4")
    if kind == "webdav-wsgidav-crypt-zstd":
        return _crypt(_webdav(request.getfixturevalue("wsgidav_server")), compress="zstd")
    if kind in ("s3-moto-crypt", "s3-moto-crypt-names"):
        return _crypt(_s3(request.getfixturevalue("moto_server"), ""), encrypt_names=kind.endswith("-names"))
    if kind in ("webdav-wsgidav-crypt", "webdav-nextcloud-crypt"):
        server = kind.removeprefix("webdav-").removesuffix("-crypt")
        return _crypt(_webdav(request.getfixturevalue(f"{server}_server")))
    if kind == "local-instrumented":
        return _instrumented(_local(tmp_path / "root"))
    if kind == "s3-moto-instrumented":
        return _instrumented(_s3(request.getfixturevalue("moto_server"), ""))
    if kind == "router-local":
        return _router(_local(tmp_path / "root"))
    if kind == "local-mapped":
        return _mapped(tmp_path / "root")
    if kind == "s3-moto":
        return _s3(request.getfixturevalue("moto_server"), "")
    if kind == "s3-moto-prefix":
        return _s3(request.getfixturevalue("moto_server"), "pre/fix")
    if kind == "graph-business":
        return _graph(request.getfixturevalue("graph_server"), tmp_path)
    if kind == "graph-business-crypt-names":  # encrypted names on a case-insensitive drive
        return _crypt(_graph(request.getfixturevalue("graph_server"), tmp_path), encrypt_names=True)
    if kind == "graph-personal":
        return _graph(request.getfixturevalue("personal_graph_server"), tmp_path)
    if kind == "gdrive":
        return _gdrive(request.getfixturevalue("gdrive_server"), tmp_path)
    if kind == "gdrive-crypt-names":
        return _crypt(_gdrive(request.getfixturevalue("gdrive_server"), tmp_path), encrypt_names=True)
    if kind.startswith("webdav-"):
        return _webdav(request.getfixturevalue(f"{kind.removeprefix('webdav-')}_server"))
    bucket = request.getfixturevalue("swift_bucket")
    return _s3(request.getfixturevalue("swift_server"), f"t-{uuid.uuid4().hex[:12]}", bucket)


@pytest.fixture
async def h(harness: Harness) -> Harness:
    if harness.kind in ("webdav-nextcloud", "webdav-nextcloud-crypt") or harness.kind.startswith(("graph", "gdrive")):
        # as a mount does first: learns checksums, chunked uploads (Nextcloud); finds the drive (Graph),
        # the folder's id (Drive)
        await harness.remote.check()
    try:
        yield harness
    finally:
        await harness.remote.aclose()


@pytest.fixture(autouse=True)
def no_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A test that logs WARNING or worse fails (DESIGN.md, Tests): here from any
    logger, since boto3/s3transfer/urllib3 warn about misuse we must not ship."""
    caplog.set_level(logging.INFO)
    yield
    bad = [r for r in caplog.get_records("call") + caplog.get_records("setup") if r.levelno >= logging.WARNING]
    assert not bad, "unexpected log records: " + "; ".join(f"{r.name}: {r.getMessage()}" for r in bad)


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # no 1 s IMDS probe when keys are missing
