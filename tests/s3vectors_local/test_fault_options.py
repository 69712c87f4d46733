"""The fault injector's options used by the reliability tests: which statuses, lost responses, latency spikes."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from s3vectors_local import LocalEndpoint
from s3vectors_local.faults import FaultInjector


def test_codes_are_restricted_and_counted() -> None:
    f = FaultInjector(0.5, seed=1, codes=(429,))
    raised = 0
    for _ in range(200):
        try:
            f.before("PutVectors")
        except Exception as e:
            assert e.status == 429  # type: ignore[attr-defined]
            raised += 1
    assert raised == f.total() == f.injected[("PutVectors", 429, "before")] > 50


def test_bad_options_are_refused() -> None:
    for kwargs in ({"codes": (404,)}, {"codes": ()}, {"after_rate": 2.0}, {"spike_rate": -1.0}):
        with pytest.raises(ValueError):
            FaultInjector(0.1, **kwargs)


def test_a_lost_response_was_applied(tmp_path: Path) -> None:
    """after_rate=1: every write runs and commits, then the client is told 503."""
    with LocalEndpoint(tmp_path) as ep:
        c = ep.client(max_attempts=1)
        c.create_vector_bucket(vectorBucketName="bkt")
        c.create_index(
            vectorBucketName="bkt", indexName="idx", dataType="float32", dimension=1, distanceMetric="euclidean"
        )
        ep.server.app.faults = FaultInjector(0.0, after_rate=1.0)
        with pytest.raises(ClientError) as e:
            c.put_vectors(vectorBucketName="bkt", indexName="idx", vectors=[{"key": "k", "data": {"float32": [1.0]}}])
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        ep.server.app.faults = None
        assert [v["key"] for v in c.list_vectors(vectorBucketName="bkt", indexName="idx")["vectors"]] == ["k"]


def test_latency_spikes(tmp_path: Path) -> None:
    f = FaultInjector(0.0, seed=3, spike_rate=0.5, spike_ms=1)
    for _ in range(100):
        f.before()
    assert 25 < f.spikes < 75 and f.total() == 0
