"""Listings of the WebDAV remote: a Depth 1 PROPFIND per folder, or for a recursive
listing one Depth infinity PROPFIND parsed as it streams in (memory: one ``<response>``
at a time), where the server allows it.  Apache forbids Depth infinity unless
``DavDepthInfinity on`` (403): the first refusal switches the remote to walking with
Depth 1 for good (``WebDavRemote.depth_infinity``).  A walk yields every directory
once; a directory that vanishes during the walk is skipped.  A stream that breaks
mid-way fails the listing (``TransientRemoteError``): a listing is never resumed, so
it never yields an entry twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator

import httpx

from cloudgw.errors import RemoteNotFound
from cloudgw.remotes.webdav_http import status_error, transport_error
from cloudgw.remotes.webdav_xml import PROPFIND_BODY, PROPFIND_HEADERS, MultistatusParser, Prop

if TYPE_CHECKING:
    from cloudgw.remotes.webdav import WebDavRemote


async def walk(remote: WebDavRemote, path: str, *, recursive: bool) -> AsyncIterator[tuple[str, Prop]]:
    """Every (path, Prop) below directory ``path``, temps included."""
    if recursive and remote.depth_infinity is not False:
        async for item in _walk_infinity(remote, path):
            yield item
        if remote.depth_infinity:
            return
    todo = [path]
    while todo:
        directory = todo.pop()
        props = await remote.propfind(directory, "1")
        if props is None or not props[0].collection:
            if directory == path:
                raise RemoteNotFound(f"list {remote.http.display(path)}: no such directory")
            continue  # gone while we walked
        for prop in props:
            rel = remote.rel(prop.href_path)
            if rel is None or rel == directory:
                continue
            if recursive and prop.collection:
                todo.append(rel)
            yield rel, prop

async def _walk_infinity(remote: WebDavRemote, path: str) -> AsyncIterator[tuple[str, Prop]]:
    """One streamed Depth infinity PROPFIND; sets ``_depth_infinity`` False if refused."""
    http = remote.http
    what = f"PROPFIND {http.display(path)} (Depth infinity)"
    request = http.client.build_request("PROPFIND", http.url(path), content=PROPFIND_BODY,
                                        headers={"Depth": "infinity", **PROPFIND_HEADERS})

    async def send() -> httpx.Response:
        try:
            resp = await http.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc, what) from exc
        if resp.status_code >= 500 or resp.status_code in (423, 429):
            await resp.aclose()
            raise status_error(resp.status_code, what, resp.headers)
        return resp

    resp = await http.retried(what, send)
    try:
        if resp.status_code == 403:
            remote.depth_infinity = False
            return
        if resp.status_code in (400, 404, 409):
            raise RemoteNotFound(f"list {http.display(path)}: no such directory")
        if resp.status_code != 207:
            raise status_error(resp.status_code, what, resp.headers)
        remote.depth_infinity = True
        parser, first = MultistatusParser(), True
        try:
            async for chunk in resp.aiter_bytes():
                for prop in parser.feed(chunk):
                    rel = remote.rel(prop.href_path)
                    if first and not prop.collection:
                        raise RemoteNotFound(f"list {http.display(path)}: not a directory")
                    first = False
                    if rel is not None and rel != path:
                        yield rel, prop
            for prop in parser.close():
                rel = remote.rel(prop.href_path)
                if rel is not None and rel != path:
                    yield rel, prop
        except httpx.HTTPError as exc:
            raise transport_error(exc, what) from exc
    finally:
        await resp.aclose()
