"""What the remote holds, seen from outside the gateway (another user of the cloud)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path
from typing import Iterator

MiB = 1 << 20


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

    def download(self, subdir: str, dest: Path) -> Path:
        """Copy ``subdir`` out of the cloud, as another tool would see it."""
        shutil.copytree(self.root / subdir, dest, symlinks=True)
        return dest

    def sha256(self, path: str) -> str:
        h = hashlib.sha256()
        with open(self.root / path, "rb") as f:
            while chunk := f.read(8 * MiB):
                h.update(chunk)
        return h.hexdigest()


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

    def download(self, subdir: str, dest: Path) -> Path:
        dest.mkdir(parents=True)
        base = self._key(subdir) + "/" if subdir else (f"{self.prefix}/" if self.prefix else "")
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(base):]
                if not rel or rel.endswith("/"):
                    (dest / rel).mkdir(parents=True, exist_ok=True)  # a directory marker
                    continue
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                body = self.client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"]
                with open(dest / rel, "wb") as f:
                    shutil.copyfileobj(body, f, MiB)
        return dest

    def sha256(self, path: str) -> str:
        h = hashlib.sha256()
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"]
        while chunk := body.read(8 * MiB):
            h.update(chunk)
        return h.hexdigest()

    def files(self) -> dict[str, int]:
        out = {}
        cut = len(self.prefix) + 1 if self.prefix else 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    out[obj["Key"][cut:]] = obj["Size"]
        return out


class CryptView:
    """An encrypted remote as another gateway with the password sees it: ``put`` encrypts
    (a new file key each time), ``get`` and ``download`` decrypt, ``files`` gives plaintext
    sizes and hides the vault; ``raw`` is the ciphertext as the cloud holds it."""

    def __init__(self, raw: FileView | S3View, password: bytes) -> None:
        from cloudgw.crypt import VAULT_NAME
        from cloudgw.crypt.vault import unlock

        self.raw = raw
        self.keys = unlock(raw.get(VAULT_NAME), password)

    def put(self, path: str, data: bytes) -> None:
        from cloudgw.crypt import format as fmt

        from cloudgw.crypt.compress import codec_of

        out = io.BytesIO()
        compressed = self.keys.compress is not None  # as a gateway of this vault writes
        fmt.encrypt_stream(io.BytesIO(data), out, fmt.new_header(self.keys, compressed=compressed),
                           codec_of(self.keys.compress))
        self.raw.put(path, out.getvalue())

    def decrypt(self, stored: bytes, what: str) -> bytes:
        from cloudgw.crypt import format as fmt

        src, out = io.BytesIO(stored), io.BytesIO()
        header = fmt.open_header(fmt.read_header(src, what), self.keys, what)
        fmt.decrypt_stream(src, out, header, what)
        return out.getvalue()

    def get(self, path: str) -> bytes:
        if path.endswith(".cloudgw-symlink"):  # an emulated symlink: its target, not file content
            return self.raw.get(path)
        return self.decrypt(self.raw.get(path), path)

    def delete(self, path: str) -> None:
        self.raw.delete(path)

    def files(self) -> dict[str, int]:
        from cloudgw.crypt import VAULT_NAME
        from cloudgw.crypt import format as fmt

        out = {}
        for path, size in self.raw.files().items():
            if path == VAULT_NAME:
                continue
            if path.endswith(".cloudgw-symlink"):
                out[path] = size
            elif self.keys.compress is not None:  # the size is in the file, after the header
                out[path] = fmt.read_plain_size(self.raw.get(path)[fmt.HEADER_SIZE:fmt.TABLE_START], path)
            else:
                out[path] = fmt.plain_size(size)
        return out

    def download(self, subdir: str, dest: Path) -> Path:
        self.raw.download(subdir, dest)
        for path in dest.rglob("*"):
            if path.is_file() and not path.is_symlink() and not path.name.endswith(".cloudgw-symlink"):
                path.write_bytes(self.decrypt(path.read_bytes(), str(path)))
        return dest

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.get(path)).hexdigest()


class GraphView:
    """A folder of the fake Graph drive: another client (Office 365, another PC) changes it
    through the fake's back door; names are as stored (OneDrive lookalikes)."""

    def __init__(self, server, folder: str) -> None:  # noqa: ANN001 (tests.servers.graph.GraphServer)
        self.server, self.folder = server, folder
        self.backdoor = server.backdoor

    def _p(self, path: str) -> str:
        return f"{self.folder}/{path}" if path else self.folder

    def put(self, path: str, data: bytes) -> None:
        self.backdoor.put(self._p(path), data)

    def get(self, path: str) -> bytes:
        return self.backdoor.read(self._p(path))

    def delete(self, path: str) -> None:
        self.backdoor.delete(self._p(path))

    def move(self, src: str, dst: str) -> dict:
        return self.backdoor.move(self._p(src), self._p(dst))

    def item(self, path: str) -> dict | None:
        return self.backdoor.item(self._p(path))

    def _walk(self, top: str = "") -> Iterator[tuple[str, dict]]:
        """(path, driveItem) of everything below ``top``, folders included."""
        folders = [top]
        while folders:
            folder = folders.pop()
            for name in self.backdoor.list(self._p(folder)):
                path = f"{folder}/{name}" if folder else name
                item = self.backdoor.item(self._p(path))
                if item is None:
                    continue
                if "folder" in item:
                    folders.append(path)
                yield path, item

    def files(self) -> dict[str, int]:
        return {path: int(item["size"]) for path, item in self._walk() if "folder" not in item}

    def download(self, subdir: str, dest: Path) -> Path:
        dest.mkdir(parents=True)
        top = subdir.strip("/")
        for path, item in self._walk(top):
            target = dest / path[len(top) + 1:] if top else dest / path
            if "folder" in item:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.get(path))
        return dest

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.get(path)).hexdigest()


