"""The S3 client cloudgw builds (``s3_bucket._new_session``, its faster data loader)
talks to exactly the endpoint, region and signing scope stock botocore would.

No request leaves the process: each one is stopped at botocore's ``before-send``
hook, after it was built and signed, and its URL and credential scope compared.
"""

from __future__ import annotations

import collections
import re

import botocore.loaders
import pytest

from cloudgw.remotes import s3_bucket
from cloudgw.remotes.s3_bucket import S3Bucket

CASES = [  # (region, endpoint_url, path_style)
    ("us-east-1", None, None),
    ("eu-central-1", None, None),
    ("eu-central-1", None, True),
    ("cn-north-1", None, None),  # another partition (aws-cn), other DNS suffix
    ("us-gov-west-1", None, None),  # aws-us-gov
    ("ap-southeast-3", None, None),  # a region that needs opting in
    ("us-east-1", "http://127.0.0.1:9000", None),  # MinIO, moto: a custom endpoint, path style
    ("garage", "https://s3.example.net", None),  # a region name no partition knows
]


class _Stop(Exception):
    pass


def _first_request(client) -> tuple[str, str]:  # noqa: ANN001 (a botocore client)
    """The URL and credential scope of a HeadBucket, as signed and about to be sent."""
    seen: list[tuple[str, str]] = []

    def capture(request, **_kwargs) -> None:  # noqa: ANN001
        auth = request.headers["Authorization"].decode()
        scope = re.search(r"Credential=[^/]+/\d+/([^,]+),", auth).group(1)
        seen.append((request.url, scope))
        raise _Stop

    client.meta.events.register("before-send.s3.HeadBucket", capture)
    with pytest.raises(_Stop):
        client.head_bucket(Bucket="some-bucket")
    return seen[0]


def _client(region: str, endpoint_url: str | None, path_style: bool | None):  # noqa: ANN202
    return S3Bucket("some-bucket", endpoint_url=endpoint_url, region=region, path_style=path_style,
                    access_key="AKIDEXAMPLE", secret_key="secret", profile=None, conditional_writes=None,
                    part_size=8 << 20, parallelism=1, max_threads=1, retry_deadline=1.0, connect_timeout=1.0,
                    read_timeout=1.0).client


@pytest.mark.parametrize("region,endpoint_url,path_style", CASES)
def test_requests_go_where_stock_botocore_sends_them(region: str, endpoint_url: str | None,
                                                      path_style: bool | None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ours = _client(region, endpoint_url, path_style)
    monkeypatch.setattr(s3_bucket, "_loader", botocore.loaders.Loader())  # the same client, botocore's loader
    stock = _client(region, endpoint_url, path_style)
    assert (ours.meta.endpoint_url, ours.meta.region_name) == (stock.meta.endpoint_url, stock.meta.region_name)
    assert _first_request(ours) == _first_request(stock)


def test_the_endpoint_table_loads_whole_and_undecorated() -> None:
    fast = s3_bucket._Loader().load_data("endpoints")
    stock = botocore.loaders.Loader().load_data("endpoints")
    assert type(fast) is dict and type(fast["partitions"][0]["services"]) is dict  # the plain decoder
    assert fast == stock  # the same table, key for key (OrderedDict == dict compares contents)
    assert [p["partition"] for p in fast["partitions"]] == [p["partition"] for p in stock["partitions"]]
    # the service models keep botocore's decoding
    assert isinstance(s3_bucket._Loader().load_service_model("s3", "service-2"), collections.OrderedDict)
