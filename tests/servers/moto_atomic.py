"""``moto_server`` with S3's atomic conditional writes (``python -m tests.servers.moto_atomic``).

Real S3 checks ``If-Match``/``If-None-Match`` and stores the object as one step.  moto
checks the header, then stores, with nothing in between held: an unconditional PUT from
another client that lands between the two is overwritten by a PUT whose condition no
longer holds -- a lost update S3 itself never makes, which made the two-gateway stress
test (tests/mount/test_two_gateways.py, its outside writer racing a gateway's conditional
upload) fail about one run in twenty.  Here every request that writes or deletes an object
(PUT, copy, POST -- CompleteMultipartUpload --, DELETE) takes one lock for its check and
its store, as S3 behaves.  Reads are not held.  Arguments are moto_server's.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any, Callable

from moto.s3.responses import S3Response
from moto.server import main

_WRITES = threading.RLock()


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _WRITES:
            return method(*args, **kwargs)

    return locked


for _name in ("put_object", "copy_object", "_key_response_post", "delete_object"):
    setattr(S3Response, _name, _serialised(getattr(S3Response, _name)))

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
