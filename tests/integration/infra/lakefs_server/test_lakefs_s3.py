"""The S3 block store (against moto): full round trip, with the bytes really in the bucket."""

from __future__ import annotations

import os
import uuid

import lakefs
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.s3, pytest.mark.timeout(120)]

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_server(own_server, s3_endpoint, monkeypatch):
    import boto3

    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    bucket = f"lakefs-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    server = own_server(
        env={
            **AWS_ENV,
            "LOCKGATE_EMBEDDED_LAKEFS_BLOCK_STORE": "s3",
            "LOCKGATE_EMBEDDED_LAKEFS_S3_BUCKET": bucket,
            "LOCKGATE_EMBEDDED_LAKEFS_S3_PREFIX": "lakefs",
            "LOCKGATE_EMBEDDED_LAKEFS_S3_ENDPOINT_URL": s3_endpoint,
            "LOCKGATE_EMBEDDED_LAKEFS_S3_REGION": "us-east-1",
        }
    )
    return server, s3, bucket


def _bucket_bytes(s3, bucket: str, prefix: str) -> list[bytes]:
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found.append(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    return found


def test_s3_block_store_round_trip(s3_server, lk):
    server, s3, bucket = s3_server
    client = server.client()
    assert client.storage_config.blockstore_type == "s3"

    name = lk.new_name()
    namespace = f"s3://{bucket}/repos/{name}"
    repo = lakefs.Repository(name, client=client).create(storage_namespace=namespace)
    main = repo.branch("main")

    raw = os.urandom(5000)
    signed = os.urandom(3000)
    main.object("data/raw.bin").upload(raw, pre_sign=False, metadata={"via": "raw"})
    main.object("data/signed.bin").upload(signed, pre_sign=True)
    assert lk.read(main, "data/raw.bin") == raw
    assert lk.read(main, "data/signed.bin") == signed
    with main.object("data/raw.bin").reader(pre_sign=False) as reader:
        reader.seek(100)
        assert reader.read(50) == raw[100:150]
    stats = main.object("data/raw.bin").stat()
    assert stats.physical_address.startswith(f"s3://{bucket}/")
    assert stats.metadata == {"via": "raw"}

    first = main.commit(message="s3 commit").get_commit().id
    feature = repo.branch("feature").create(main)
    feature_bytes = os.urandom(2000)
    lk.put(feature, "data/feature.bin", feature_bytes)
    feature.commit(message="feature on s3")
    merge_id = feature.merge_into(main)
    assert repo.commit(merge_id).get_commit().parents[0] == first
    assert lk.read(main, "data/feature.bin") == feature_bytes
    assert lk.read(repo.commit(first), "data/raw.bin") == raw

    # Presigned download works too.
    import urllib3

    url = main.object("data/signed.bin").stat(pre_sign=True).physical_address
    assert urllib3.PoolManager(retries=False).request("GET", url).data == signed

    # The bytes really are in the bucket.
    stored = _bucket_bytes(s3, bucket, f"repos/{name}/")
    for data in (raw, signed, feature_bytes):
        assert data in stored
