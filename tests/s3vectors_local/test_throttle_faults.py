"""Opt-in throttling at AWS's per-index write rates and opt-in fault injection."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from s3vectors_local import LocalEndpoint, limits
from s3vectors_local.errors import ThrottledError
from s3vectors_local.faults import WriteThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_buckets_at_aws_rates() -> None:
    clock = FakeClock()
    t = WriteThrottle(clock=clock)
    assert (t.requests_per_s, t.vectors_per_s) == (limits.WRITE_REQUESTS_PER_S, limits.WRITE_VECTORS_PER_S)
    for _ in range(5):
        t.take("b/i", 500)  # 2,500 vectors: one second's worth
    with pytest.raises(ThrottledError):
        t.take("b/i", 1)
    t.take("b/other", 500)  # buckets are per index
    clock.now += 0.2  # refills 500 vectors
    t.take("b/i", 500)
    with pytest.raises(ThrottledError):
        t.take("b/i", 1)
    clock.now += 10
    for _ in range(1000):  # 1,000 requests/s, whatever their size
        t.take("b/j", 1)
    with pytest.raises(ThrottledError):
        t.take("b/j", 1)


def test_throttling_over_http(tmp_path: Path) -> None:
    with LocalEndpoint(data_dir=tmp_path, throttle=True) as ep:
        c = ep.client(max_attempts=1)
        c.create_vector_bucket(vectorBucketName="bkt")
        c.create_index(vectorBucketName="bkt", indexName="idx", dataType="float32", dimension=1,
                       distanceMetric="euclidean")
        names = {"vectorBucketName": "bkt", "indexName": "idx"}
        batch = [{"key": f"k{i}", "data": {"float32": [1.0]}} for i in range(500)]
        codes: list[int] = []
        gate = threading.Barrier(12)

        def put() -> None:
            cw = ep.client(max_attempts=1)
            gate.wait()
            try:
                cw.put_vectors(**names, vectors=batch)
                codes.append(200)
            except cw.exceptions.TooManyRequestsException as e:
                codes.append(e.response["ResponseMetadata"]["HTTPStatusCode"])

        threads = [threading.Thread(target=put) for _ in range(12)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        # 6,000 vectors against 2,500 per second (plus a one-second burst): only what the buckets
        # held and refilled gets through; the rest is answered 429.
        assert set(codes) == {200, 429} and len(codes) == 12
        assert 5 <= codes.count(200) <= 5 + int(elapsed * limits.WRITE_VECTORS_PER_S / 500)
        # Reads are not throttled; a retrying client gets through once the bucket refills.
        c.query_vectors(**names, topK=1, queryVector={"float32": [1.0]})
        ep.client(max_attempts=10).put_vectors(**names, vectors=batch)


def test_fault_injection_answers_retryable_errors(tmp_path: Path) -> None:
    with LocalEndpoint(data_dir=tmp_path, fault_rate=1.0, fault_seed=1) as ep:
        c = ep.client(max_attempts=1)
        seen = set()
        for _ in range(30):
            try:
                c.list_vector_buckets()
            except (c.exceptions.TooManyRequestsException, c.exceptions.ServiceUnavailableException,
                    c.exceptions.InternalServerException) as e:
                seen.add((e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]))
        assert seen == {("TooManyRequestsException", 429), ("ServiceUnavailableException", 503),
                        ("InternalServerException", 500)}


def test_retries_get_through_injected_faults(tmp_path: Path) -> None:
    with LocalEndpoint(data_dir=tmp_path, fault_rate=0.3, fault_seed=7) as ep:
        c = ep.client(max_attempts=10)
        c.create_vector_bucket(vectorBucketName="bkt")
        c.create_index(vectorBucketName="bkt", indexName="idx", dataType="float32", dimension=1,
                       distanceMetric="euclidean")
        names = {"vectorBucketName": "bkt", "indexName": "idx"}
        for i in range(10):
            c.put_vectors(**names, vectors=[{"key": f"k{i}", "data": {"float32": [float(i)]}}])
        keys = [v["key"] for p in c.get_paginator("list_vectors").paginate(**names) for v in p["vectors"]]
        assert sorted(keys) == sorted(f"k{i}" for i in range(10))


def test_added_latency(tmp_path: Path) -> None:
    with LocalEndpoint(data_dir=tmp_path, latency_ms=60) as ep:
        c: Any = ep.client(max_attempts=1)
        start = time.perf_counter()
        for _ in range(3):
            c.list_vector_buckets()
        assert time.perf_counter() - start >= 0.18
