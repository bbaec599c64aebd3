"""Small helpers shared by the remotes: contract paths and errno-carrying errors."""

from __future__ import annotations

import email.utils
import time

from cloudgw.errors import RemoteError, RemoteUnsupported


def split_path(path: str) -> list[str]:
    """Components of a contract path; reject what could escape the root."""
    parts = path.split("/") if path else []
    if any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise RemoteUnsupported(f"invalid path {path!r}")
    return parts


def remote_error(cls: type[RemoteError], err: int | None, message: str) -> RemoteError:
    """An error of ``cls`` whose ``errno`` is ``err`` (e.g. ENOSPC, EISDIR)."""
    exc = cls(message)
    if err is not None:
        exc.errno = err
    return exc


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` value (seconds or an HTTP date) as seconds from now; None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
