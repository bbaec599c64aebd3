"""Remote URLs -> Remote objects: ``file:///absolute/path`` and ``s3://bucket[/prefix]``."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from cloudgw.errors import UserError
from cloudgw.remotes.base import Remote

_HINT = "use file:///absolute/path or s3://bucket[/prefix]"


def _bad(url: str, why: str = "") -> UserError:
    return UserError(f"unsupported remote URL {url!r}{': ' + why if why else ''}: {_HINT}")


def open_remote(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    path_style: bool | None = None,
    conditional_writes: bool | None = None,
    **s3_options: Any,
) -> Remote:
    """Build (but do not contact) the remote for ``url``; call ``check()`` next.

    S3 credentials, region and endpoint come from boto3's standard chain unless
    given here; ``path_style`` None means path-style exactly when a custom
    endpoint is configured.  ``s3_options`` go to ``S3Remote`` (part size...).
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise _bad(url) from None
    if parts.query or parts.fragment:
        raise _bad(url, "no ?query or #fragment allowed")
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise _bad(url, "the path must be absolute (three slashes)")
        from cloudgw.remotes.local import LocalRemote

        return LocalRemote(Path(urllib.parse.unquote(parts.path)))
    if scheme == "s3":
        bucket = parts.netloc
        if not bucket or any(c in bucket for c in " @:"):
            raise _bad(url, "missing or invalid bucket name")
        prefix = urllib.parse.unquote(parts.path).strip("/")
        if any(p in (".", "..") for p in prefix.split("/")) or "//" in prefix:
            raise _bad(url, "invalid prefix")
        from cloudgw.remotes.s3 import S3Remote

        return S3Remote(
            bucket,
            prefix,
            endpoint_url=endpoint_url,
            region=region,
            path_style=path_style,
            conditional_writes=conditional_writes,
            **s3_options,
        )
    raise _bad(url)
