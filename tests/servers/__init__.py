"""Real servers the tests start on 127.0.0.1 (no mocks): each ``start_*`` is a
context manager yielding an ``S3Server`` and stops the server on exit."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class S3Server:
    """How to reach a running S3-compatible server."""

    name: str  # "moto" or "swift"
    endpoint_url: str  # e.g. http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """Environment for a cloudgw subprocess (boto3's standard chain)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self):  # -> botocore S3 client
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
