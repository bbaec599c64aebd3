"""What the benchmark does to a server behind the gateways' backs: put the shared
data, check what arrived, change things "from elsewhere", clean up.

* ``S3Store``: a bucket on moto or Swift (boto3, path style).
* ``DavStore``: Apache mod_dav_fs (``tests/servers/apache.py``).  Shared data is
  written straight into the DAV tree on disk (as the S3 data is put with boto3:
  fast, and no gateway is involved), owned by the server's user so Apache can
  replace and delete it.  What a gateway uploaded is checked on disk too: a
  file is there once Apache renamed its own PUT temp file into place; names
  starting with "." (Apache's ``.davfs.tmp*``, cloudgw's ``.cloudgw-tmp-*``)
  are never counted.  A change "made elsewhere" (workload 7) is written on disk
  the same way, so Apache's access log (``requests``) holds the gateways'
  requests only.

Keys are paths below the bucket / the DAV tree ("meta/n500/f000001").
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from benchmarks.gateways import DavRemote, Remote

BUCKET = "cloudgw-bench"
MiB = 1 << 20


class S3Store:
    kind = "s3"
    word = "S3"  # as in "sent to S3"
    requests = None  # no request log to count

    def __init__(self, server) -> None:  # noqa: ANN001  (tests.servers.S3Server)
        self.server = server
        self.admin = server.client()
        self.admin.meta.events.register("before-sign.s3.DeleteObjects", _content_md5)  # Swift wants it
        self.port = urlparse(server.endpoint_url).port

    def prepare(self) -> None:
        with contextlib.suppress(self.admin.exceptions.BucketAlreadyOwnedByYou):
            self.admin.create_bucket(Bucket=BUCKET)

    def remote(self, endpoint_url: str, prefix: str) -> Remote:
        s = self.server
        return Remote(endpoint_url, s.access_key, s.secret_key, s.region, BUCKET, prefix)

    def ensure_prefix(self, prefix: str) -> None:
        pass  # S3 has no folders

    def upload_file(self, path: Path, key: str) -> None:
        from boto3.s3.transfer import TransferConfig

        self.admin.upload_file(str(path), BUCKET, key,
                               Config=TransferConfig(multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB,
                                                     max_concurrency=4))

    def put_many(self, prefix: str, names: list[str], body: bytes) -> None:
        from concurrent.futures import ThreadPoolExecutor

        existing = {o["Key"] for o in self._list(prefix + "/")}
        todo = [n for n in names if f"{prefix}/{n}" not in existing]

        def put(name: str) -> None:
            self.admin.put_object(Bucket=BUCKET, Key=f"{prefix}/{name}", Body=body)

        with ThreadPoolExecutor(8) as ex:
            list(ex.map(put, todo))

    def put(self, key: str, data: bytes) -> None:
        self.admin.put_object(Bucket=BUCKET, Key=key, Body=data)

    def sizes(self, prefix: str) -> list[int]:
        """Sizes of the objects below ``prefix`` (recursive)."""
        return [o["Size"] for o in self._list(prefix.rstrip("/") + "/")]

    def size(self, key: str) -> int | None:
        try:
            return self.admin.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
        except self.admin.exceptions.ClientError:
            return None

    def revision(self, key: str) -> str | None:
        try:
            return self.admin.head_object(Bucket=BUCKET, Key=key)["ETag"]
        except self.admin.exceptions.ClientError:
            return None

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        rng = f"bytes={offset}-{offset + length - 1}"
        return self.admin.get_object(Bucket=BUCKET, Key=key, Range=rng)["Body"].read()

    def delete_prefix(self, prefix: str) -> None:
        keys = [o["Key"] for o in self._list(prefix + "/")]
        # s3fs and rclone may have written a directory marker "prefix/"
        for i in range(0, len(keys), 1000):
            self.admin.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                             "Quiet": True})

    def _list(self, prefix: str) -> Iterator[dict]:
        for page in self.admin.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            yield from page.get("Contents", [])


class DavStore:
    """The DAV tree of a running ``DavServer`` (see the module docstring)."""

    kind = "webdav"
    word = "WebDAV"

    def __init__(self, server) -> None:  # noqa: ANN001  (tests.servers.DavServer)
        self.server = server
        self.root: Path = server.root
        self.port: int = self.server.port
        st = self.root.stat()
        self.uid, self.gid = st.st_uid, st.st_gid  # www-data when Apache serves as root
        self.staging = self.root.parent / ".bench-staging"  # same file system: rename into place
        self.requests = server.counts  # requests answered so far, per method (Apache's access log)

    def prepare(self) -> None:
        self.staging.mkdir(exist_ok=True)

    def remote(self, endpoint_url: str, prefix: str) -> DavRemote:
        s = self.server
        return DavRemote(endpoint_url, s.user, s.password, s.path, prefix)

    def _path(self, key: str) -> Path:
        return self.root / key

    def ensure_prefix(self, prefix: str) -> None:
        d = self.root
        for part in [p for p in prefix.split("/") if p]:
            d = d / part
            if not d.is_dir():
                d.mkdir()
                os.chown(d, self.uid, self.gid)

    def _place(self, data_or_path: bytes | Path, key: str) -> None:
        parent, _, name = key.rpartition("/")
        self.ensure_prefix(parent)
        tmp = self.staging / name
        if isinstance(data_or_path, Path):
            with open(data_or_path, "rb") as src, open(tmp, "wb") as dst:
                os.sendfile(dst.fileno(), src.fileno(), 0, os.fstat(src.fileno()).st_size)
        else:
            tmp.write_bytes(data_or_path)
        os.chown(tmp, self.uid, self.gid)
        os.chmod(tmp, 0o644)
        os.rename(tmp, self._path(key))

    def upload_file(self, path: Path, key: str) -> None:
        target = self._path(key)
        if target.exists() and target.stat().st_size == path.stat().st_size:
            return
        self._place(path, key)

    def put_many(self, prefix: str, names: list[str], body: bytes) -> None:
        self.ensure_prefix(prefix)
        d = self._path(prefix)
        existing = set(os.listdir(d))
        for name in names:
            if name not in existing:
                p = d / name
                p.write_bytes(body)
                os.chown(p, self.uid, self.gid)

    def put(self, key: str, data: bytes) -> None:
        """A change made elsewhere: the file replaced in the DAV tree (written aside, renamed into place)."""
        self._place(data, key)

    def sizes(self, prefix: str) -> list[int]:
        out = []
        top = self._path(prefix.strip("/"))
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not name.startswith("."):
                    with contextlib.suppress(FileNotFoundError):
                        out.append(os.stat(os.path.join(dirpath, name)).st_size)
        return out

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def revision(self, key: str) -> str | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with open(self._path(key), "rb") as f:
            return os.pread(f.fileno(), length, offset)

    def delete_prefix(self, prefix: str) -> None:
        import shutil

        shutil.rmtree(self._path(prefix), ignore_errors=True)


def _content_md5(request, **kwargs) -> None:  # noqa: ANN001
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
