"""Vector buckets, indexes, policies, tags and index modes over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from s3vectors_local import limits

ACCOUNT = "123456789012"


def test_bucket_lifecycle(client: Any) -> None:
    arn = client.create_vector_bucket(vectorBucketName="docs-1")["vectorBucketArn"]
    assert arn == f"arn:aws:s3vectors:us-east-1:{ACCOUNT}:bucket/docs-1"
    b = client.get_vector_bucket(vectorBucketName="docs-1")["vectorBucket"]
    assert b["vectorBucketArn"] == arn
    assert b["encryptionConfiguration"] == {"sseType": "AES256"}  # the documented default
    assert b["defaultIndexMode"] == "ENHANCED"  # buckets created after 2026-09-30
    assert client.get_vector_bucket(vectorBucketArn=arn)["vectorBucket"]["vectorBucketName"] == "docs-1"
    with pytest.raises(client.exceptions.ConflictException):
        client.create_vector_bucket(vectorBucketName="docs-1")
    client.delete_vector_bucket(vectorBucketArn=arn)
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_vector_bucket(vectorBucketName="docs-1")
    with pytest.raises(client.exceptions.NotFoundException):
        client.delete_vector_bucket(vectorBucketName="docs-1")


def test_bucket_kms_encryption_rules(client: Any, raw: Any) -> None:
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    client.create_vector_bucket(vectorBucketName="kms-bkt",
                                encryptionConfiguration={"sseType": "aws:kms", "kmsKeyArn": key})
    enc = client.get_vector_bucket(vectorBucketName="kms-bkt")["vectorBucket"]["encryptionConfiguration"]
    assert enc == {"sseType": "aws:kms", "kmsKeyArn": key}
    # kmsKeyArn "is allowed if and only if sseType is set to aws:kms" (model).
    with pytest.raises(client.exceptions.ValidationException):
        client.create_vector_bucket(vectorBucketName="bad-1", encryptionConfiguration={"sseType": "aws:kms"})
    with pytest.raises(client.exceptions.ValidationException):
        client.create_vector_bucket(vectorBucketName="bad-2",
                                    encryptionConfiguration={"sseType": "AES256", "kmsKeyArn": key})
    with pytest.raises(client.exceptions.ValidationException) as e:
        raw.create_vector_bucket(vectorBucketName="bad-3",
                                 encryptionConfiguration={"sseType": "aws:kms", "kmsKeyArn": "not-an-arn"})
    assert e.value.response["fieldList"][0]["path"] == "/encryptionConfiguration/kmsKeyArn"
    # An index inherits its bucket's encryption unless it sets its own.
    client.create_index(vectorBucketName="kms-bkt", indexName="inherits", dataType="float32", dimension=2,
                        distanceMetric="cosine")
    idx = client.get_index(vectorBucketName="kms-bkt", indexName="inherits")["index"]
    assert idx["encryptionConfiguration"] == enc


def test_list_buckets_paginates_with_prefix(client: Any) -> None:
    names = [f"a-{i:02d}" for i in range(7)] + ["b-00", "b-01"]
    for n in names:
        client.create_vector_bucket(vectorBucketName=n)
    pages = list(client.get_paginator("list_vector_buckets").paginate(prefix="a-", PaginationConfig={"PageSize": 3}))
    assert [len(p["vectorBuckets"]) for p in pages] == [3, 3, 1]
    got = [b["vectorBucketName"] for p in pages for b in p["vectorBuckets"]]
    assert got == names[:7]
    everything = client.list_vector_buckets()["vectorBuckets"]
    assert [b["vectorBucketName"] for b in everything] == sorted(names)
    token = client.list_vector_buckets(prefix="a-", maxResults=2)["nextToken"]
    with pytest.raises(client.exceptions.ValidationException):  # a token belongs to its request
        client.list_vector_buckets(prefix="b-", nextToken=token)
    with pytest.raises(client.exceptions.ValidationException):
        client.list_vector_buckets(nextToken="garbage!")


def test_index_lifecycle(client: Any, make_index: Any) -> None:
    names = make_index("my.index-1", dimension=384, metric="euclidean", non_filterable=["text", "source"])
    idx = client.get_index(**names)["index"]
    assert idx["indexArn"] == f"arn:aws:s3vectors:us-east-1:{ACCOUNT}:bucket/bkt/index/my.index-1"
    assert (idx["dimension"], idx["distanceMetric"], idx["dataType"]) == (384, "euclidean", "float32")
    assert idx["metadataConfiguration"]["nonFilterableMetadataKeys"] == ["text", "source"]
    assert idx["indexMode"] == "ENHANCED"
    assert client.get_index(indexArn=idx["indexArn"])["index"]["indexName"] == "my.index-1"
    with pytest.raises(client.exceptions.ConflictException):
        make_index("my.index-1")
    # A bucket with an index cannot be deleted.
    with pytest.raises(client.exceptions.ConflictException):
        client.delete_vector_bucket(vectorBucketName="bkt")
    client.delete_index(indexArn=idx["indexArn"])
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_index(**names)
    with pytest.raises(client.exceptions.NotFoundException):
        client.delete_index(**names)
    client.delete_vector_bucket(vectorBucketName="bkt")


def test_index_in_missing_bucket_and_ambiguous_names(client: Any, make_index: Any) -> None:
    with pytest.raises(client.exceptions.NotFoundException):
        client.create_index(vectorBucketName="nope", indexName="idx", dataType="float32", dimension=2,
                            distanceMetric="cosine")
    names = make_index()
    arn = client.get_index(**names)["index"]["indexArn"]
    with pytest.raises(client.exceptions.ValidationException):
        client.get_index(indexArn=arn, **names)
    with pytest.raises(client.exceptions.ValidationException):
        client.get_index(vectorBucketName="bkt")
    # An ARN of another account or Region names nothing here.
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_index(indexArn=arn.replace(ACCOUNT, "210987654321"))


def test_list_indexes_paginates_with_prefix(client: Any, make_index: Any) -> None:
    for i in range(5):
        make_index(f"docs-{i}")
    make_index("other")
    pages = list(client.get_paginator("list_indexes").paginate(vectorBucketName="bkt", prefix="docs-",
                                                                PaginationConfig={"PageSize": 2}))
    got = [i["indexName"] for p in pages for i in p["indexes"]]
    assert got == [f"docs-{i}" for i in range(5)]
    assert len(pages) == 3
    assert {i["indexName"] for i in client.list_indexes(vectorBucketName="bkt")["indexes"]} == {*got, "other"}
    with pytest.raises(client.exceptions.NotFoundException):
        client.list_indexes(vectorBucketName="missing")


def test_bucket_policy(client: Any, raw: Any) -> None:
    client.create_vector_bucket(vectorBucketName="pol")
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_vector_bucket_policy(vectorBucketName="pol")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
                                                                 "Action": "s3vectors:*", "Resource": "*"}]})
    client.put_vector_bucket_policy(vectorBucketName="pol", policy=policy)
    assert json.loads(client.get_vector_bucket_policy(vectorBucketName="pol")["policy"]) == json.loads(policy)
    with pytest.raises(client.exceptions.ValidationException):
        client.put_vector_bucket_policy(vectorBucketName="pol", policy="{not json")
    client.delete_vector_bucket_policy(vectorBucketName="pol")
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_vector_bucket_policy(vectorBucketName="pol")
    with pytest.raises(client.exceptions.NotFoundException):
        client.put_vector_bucket_policy(vectorBucketName="missing", policy=policy)


def test_tags(client: Any, make_index: Any, raw: Any) -> None:
    client.create_vector_bucket(vectorBucketName="tagged", tags={"team": "search", "env": "dev"})
    bucket_arn = client.get_vector_bucket(vectorBucketName="tagged")["vectorBucket"]["vectorBucketArn"]
    assert client.list_tags_for_resource(resourceArn=bucket_arn)["tags"] == {"team": "search", "env": "dev"}
    names = make_index()
    index_arn = client.get_index(**names)["index"]["indexArn"]
    assert client.list_tags_for_resource(resourceArn=index_arn)["tags"] == {}
    client.tag_resource(resourceArn=index_arn, tags={"a": "1", "b": "2", "c": "3"})
    client.tag_resource(resourceArn=index_arn, tags={"a": "one"})
    client.untag_resource(resourceArn=index_arn, tagKeys=["b", "c"])
    assert client.list_tags_for_resource(resourceArn=index_arn)["tags"] == {"a": "one"}
    # Up to 50 tags per resource (model TagResource documentation).
    client.tag_resource(resourceArn=index_arn, tags={f"k{i}": "v" for i in range(49)})
    with pytest.raises(client.exceptions.ValidationException):
        client.tag_resource(resourceArn=index_arn, tags={"one-too-many": "v"})
    with pytest.raises(client.exceptions.NotFoundException):
        client.list_tags_for_resource(resourceArn=index_arn.replace("/index/idx", "/index/gone"))
    # Tag keys follow the model's pattern (\p{L}\p{Z}\p{N}_.:/=+-@).
    with pytest.raises(client.exceptions.ValidationException) as e:
        raw.tag_resource(resourceArn=bucket_arn, tags={"bad#key": "v"})
    assert e.value.response["fieldList"][0]["path"] == "/tags/bad#key"
    client.tag_resource(resourceArn=bucket_arn, tags={"Ünïcode key 1": "välue"})


def test_index_modes(client: Any, make_index: Any) -> None:
    names = make_index()
    client.update_index_mode(**names, indexMode="ENHANCED")
    # CLASSIC only for buckets created before September 30, 2026 (model UpdateIndexMode documentation).
    with pytest.raises(client.exceptions.ValidationException):
        client.update_index_mode(**names, indexMode="CLASSIC")
    with pytest.raises(client.exceptions.ValidationException):
        client.put_vector_bucket_default_index_mode(vectorBucketName="bkt", defaultIndexMode="CLASSIC")
    client.put_vector_bucket_default_index_mode(vectorBucketName="bkt", defaultIndexMode="ENHANCED")
    with pytest.raises(client.exceptions.NotFoundException):
        client.update_index_mode(vectorBucketName="bkt", indexName="gone", indexMode="ENHANCED")


def test_classic_mode_in_an_old_bucket(tmp_path: Any) -> None:
    from s3vectors_local import LocalEndpoint

    before = limits.ENHANCED_DEFAULT_SINCE.timestamp() - 86400
    with LocalEndpoint(data_dir=tmp_path, service_options={"clock": lambda: before}) as ep:
        c = ep.client(max_attempts=1)
        c.create_vector_bucket(vectorBucketName="old")
        assert c.get_vector_bucket(vectorBucketName="old")["vectorBucket"]["defaultIndexMode"] == "CLASSIC"
        c.create_index(vectorBucketName="old", indexName="idx", dataType="float32", dimension=2,
                       distanceMetric="cosine")
        names = {"vectorBucketName": "old", "indexName": "idx"}
        assert c.get_index(**names)["index"]["indexMode"] == "CLASSIC"
        c.put_vectors(**names, vectors=[{"key": "a", "data": {"float32": [1, 0]}, "metadata": {"t": "abc"}}])
        q = {"topK": 1, "queryVector": {"float32": [1, 0]}}
        # $startsWith needs ENHANCED; a CLASSIC index can run one query in ENHANCED mode.
        with pytest.raises(c.exceptions.ValidationException):
            c.query_vectors(**names, **q, filter={"t": {"$startsWith": "ab"}})
        got = c.query_vectors(**names, **q, filter={"t": {"$startsWith": "ab"}}, queryMode="ENHANCED")
        assert [v["key"] for v in got["vectors"]] == ["a"]
        c.update_index_mode(**names, indexMode="ENHANCED")
        with pytest.raises(c.exceptions.ValidationException):  # CLASSIC can't be asked of an ENHANCED index
            c.query_vectors(**names, **q, queryMode="CLASSIC")
        c.update_index_mode(**names, indexMode="CLASSIC")


def test_update_metadata_configuration(client: Any, make_index: Any) -> None:
    names = make_index()
    arn = client.update_metadata_configuration(
        **names, add={"textSearchConfigurations": [{"metadataKey": "body", "language": "en"}]}
    )["indexArn"]
    assert arn.endswith("/index/idx")
    cfg = client.get_index(**names)["index"]["metadataConfiguration"]["textSearchConfigurations"]
    assert cfg == [{"metadataKey": "body", "language": "en", "status": "ACTIVE"}]
    with pytest.raises(client.exceptions.ConflictException):
        client.update_metadata_configuration(**names, add={"textSearchConfigurations": [{"metadataKey": "body"}]})
    with pytest.raises(client.exceptions.ValidationException):  # add or delete, not both
        client.update_metadata_configuration(**names, add={"textSearchConfigurations": [{"metadataKey": "x"}]},
                                             delete={"textSearchConfigurations": [{"metadataKey": "body"}]})
    client.update_metadata_configuration(**names, delete={"textSearchConfigurations": [{"metadataKey": "body"}]})
    assert "metadataConfiguration" not in client.get_index(**names)["index"]
    with pytest.raises(client.exceptions.NotFoundException):
        client.update_metadata_configuration(**names, delete={"textSearchConfigurations": [{"metadataKey": "x"}]})


def test_quotas(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # 10,000 buckets per Region and 10,000 indexes per bucket (limits page); lowered here to test the answer.
    monkeypatch.setattr(limits, "MAX_BUCKETS", 2)
    monkeypatch.setattr(limits, "MAX_INDEXES_PER_BUCKET", 1)
    client.create_vector_bucket(vectorBucketName="q-1")
    client.create_vector_bucket(vectorBucketName="q-2")
    with pytest.raises(client.exceptions.ServiceQuotaExceededException):
        client.create_vector_bucket(vectorBucketName="q-3")
    kw = {"vectorBucketName": "q-1", "dataType": "float32", "dimension": 2, "distanceMetric": "cosine"}
    client.create_index(indexName="i-1", **kw)
    with pytest.raises(client.exceptions.ServiceQuotaExceededException):
        client.create_index(indexName="i-2", **kw)
