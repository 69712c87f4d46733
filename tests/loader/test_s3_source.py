"""Documents streamed from an S3 prefix (moto's in-process S3; never real AWS)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from loader.documents import DocumentError
from loader.errors import UsageError
from loader.records import Document, Skipped
from loader.s3_source import parse_s3_uri, read_s3_documents
from loader.sharding import Shard

OBJECTS = {
    "corpus/travel/pets.md": b"---\ntitle: Pets\ncategory: pets\n---\n# Pets\n\nCats travel in the cabin.\n",
    "corpus/baggage/fees.txt": b"Baggage fees\n\nA second bag costs 60 EUR.\n",
    "corpus/empty.md": b"",
    "corpus/image.png": b"\x89PNG\r\n",
    "corpus/.hidden.md": b"# hidden\n\ntext\n",
    "corpus/folder/": b"",
    "corpus-old/stale.md": b"# not under the prefix\n\ntext\n",
}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="docs")
        for key, body in OBJECTS.items():
            client.put_object(Bucket="docs", Key=key, Body=body)
        yield client


def test_parse_s3_uri() -> None:
    location = parse_s3_uri("s3://docs/corpus")
    assert (location.bucket, location.prefix) == ("docs", "corpus/")
    assert parse_s3_uri("s3://docs").prefix == ""
    assert str(parse_s3_uri("s3://docs/a/b/")) == "s3://docs/a/b/"
    with pytest.raises(UsageError):
        parse_s3_uri("s3:///nobucket")


def test_reads_the_prefix_like_a_folder(s3: Any) -> None:
    results = list(read_s3_documents(parse_s3_uri("s3://docs/corpus/"), s3))
    by_source = {r.source if isinstance(r, Document) else r.path: r for r in results}
    assert sorted(by_source) == ["baggage/fees.txt", "empty.md", "image.png", "travel/pets.md"]
    pets = by_source["travel/pets.md"]
    assert isinstance(pets, Document) and pets.title == "Pets" and pets.fields["category"] == "pets"
    assert isinstance(by_source["baggage/fees.txt"], Document)
    assert isinstance(by_source["empty.md"], Skipped) and by_source["empty.md"].reason == "empty"
    assert isinstance(by_source["image.png"], Skipped) and by_source["image.png"].reason == "unsupported type"


def test_strict_mode_stops_at_the_first_bad_object(s3: Any) -> None:
    with pytest.raises(DocumentError):
        list(read_s3_documents(parse_s3_uri("s3://docs/corpus/"), s3, strict=True))


def test_shards_split_the_objects_and_skip_others_downloads(s3: Any) -> None:
    location = parse_s3_uri("s3://docs/corpus/")
    everything = {r.source if isinstance(r, Document) else r.path for r in read_s3_documents(location, s3)}
    parts = [
        {r.source if isinstance(r, Document) else r.path for r in read_s3_documents(location, s3, shard=Shard(i, 3))}
        for i in range(3)
    ]
    assert set().union(*parts) == everything
    assert sum(len(p) for p in parts) == len(everything)
