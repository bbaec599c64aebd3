"""Exported copies of Google Docs, Sheets, Slides and Drawings, kept on disk.

A Google editor file has no bytes of its own: the mount shows it as the Office (or SVG /
PDF) file Drive exports it to.  The export is downloaded through the file's
``exportLinks`` (``files.export`` stops at 10 MB) once per version of the Doc -- keyed by
(file id, ``modifiedTime``, format) -- and kept here: a listing shows its real size
(never 0), reads are served from it, and a Doc changed on Drive gets a new
``modifiedTime``, so the next listing exports it again and the old copy is removed.

Files: ``FOLDER/ID.STAMP.EXT`` (the stamp is the modifiedTime with its punctuation
dropped).  Written to a temporary name and renamed: a crash leaves either no copy or a
whole one (``*.part`` leftovers are removed when the store opens).  Without a state
folder (tests, ``cloudgw decrypt``-style one-shot uses) a temporary folder is used.

Concurrency: one export per file at a time (a trio lock per id); reads of a finished copy
need no lock (it is never rewritten, only replaced by another name).  Copies of Docs the
feed reports removed are deleted; the store is not counted in the cache's size limits
(a drive with many large Docs: see the README's limits).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from cloudgw.errors import RemoteUnsupported
from cloudgw.remotes.gdrive_http import DriveHttp
from cloudgw.remotes.util import PathLocks

PIECE = 1 << 20


class ExportStore:
    def __init__(self, folder: Path | None) -> None:
        if folder is None:
            self._temp = tempfile.TemporaryDirectory(prefix="cloudgw-exports-")
            folder = Path(self._temp.name)
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob("*.part"):
            leftover.unlink(missing_ok=True)
        self.folder = folder
        self._locks = PathLocks()  # one export of a Doc at a time; a lock lives while it is used

    def path(self, file_id: str, stamp: str, extension: str) -> Path:
        return self.folder / f"{_safe(file_id)}.{re.sub(r'[^0-9A-Za-z]', '', stamp)}.{extension}"

    def size(self, file_id: str, stamp: str, extension: str) -> int | None:
        try:
            return self.path(file_id, stamp, extension).stat().st_size
        except FileNotFoundError:
            return None

    async def get(self, http: DriveHttp, file: dict, mime_type: str, extension: str, what: str) -> Path:
        """The exported copy of ``file`` (a files resource with id, modifiedTime and
        exportLinks) as ``mime_type``, downloaded if not kept yet."""
        file_id, stamp = str(file["id"]), str(file.get("modifiedTime", ""))
        target = self.path(file_id, stamp, extension)
        async with self._locks.locked(file_id):
            if target.exists():
                return target
            link = (file.get("exportLinks") or {}).get(mime_type)
            if not link:
                raise RemoteUnsupported(f"{what}: Drive does not export this file as {mime_type}")
            part = target.with_name(target.name + ".part")

            async def download() -> None:  # whole, again from the start when it breaks
                with open(part, "wb") as out:
                    async with http.stream(what, link, {}) as resp:
                        async for chunk in resp.aiter_bytes(PIECE):
                            out.write(chunk)

            try:
                await http.retried(what, download)
                os.replace(part, target)
            finally:
                part.unlink(missing_ok=True)
            for old in self.folder.glob(f"{_safe(file_id)}.*"):
                if old != target and not old.name.endswith(".part"):
                    old.unlink(missing_ok=True)
        return target


    def drop(self, file_id: str) -> None:
        """Forget a Doc's copies (it was removed or trashed on Drive)."""
        for old in self.folder.glob(f"{_safe(file_id)}.*"):
            old.unlink(missing_ok=True)


def _safe(file_id: str) -> str:
    return re.sub(r"[^0-9A-Za-z_-]", "_", file_id)
