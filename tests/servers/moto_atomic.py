"""``moto_server`` with S3's atomic conditional writes (``python -m tests.servers.moto_atomic``).

Real S3 checks ``If-Match``/``If-None-Match`` and stores the object as one step.  moto
checks the header, then stores, with nothing in between held: an unconditional PUT from
another client that lands between the two is overwritten by a PUT whose condition no
longer holds -- a lost update S3 itself never makes, which made the two-gateway stress
test (tests/mount/test_two_gateways.py, its outside writer racing a gateway's conditional
upload) fail about one run in twenty.  Here every request that writes or deletes an object
(PUT, copy, POST -- CompleteMultipartUpload --, DELETE) takes one lock for its check and
its store, as S3 behaves.  Reads are not held.  Arguments are moto_server's.

moto 5.2 also ignores some conditions S3 enforces: ``If-Match``/``If-None-Match`` (the
destination's) and ``x-amz-copy-source-if-match`` on CopyObject, and ``If-Match`` on
CompleteMultipartUpload.  They are checked here, under the same lock as the store, so
the S3 remote's conditional copies are tested against a server that enforces them.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any, Callable
from urllib.parse import unquote, urlparse

from moto.s3.exceptions import MissingKey, PreconditionFailed
from moto.s3.responses import S3Response
from moto.server import main

_WRITES = threading.RLock()


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _WRITES:
            return method(*args, **kwargs)

    return locked


def _same(etag: str, header: str) -> bool:
    return etag.strip('"') == header.strip('"')


def _check_destination(response: S3Response, headers: Any, bucket_name: str, key_name: str,
                       upload_id: str | None = None) -> None:
    """S3's checks of ``If-Match``/``If-None-Match`` on the object a request replaces (a
    retried CompleteMultipartUpload of the upload already there is left to moto)."""
    existing = response.backend.get_object(bucket_name, key_name)
    if upload_id is not None and existing is not None and existing.multipart and existing.multipart.id == upload_id:
        return
    if_match, if_none_match = headers.get("If-Match"), headers.get("If-None-Match")
    if if_match and existing is None:
        raise MissingKey(key=key_name)
    if if_match and not _same(existing.etag, if_match):
        raise PreconditionFailed("If-Match")
    if if_none_match == "*" and existing is not None:
        raise PreconditionFailed("If-None-Match")


def _conditional_copy(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def checked(self: S3Response) -> Any:
        pin = self.headers.get("x-amz-copy-source-if-match")
        if pin:
            source = urlparse(self.headers.get("x-amz-copy-source"))
            bucket, key = unquote(source.path).lstrip("/").split("/", 1)
            found = self.backend.get_object(bucket, key)
            if found is not None and not _same(found.etag, pin):
                raise PreconditionFailed("x-amz-copy-source-If-Match")
        _check_destination(self, self.headers, self.bucket_name, self.parse_key_name())
        return method(self)

    return checked


def _conditional_complete(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def checked(self: S3Response, request: Any, body: bytes, bucket_name: str, query: dict[str, Any],
                key_name: str) -> Any:
        if query.get("uploadId"):
            _check_destination(self, request.headers, bucket_name, key_name, query["uploadId"][0])
        return method(self, request, body, bucket_name, query, key_name)

    return checked


S3Response.copy_object = _conditional_copy(S3Response.copy_object)
S3Response._key_response_post = _conditional_complete(S3Response._key_response_post)
for _name in ("put_object", "copy_object", "_key_response_post", "delete_object"):
    setattr(S3Response, _name, _serialised(getattr(S3Response, _name)))

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
