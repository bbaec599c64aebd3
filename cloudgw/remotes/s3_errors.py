"""botocore exceptions -> cloudgw.errors, and ``check()``'s one-line user errors.

Mapping (the ``code`` attribute of the raised error keeps the S3 error code):

    412 / PreconditionFailed                          -> PreconditionFailed
    NoSuchBucket                                      -> RemoteError (EIO): a
        vanished bucket must not look like "every file was deleted"
    404 / NoSuchKey / NoSuchUpload                    -> RemoteNotFound
    403 / AccessDenied / InvalidAccessKeyId /
        SignatureDoesNotMatch, missing credentials    -> RemotePermissionDenied
    501 / NotImplemented                              -> RemoteUnsupported
    5xx, 408, 429, SlowDown, RequestTimeout, throttling,
        409 ConditionalRequestConflict, connection
        refused/reset/closed, timeouts                -> TransientRemoteError (retried)
    anything else                                     -> RemoteError
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from cloudgw.errors import (
    PreconditionFailed,
    RemoteError,
    RemoteNotFound,
    RemotePermissionDenied,
    RemoteUnsupported,
    TransientRemoteError,
    UserError,
)

_NOT_FOUND = {"NoSuchKey", "NoSuchUpload", "NotFound", "NoSuchVersion", "404"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "InvalidToken",
    "ExpiredToken",
    "AccountProblem",
    "403",
}
_TRANSIENT = {
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "TooManyRequests",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalError",
    "OperationAborted",
    "ConditionalRequestConflict",  # AWS: a concurrent conditional write; retry
}


def client_error_code(exc: ClientError) -> tuple[str, int]:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return str(exc.response.get("Error", {}).get("Code") or status), status


def _retry_after(exc: ClientError) -> float | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return max(0.0, float(headers["retry-after"]))
    except (KeyError, ValueError, TypeError):
        return None  # absent, or an HTTP date (rare for S3): use our own backoff


def map_boto_error(exc: BotoCoreError | ClientError, what: str) -> RemoteError:
    """The cloudgw error for a botocore exception raised while doing ``what``."""
    err: RemoteError
    if isinstance(exc, ClientError):
        code, status = client_error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or ""
        msg = f"{what}: {code} {message}".strip() if code != str(status) else f"{what}: HTTP {status}"
        if code == "PreconditionFailed" or status == 412:
            err = PreconditionFailed(msg)
        elif code == "NoSuchBucket":
            err = RemoteError(f"{what}: the bucket does not exist (any more)")
        elif code in _NOT_FOUND or status == 404:
            err = RemoteNotFound(msg)
        elif code in _DENIED or status == 403:
            err = RemotePermissionDenied(msg)
        elif code == "NotImplemented" or status == 501:
            err = RemoteUnsupported(msg)
        elif code in _TRANSIENT or status >= 500 or status in (408, 429):
            err = TransientRemoteError(msg, retry_after=_retry_after(exc))
        else:
            err = RemoteError(msg)
        err.code = code  # type: ignore[attr-defined]
        return err
    if isinstance(exc, SSLError):
        err = RemoteError(f"{what}: TLS error: {exc}")
    elif isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        err = TransientRemoteError(f"{what}: {exc}")
    elif isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        err = RemotePermissionDenied(f"{what}: {exc}")
    else:
        err = RemoteError(f"{what}: {exc}")
    err.code = type(exc).__name__  # type: ignore[attr-defined]
    return err


CREDENTIALS_HINT = "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or configure ~/.aws/credentials"


def check_error(exc: Exception, *, bucket: str, endpoint: str, region: str | None,
                access_key: str | None, detail_code: str | None = None) -> UserError:
    """One line that says what is wrong with the S3 remote and how to fix it.

    ``detail_code`` is the error code of a follow-up request (HEAD answers 403
    without a body, so the caller asks once more to tell a wrong key id from a
    wrong secret from a missing permission).  Never mentions the secret key.
    """
    where = f"S3 bucket '{bucket}' at {endpoint}"
    key = f"access key '{access_key}'" if access_key else "the configured credentials"
    if isinstance(exc, ClientError):
        code, status = client_error_code(exc)
        code = detail_code or code
        if code == "NoSuchBucket" or status == 404:
            return UserError(f"{where} does not exist: create it or fix the bucket name in the URL")
        if code == "InvalidAccessKeyId":
            return UserError(f"{where}: {key} is not known to the server: {CREDENTIALS_HINT}")
        if code == "SignatureDoesNotMatch":
            return UserError(f"{where}: the server rejected the signature of {key} (wrong secret key, or a key"
                             f" the server does not know): {CREDENTIALS_HINT}")
        if status == 403 or code in _DENIED:
            return UserError(
                f"{where}: access denied for {key}: fix the credentials or grant s3:ListBucket,"
                " s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket"
            )
        if status == 301 or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            real = headers.get("x-amz-bucket-region")
            if real:
                return UserError(f"{where} is in region {real}, not {region}: set --region {real} or AWS_DEFAULT_REGION={real}")
            return UserError(f"{where}: wrong region {region}: set the bucket's region with --region or AWS_DEFAULT_REGION")
        return UserError(f"{where} is not usable: HTTP {status} {code}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return UserError(f"no usable S3 credentials for {where}: {CREDENTIALS_HINT}")
    if isinstance(exc, SSLError):
        return UserError(f"TLS handshake with {endpoint} failed: check the endpoint URL and its certificate")
    if isinstance(exc, (BotoConnectionError, ConnectTimeoutError)):
        return UserError(
            f"cannot reach S3 endpoint {endpoint}: check the URL (--endpoint-url or AWS_ENDPOINT_URL)"
            " and that the server is up"
        )
    if isinstance(exc, ReadTimeoutError):
        return UserError(f"S3 endpoint {endpoint} does not answer: check that the server is healthy")
    return UserError(f"{where} is not usable: {' '.join(str(exc).split())}")
