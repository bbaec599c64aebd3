"""Smoke test: the real OpenStack Swift + s3api server that tests start
(tests/servers/swift.py) answers the S3 calls cloudgw relies on."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from tests.servers import S3Server
from tests.servers.swift import start_swift

pytestmark = pytest.mark.swift

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def swift() -> S3Server:
    with start_swift() as server:
        yield server


@pytest.fixture
def s3(swift: S3Server):
    return swift.client()


def add_content_md5(request, **kwargs) -> None:
    """botocore ``before-sign`` handler: Swift's s3api rejects DeleteObjects
    without Content-MD5, which botocore no longer sends (whatever
    request_checksum_calculation says, it sends x-amz-checksum-crc32, which
    Swift 2.30 ignores)."""
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


@pytest.fixture
def bucket(s3, request) -> str:
    name = "smoke-" + request.node.name.replace("_", "-").lower()[:50]
    s3.create_bucket(Bucket=name)
    return name


def test_server_description(swift: S3Server) -> None:
    assert swift.name == "swift"
    assert swift.endpoint_url.startswith("http://127.0.0.1:")
    assert swift.region == "us-east-1"
    assert swift.env()["AWS_ENDPOINT_URL"] == swift.endpoint_url


def test_bucket_is_listed(s3, bucket: str) -> None:
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names
    s3.head_bucket(Bucket=bucket)


def test_put_get_head_with_metadata(s3, bucket: str) -> None:
    body = b"hello swift\n" * 100
    put = s3.put_object(
        Bucket=bucket,
        Key="dir/hello.txt",
        Body=body,
        Metadata={"mtime": "1700000000.5", "mode": "0644"},
        ContentType="text/plain",
    )
    assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()

    got = s3.get_object(Bucket=bucket, Key="dir/hello.txt")
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"]
    assert got["Metadata"] == {"mtime": "1700000000.5", "mode": "0644"}
    assert got["ContentType"] == "text/plain"

    head = s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]
    assert head["Metadata"] == {"mtime": "1700000000.5", "mode": "0644"}
    assert head["LastModified"].tzinfo is not None

    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key="dir/missing.txt")
    assert e.value.response["Error"]["Code"] == "404"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="dir/missing.txt")


def test_ranged_get(s3, bucket: str) -> None:
    body = bytes(range(256)) * 64  # 16 KiB
    s3.put_object(Bucket=bucket, Key="blob", Body=body)

    part = s3.get_object(Bucket=bucket, Key="blob", Range="bytes=100-1123")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 100-1123/{len(body)}"
    assert part["Body"].read() == body[100:1124]

    tail = s3.get_object(Bucket=bucket, Key="blob", Range="bytes=-10")
    assert tail["Body"].read() == body[-10:]
    past_end = s3.get_object(Bucket=bucket, Key="blob", Range="bytes=16000-99999")
    assert past_end["Body"].read() == body[16000:]


def test_list_objects_v2(s3, bucket: str) -> None:
    keys = ["a/1", "a/2", "a/b/3", "c", "d/"]
    for key in keys:
        # "d/" is a zero-byte directory marker, as other S3 tools make them.
        s3.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())

    flat = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in flat["Contents"]] == sorted(keys)
    assert flat["KeyCount"] == len(keys)
    assert not flat["IsTruncated"]
    sizes = {o["Key"]: o["Size"] for o in flat["Contents"]}
    assert sizes == {"a/1": 3, "a/2": 3, "a/b/3": 5, "c": 1, "d/": 0}

    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["c"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "d/"]

    under_a = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="a/")
    assert [o["Key"] for o in under_a["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in under_a["CommonPrefixes"]] == ["a/b/"]

    # Pagination with continuation tokens.
    seen, token = [], None
    while True:
        kwargs = {"Bucket": bucket, "MaxKeys": 2}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(keys)


def test_copy_object(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", Metadata={"k": "v"})
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    dst = s3.get_object(Bucket=bucket, Key="dst")
    assert dst["Body"].read() == b"payload"
    assert dst["Metadata"] == {"k": "v"}  # MetadataDirective COPY is the default

    s3.copy_object(
        Bucket=bucket,
        Key="dst2",
        CopySource={"Bucket": bucket, "Key": "src"},
        Metadata={"k": "new"},
        MetadataDirective="REPLACE",
    )
    assert s3.head_object(Bucket=bucket, Key="dst2")["Metadata"] == {"k": "new"}


def test_odd_key_names_round_trip(s3, bucket: str) -> None:
    keys = ["sp ace", "plus+sign", "per%cent", "per%20cent", "uni/é中文😀", "a//b", "q?#&", "k" * 1024]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())  # byte order
    with pytest.raises(s3.exceptions.ClientError) as e:  # 1024 bytes, like AWS
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"")
    assert e.value.response["Error"]["Code"] == "KeyTooLongError"


def test_delete_object_and_delete_objects(s3, bucket: str) -> None:
    for key in ("x", "y", "z", "w"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"1")

    s3.delete_object(Bucket=bucket, Key="x")
    s3.delete_object(Bucket=bucket, Key="never-existed")  # S3: 204 either way

    s3.meta.events.register("before-sign.s3.DeleteObjects", add_content_md5)
    res = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "y"}, {"Key": "z"}, {"Key": "nope"}]},
    )
    assert sorted(d["Key"] for d in res["Deleted"]) == ["nope", "y", "z"]
    assert not res.get("Errors")

    left = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in left["Contents"]] == ["w"]


def test_multipart_upload(s3, bucket: str) -> None:
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(2 * MiB)]
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="big", Metadata={"m": "1"})
    upload_id = mpu["UploadId"]

    parts = []
    for number, data in enumerate(parts_data, start=1):
        res = s3.upload_part(
            Bucket=bucket, Key="big", UploadId=upload_id, PartNumber=number, Body=data
        )
        assert res["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
        parts.append({"PartNumber": number, "ETag": res["ETag"]})

    listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=upload_id)
    assert [p["Size"] for p in listed["Parts"]] == [len(d) for d in parts_data]

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    # The S3 multipart ETag: md5 of the concatenated part md5s, "-<count>".
    digests = b"".join(hashlib.md5(d).digest() for d in parts_data)
    expected_etag = '"%s-3"' % hashlib.md5(digests).hexdigest()
    assert done["ETag"] == expected_etag

    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == 12 * MiB
    assert head["ETag"] == expected_etag
    assert head["Metadata"] == {"m": "1"}
    body = s3.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert body == b"".join(parts_data)
    ranged = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={5 * MiB - 3}-{5 * MiB + 2}")
    assert ranged["Body"].read() == body[5 * MiB - 3 : 5 * MiB + 3]


def test_list_and_abort_multipart_uploads(s3, bucket: str) -> None:
    first = s3.create_multipart_upload(Bucket=bucket, Key="pending/one")["UploadId"]
    second = s3.create_multipart_upload(Bucket=bucket, Key="pending/two")["UploadId"]
    s3.upload_part(
        Bucket=bucket, Key="pending/one", UploadId=first, PartNumber=1, Body=b"x" * 1024
    )

    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert sorted((u["Key"], u["UploadId"]) for u in uploads) == [
        ("pending/one", first),
        ("pending/two", second),
    ]

    s3.abort_multipart_upload(Bucket=bucket, Key="pending/one", UploadId=first)
    s3.abort_multipart_upload(Bucket=bucket, Key="pending/two", UploadId=second)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.list_parts(Bucket=bucket, Key="pending/one", UploadId=first)
    # Aborted uploads leave no object behind.
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_known_swift_quirks(s3, bucket: str) -> None:
    """Where Swift's s3api differs from AWS S3 in ways cloudgw must handle."""
    s3.put_object(Bucket=bucket, Key="obj", Body=b"v1")

    # Conditional PutObject is refused outright (even for a new key).
    for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"%s"' % hashlib.md5(b"v1").hexdigest()}):
        with pytest.raises(s3.exceptions.ClientError) as e:
            s3.put_object(Bucket=bucket, Key="obj", Body=b"v2", **condition)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
        assert e.value.response["Error"]["Code"] == "NotImplemented"
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"v1"

    # DeleteObjects wants Content-MD5 (botocore does not send it by itself).
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "obj"}]})
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    assert "Content-MD5" in e.value.response["Error"]["Message"]

    # LastModified has whole seconds, rounded up (it can lie up to 1 s in the
    # future of the PUT); HEAD, GET and LIST agree.
    head = s3.head_object(Bucket=bucket, Key="obj")["LastModified"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="obj")["Contents"][0]["LastModified"]
    assert head == listed and head.microsecond == 0