class GDriveView:
    """A folder of the fake Google Drive's My Drive: another user (the Drive web UI) changes it
    through the fake's back door.  Paths are stored names (of duplicates, the oldest); what
    ``files`` and ``download`` give is named as the mount names it (``gdrive_names``: serial
    suffixes for duplicates), and holds files with bytes only (no Docs, no shortcuts)."""

    def __init__(self, server, folder: str) -> None:  # noqa: ANN001 (tests.servers.gdrive.GDriveServer)
        from tests.gdrive_support import folder_id

        self.server, self.folder = server, folder
        self.backdoor = server.backdoor
        self.folder_id = folder_id(self.backdoor, folder)

    def item(self, path: str) -> dict | None:
        """The files resource at ``path`` (None if there is none)."""
        from tests.gdrive_support import lookup

        return lookup(self.backdoor, path, self.folder_id)

    def id(self, path: str) -> str:
        found = self.item(path)
        if found is None:
            raise FileNotFoundError(path)
        return found["id"]

    def dir_id(self, path: str) -> str:
        """The id of the folder at ``path`` (made with its parents if missing)."""
        from tests.gdrive_support import folder_id

        return folder_id(self.backdoor, path, self.folder_id)

    def put(self, path: str, data: bytes) -> dict:
        from tests.gdrive_support import put

        return put(self.backdoor, path, data, self.folder_id)

    def get(self, path: str) -> bytes:
        return self.backdoor.read(self.id(path))

    def delete(self, path: str) -> None:
        """Deleted for good (not trashed): see ``trash``."""
        self.backdoor.delete(self.id(path))

    def trash(self, path: str) -> None:
        self.backdoor.trash(self.id(path))

    def rename(self, path: str, name: str) -> dict:
        return self.backdoor.rename(self.id(path), name)

    def move(self, path: str, folder: str) -> dict:
        """Into the folder at ``folder`` (made if missing), keeping the name."""
        return self.backdoor.move(self.id(path), self.dir_id(folder))

    def _walk(self, top: str = "") -> Iterator[tuple[str, dict]]:
        """(path as the mount names it, files resource) of everything below ``top``."""
        from cloudgw.remotes.gdrive_names import FOLDER_MIME, Child, display_names

        folders = [(top, self.dir_id(top) if top else self.folder_id)]
        while folders:
            path, fid = folders.pop()
            children = self.backdoor.children(fid)
            names = display_names(Child(c["id"], c["name"], c["mimeType"], c["createdTime"]) for c in children)
            for child in children:
                sub = f"{path}/{names[child['id']]}" if path else names[child["id"]]
                if child["mimeType"] == FOLDER_MIME:
                    folders.append((sub, child["id"]))
                yield sub, child

    def files(self) -> dict[str, int]:
        """path -> size of every file with bytes of its own."""
        return {path: int(res["size"]) for path, res in self._walk() if "size" in res}

    def download(self, subdir: str, dest: Path) -> Path:
        from cloudgw.remotes.gdrive_names import FOLDER_MIME

        dest.mkdir(parents=True)
        top = subdir.strip("/")
        for path, res in self._walk(top):
            target = dest / path[len(top) + 1:] if top else dest / path
            if res["mimeType"] == FOLDER_MIME:
                target.mkdir(parents=True, exist_ok=True)
            elif "size" in res:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.backdoor.read(res["id"]))
        return dest

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.get(path)).hexdigest()
