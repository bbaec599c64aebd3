"""What the remote holds, seen from outside the gateway (another user of the cloud)."""

from __future__ import annotations

import os
from pathlib import Path


class FileView:
    """A file:// remote: just the directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, path: str, data: bytes) -> None:
        p = self.root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".outside-tmp")
        tmp.write_bytes(data)
        os.replace(tmp, p)

    def get(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def delete(self, path: str) -> None:
        (self.root / path).unlink()

    def files(self) -> dict[str, int]:
        """path -> size of every file."""
        return {p.relative_to(self.root).as_posix(): p.stat().st_size
                for p in self.root.rglob("*") if p.is_file() and not p.is_symlink()}


class DavView(FileView):
    """A WebDAV remote: another client changes it over HTTP (the server's files belong to
    the server's user); what it holds is read from the directory it serves."""

    def __init__(self, server, folder: str) -> None:  # noqa: ANN001 (tests.servers.DavServer)
        super().__init__(server.root / folder)
        self.server, self.folder = server, folder

    def put(self, path: str, data: bytes) -> None:
        if "/" in path:
            self.server.mkcol(f"{self.folder}/{path.rsplit('/', 1)[0]}")
        with self.server.client() as c:
            assert c.put(self.server.url(f"{self.folder}/{path}"), content=data).status_code in (200, 201, 204)

    def delete(self, path: str) -> None:
        with self.server.client() as c:
            assert c.delete(self.server.url(f"{self.folder}/{path}")).status_code in (200, 204)

    def files(self) -> dict[str, int]:
        return {p: n for p, n in super().files().items() if ".DAV" not in p.split("/")}  # Apache's property store


class S3View:
    def __init__(self, client, bucket: str, prefix: str = "") -> None:  # noqa: ANN001
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def put(self, path: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data)

    def get(self, path: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()

    def delete(self, path: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(path))

    def files(self) -> dict[str, int]:
        out = {}
        cut = len(self.prefix) + 1 if self.prefix else 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    out[obj["Key"][cut:]] = obj["Size"]
        return out
