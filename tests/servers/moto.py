"""A real moto S3 server on loopback, with IAM authentication switched on.

moto answers every request unauthenticated by default; that would make "wrong
credentials" untestable.  So after start-up we create one IAM user with an
allow-all policy and an access key (while moto still accepts anything), then
tell moto to authenticate every further request (``/moto-api/reset-auth`` 0).
From then on a wrong access key answers InvalidAccessKeyId and a wrong secret
SignatureDoesNotMatch, as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from tests.servers import S3Server, free_port

_ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not answer within {timeout} s") from None
            time.sleep(0.05)


def _enable_auth(endpoint: str) -> tuple[str, str]:
    """Create an all-powerful IAM user and switch authentication on; return its key."""
    import boto3

    iam = boto3.session.Session().client(
        "iam",
        endpoint_url=endpoint,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        region_name="us-east-1",
    )
    iam.create_user(UserName="cloudgw-test")
    iam.put_user_policy(UserName="cloudgw-test", PolicyName="all", PolicyDocument=_ALLOW_ALL)
    key = iam.create_access_key(UserName="cloudgw-test")["AccessKey"]
    req = urllib.request.Request(
        endpoint + "/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form type would hide the body from moto
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()
    return key["AccessKeyId"], key["SecretAccessKey"]


@contextlib.contextmanager
def start_moto(*, auth: bool = True) -> Iterator[S3Server]:
    """Run ``moto_server`` on a free 127.0.0.1 port; yield how to reach it.

    Its own log goes to a file in a temp dir (shown if it fails to start).
    """
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="cloudgw-moto-") as tmp:
        log_path = Path(tmp) / "moto.log"
        env = dict(os.environ)
        for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            env.pop(var, None)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # (tests.servers.moto_atomic)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                # moto_server, with S3's atomic conditional writes (see moto_atomic)
                [sys.executable, "-m", "tests.servers.moto_atomic", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
            )
        try:
            _wait_until_up(endpoint, proc, log_path)
            if auth:
                access_key, secret_key = _enable_auth(endpoint)
            else:
                access_key, secret_key = "testing", "testing"
            yield S3Server(name="moto", endpoint_url=endpoint, access_key=access_key, secret_key=secret_key)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
