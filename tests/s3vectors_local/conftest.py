"""Fixtures for the local S3 Vectors endpoint tests: every call goes over real HTTP through boto3."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s3vectors_local import LocalEndpoint
from s3vectors_local.pytest_plugin import s3vectors_endpoint  # noqa: F401 - the fixture under test too


@pytest.fixture
def ep(tmp_path: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(data_dir=tmp_path / "data") as endpoint:
        yield endpoint


@pytest.fixture
def client(ep: LocalEndpoint) -> Any:
    return ep.client(max_attempts=1)


@pytest.fixture
def raw(ep: LocalEndpoint) -> Any:
    """A client that skips botocore's own checks, so the server's validation is what answers."""
    return ep.client(max_attempts=1, parameter_validation=False)


@pytest.fixture
def make_index(client: Any) -> Callable[..., dict[str, str]]:
    """Create a bucket (once) and an index; return the names to pass to vector calls."""
    made: set[str] = set()

    def make(name: str = "idx", *, bucket: str = "bkt", dimension: int = 3, metric: str = "cosine",
             non_filterable: list[str] | None = None) -> dict[str, str]:
        if bucket not in made:
            client.create_vector_bucket(vectorBucketName=bucket)
            made.add(bucket)
        kwargs: dict[str, Any] = {}
        if non_filterable:
            kwargs["metadataConfiguration"] = {"nonFilterableMetadataKeys": non_filterable}
        client.create_index(vectorBucketName=bucket, indexName=name, dataType="float32", dimension=dimension,
                            distanceMetric=metric, **kwargs)
        return {"vectorBucketName": bucket, "indexName": name}

    return make
