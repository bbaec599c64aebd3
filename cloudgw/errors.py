"""The whole cloudgw exception tree, in one place.

    CloudgwError
    ├── UserError            bad config/input: printed as one line, exit code 2
    ├── SourceChanged        an upload's source file changed while it was read
    └── RemoteError          a remote call failed; ``errno`` says what the FUSE
        │                    layer answers the kernel with
        ├── RemoteNotFound          ENOENT
        ├── RemoteExists            EEXIST
        ├── RemoteNotEmpty          ENOTEMPTY
        ├── RemotePermissionDenied  EACCES (bad credentials, forbidden)
        ├── RemoteUnsupported       EOPNOTSUPP (the remote cannot do this)
        ├── RemoteNameInvalid       EINVAL: a name the remote cannot hold, even mapped
        ├── RemoteNameTooLong       ENAMETOOLONG: a name or path too long for the remote
        │                           (both raised at create/rename time, never by uploads)
        ├── PreconditionFailed      the remote revision is not the one expected
        │                           (someone else changed it): a conflict
        ├── CursorExpired           a change feed no longer knows our cursor:
        │                           list everything again (never seen by FUSE)
        ├── IntegrityError          EIO: stored bytes fail authentication (tampered,
        │                           truncated, swapped, or not ours): never retried,
        │                           never cached, never returned as data
        └── TransientRemoteError    timeouts, 5xx, throttling: worth retrying;
            └── RemoteUnavailable   retries exhausted / remote down (EIO)
                └── LoginRequired   the cloud's sign-in is gone (revoked or expired refresh
                                    token): EACCES until ``cloudgw login``; uploads wait

Lower layers raise these; only ``cloudgw.fuse`` turns them into FUSE errors.
"""

from __future__ import annotations

import errno as _errno


class CloudgwError(Exception):
    """Base of every error cloudgw raises on purpose."""


class UserError(CloudgwError):
    """Bad configuration or input; the message is one line that says how to fix it."""


class SourceChanged(CloudgwError):
    """The local file changed while it was being uploaded; the upload is abandoned."""


class RemoteError(CloudgwError):
    """A remote operation failed."""

    errno: int = _errno.EIO


class RemoteNotFound(RemoteError):
    errno = _errno.ENOENT


class RemoteExists(RemoteError):
    errno = _errno.EEXIST


class RemoteNotEmpty(RemoteError):
    errno = _errno.ENOTEMPTY


class RemotePermissionDenied(RemoteError):
    errno = _errno.EACCES


class RemoteUnsupported(RemoteError):
    errno = _errno.EOPNOTSUPP


class RemoteNameInvalid(RemoteError):
    """The remote cannot hold this name even mapped (``cloudgw.remotes.names``)."""

    errno = _errno.EINVAL


class RemoteNameTooLong(RemoteError):
    """The name or path, as the remote would store it, exceeds the remote's limits."""

    errno = _errno.ENAMETOOLONG


class PreconditionFailed(RemoteError):
    """The object at the path is not at the revision the caller expected."""

    errno = _errno.EIO


class CursorExpired(RemoteError):
    """A change feed's cursor is too old (Graph 410 Gone, Drive invalid page token)."""


class IntegrityError(RemoteError):
    """Encrypted content that does not authenticate; the message names the object."""

    errno = _errno.EIO


class TransientRemoteError(RemoteError):
    """A failure that may go away when retried (timeout, 5xx, 429/SlowDown)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RemoteUnavailable(TransientRemoteError):
    """Retries were exhausted: the remote is down or unreachable right now."""


class LoginRequired(RemoteUnavailable):
    """The remote's sign-in no longer works (refresh token revoked or expired, never signed
    in): nothing is retried until someone runs ``cloudgw login`` again."""

    errno = _errno.EACCES
