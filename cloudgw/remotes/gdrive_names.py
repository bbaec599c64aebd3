"""Names for a Google Drive folder's children: one local name per Drive file, always.

Drive identifies files by id; a folder may hold several files (and folders) with the
same name, names may contain ``/``, and Google Docs have no extension of their own.  A
local directory needs one distinct name per entry, so every folder listing goes
through ``display_names``:

- a Google Doc, Sheet, Slides or Drawing shows with the extension of the format it is
  exported as (``Budget`` -> ``Budget.xlsx``; ``EXPORT_FORMATS``, configurable);
- ``/`` (legal on Drive, impossible locally) shows as ``∕`` (U+2215), and the names
  ``.``/``..``/empty as ``．``/``．．``/``_``;
- children are taken in the order they were created (``createdTime``, then ``id``):
  each keeps its name if no earlier child took it, else gets the first free serial
  suffix before the extension: ``report.pdf``, ``report (1).pdf``, ``report (2).pdf``.

So the oldest of a group keeps the plain name, a file and a folder of the same name
both appear, and the result depends only on the folder's content: the same after a
restart and on every gateway, and a child created later never renames an existing one.
What it cannot avoid: when an older duplicate is deleted or renamed elsewhere, the
newer ones move up (``report (2).pdf`` becomes ``report (1).pdf``), as the same rule
applied to the new content says.  The mapping is a pure function (no I/O), so a
rename or delete in the mount is resolved to the right Drive id through the same
listing that produced the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

GOOGLE_APPS = "application/vnd.google-apps."
FOLDER_MIME = GOOGLE_APPS + "folder"
SHORTCUT_MIME = GOOGLE_APPS + "shortcut"

# Google editor type -> (export MIME type, extension); README: what each exports as
EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    GOOGLE_APPS + "document": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
    GOOGLE_APPS + "spreadsheet": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    GOOGLE_APPS + "presentation": ("application/vnd.openxmlformats-officedocument.presentationml.presentation",
                                   "pptx"),
    GOOGLE_APPS + "drawing": ("image/svg+xml", "svg"),
}
MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class Child:
    """What naming needs of one Drive file in a folder."""

    id: str
    name: str
    mime_type: str = "application/octet-stream"
    created: str = ""  # createdTime (RFC 3339 UTC: sorts as text)


def exported_extension(mime_type: str, formats: Mapping[str, tuple[str, str]] = EXPORT_FORMATS) -> str | None:
    """The extension a Google editor file shows with; None for files with bytes of their own
    (and for Google types not exported: forms, sites, maps)."""
    found = formats.get(mime_type)
    return found[1] if found else None


def base_name(child: Child, formats: Mapping[str, tuple[str, str]] = EXPORT_FORMATS) -> str:
    """The local name ``child`` would have alone in its folder."""
    name = child.name.replace("/", "\u2215").replace("\0", "")
    if name in ("", ".", ".."):
        name = {"": "_", ".": "\uff0e", "..": "\uff0e\uff0e"}[name]
    extension = exported_extension(child.mime_type, formats)
    if extension and not name.lower().endswith("." + extension):
        name = f"{name}.{extension}"
    return _fit(name, "")


def suffixed(name: str, serial: int, *, is_folder: bool = False) -> str:
    """``report.pdf`` -> ``report (1).pdf``; folders and names without an extension get the
    suffix at the end (``Photos (1)``, ``.bashrc (1)``)."""
    stem, dot, extension = name.rpartition(".")
    if is_folder or not dot or not stem or " " in extension or len(extension) > 8:
        return _fit(name, f" ({serial})")
    return _fit(stem, f" ({serial}).{extension}")


def _fit(stem: str, tail: str) -> str:
    """``stem + tail`` cut (in the stem, on a character boundary) to ``MAX_NAME_BYTES``."""
    room = MAX_NAME_BYTES - len(tail.encode())
    encoded = stem.encode("utf-8", "surrogateescape")
    if len(encoded) > room:
        stem = encoded[:room].decode("utf-8", "ignore")
    return stem + tail


def display_names(children: Iterable[Child], formats: Mapping[str, tuple[str, str]] = EXPORT_FORMATS
                  ) -> dict[str, str]:
    """Drive id -> local name for every child of one folder (see the module docstring)."""
    taken: set[str] = set()
    names: dict[str, str] = {}
    for child in sorted(children, key=lambda c: (c.created, c.id)):
        base = base_name(child, formats)
        name, serial = base, 0
        while name in taken:
            serial += 1
            name = suffixed(base, serial, is_folder=child.mime_type == FOLDER_MIME)
        taken.add(name)
        names[child.id] = name
    return names
