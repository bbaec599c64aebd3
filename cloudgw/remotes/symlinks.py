"""Emulated symlinks, shared by the remotes that have none (S3, WebDAV).

A symlink ``NAME`` is stored as a small object ``NAME.cloudgw-symlink`` whose body is
the target (UTF-8, undecodable bytes kept through ``surrogateescape``); listings show
it as ``Kind.SYMLINK`` named ``NAME``.  Names ending in the suffix are therefore
reserved on those remotes.
"""

from __future__ import annotations

SYMLINK_SUFFIX = ".cloudgw-symlink"


def link_object(path: str) -> str:
    """The object that holds the symlink ``path``."""
    return path + SYMLINK_SUFFIX


def is_link_object(name: str) -> bool:
    return name.endswith(SYMLINK_SUFFIX) and len(name) > len(SYMLINK_SUFFIX)


def link_name(name: str) -> str:
    """The symlink's own name for its object's name."""
    return name[: -len(SYMLINK_SUFFIX)]


def encode_target(target: str) -> bytes:
    return target.encode("utf-8", "surrogateescape")


def decode_target(body: bytes) -> str:
    return body.decode("utf-8", "surrogateescape")
