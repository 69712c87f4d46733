"""Batching, concurrency, retries and rate limiting of writes (fake client: no network)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from loader.errors import WriteError
from loader.outputs import Target
from loader.retry import RateLimiter, RetryPolicy, RetryStats, call_with_retries
from loader.writer import MAX_PAYLOAD_BYTES, VectorRecord, VectorWriter, batches, key_batches

TARGET = Target(bucket="bucket-1", index="index-1")
FAST = RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.01)


def _record(key: str, dimension: int = 4, text: str = "t") -> VectorRecord:
    return VectorRecord(key, [0.123456789] * dimension, {"source": key, "text": text})


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutVectors"
    )


class FakeClient:
    """Records requests; fails the first ``failures`` calls with ``error``; tracks concurrency."""

    def __init__(self, failures: int = 0, error: BaseException | None = None, delay: float = 0.0) -> None:
        self.failures, self.error, self.delay = failures, error, delay
        self.put_calls: list[list[str]] = []
        self.delete_calls: list[list[str]] = []
        self.active = self.max_active = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            if self.failures > 0:
                self.failures -= 1
                self.active -= 1
                assert self.error is not None
                raise self.error
        time.sleep(self.delay)

    def put_vectors(self, **params: Any) -> dict[str, Any]:
        self._enter()
        keys = [v["key"] for v in params["vectors"]]
        assert len(keys) == len(set(keys)) <= 500
        assert len(json.dumps(params).encode()) <= MAX_PAYLOAD_BYTES
        with self._lock:
            self.put_calls.append(keys)
            self.active -= 1
        return {}

    def delete_vectors(self, **params: Any) -> dict[str, Any]:
        self._enter()
        with self._lock:
            self.delete_calls.append(params["keys"])
            self.active -= 1
        return {}


def test_batches_hold_at_most_500_vectors() -> None:
    sizes = [len(b) for b in batches(_record(f"k{i}") for i in range(1201))]
    assert sizes == [500, 500, 201]


def test_a_repeated_key_starts_a_new_batch_so_the_later_record_wins() -> None:
    records = [_record("a"), _record("b"), _record("a", text="newer"), _record("c")]
    out = list(batches(records))
    assert [[r.key for r in b] for b in out] == [["a", "b"], ["a", "c"]]
    assert out[1][0].metadata["text"] == "newer"


def test_batches_stay_under_20_mib_for_large_vectors() -> None:
    # 4,096 dimensions x 500 vectors is ~50 MB of JSON: must be split well below 500 per request.
    records = [_record(f"k{i}", dimension=4096) for i in range(500)]
    out = list(batches(records))
    assert len(out) >= 3
    for batch in out:
        body = {"vectorBucketName": "b", "indexName": "i", "vectors": [r.request_item() for r in batch]}
        assert len(json.dumps(body).encode()) <= MAX_PAYLOAD_BYTES


def test_payload_estimate_is_an_upper_bound() -> None:
    import numpy as np

    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    vector /= np.linalg.norm(vector)
    record = VectorRecord("k" * 900, vector.tolist(), {"text": "é\n" * 5000, "source": "s"})
    assert len(json.dumps(record.request_item()).encode()) <= record.payload_bytes()


def test_key_batches_deduplicate_and_split_at_500() -> None:
    keys = [f"k{i}" for i in range(700)] + ["k1", "k2"]
    assert [len(b) for b in key_batches(keys)] == [500, 200]


def test_writer_sends_full_batches_with_several_in_flight() -> None:
    client = FakeClient(delay=0.05)
    written: list[int] = []
    with VectorWriter(client, TARGET, max_in_flight=4, policy=FAST, on_written=written.append) as writer:
        for i in range(0, 3000, 100):
            writer.put(_record(f"k{j}") for j in range(i, i + 100))
        writer.flush()
    assert sorted(len(c) for c in client.put_calls) == [500] * 6
    assert writer.written == 3000 == sum(written)
    assert 2 <= client.max_active <= 4


def test_throttling_is_retried_counted_and_slows_the_limiter() -> None:
    client = FakeClient(failures=3, error=_client_error("TooManyRequestsException", 429))
    limiter = RateLimiter()
    stats = RetryStats()
    with VectorWriter(client, TARGET, max_in_flight=1, policy=FAST, stats=stats, limiter=limiter) as writer:
        writer.put([_record("a"), _record("b")])
        writer.flush()
    assert client.put_calls == [["a", "b"]]
    assert (stats.retries, stats.throttled) == (3, 3)
    assert limiter.factor < 1.0  # halved three times, then grown back a little on success


@pytest.mark.parametrize(
    "error",
    [_client_error("ServiceUnavailableException", 503), _client_error("InternalServerException", 500),
     EndpointConnectionError(endpoint_url="http://localhost:1")],
)
def test_transient_errors_are_retried(error: BaseException) -> None:
    client = FakeClient(failures=2, error=error)
    stats = RetryStats()
    with VectorWriter(client, TARGET, policy=FAST, stats=stats) as writer:
        writer.delete(["a", "b"])
        writer.flush()
    assert client.delete_calls == [["a", "b"]]
    assert (stats.retries, stats.throttled) == (2, 0)


def test_a_permanent_error_fails_the_write_with_a_clear_message() -> None:
    client = FakeClient(failures=1, error=_client_error("ValidationException", 400))
    with VectorWriter(client, TARGET, policy=FAST) as writer:
        writer.put([_record("a")])
        with pytest.raises(WriteError, match="PutVectors failed: ValidationException"):
            writer.flush()
    assert client.put_calls == []


def test_retries_give_up_after_max_attempts() -> None:
    client = FakeClient(failures=100, error=_client_error("TooManyRequestsException", 429))
    with VectorWriter(client, TARGET, policy=FAST) as writer:
        writer.put([_record("a")])
        with pytest.raises(WriteError, match="TooManyRequestsException"):
            writer.flush()
    assert client.failures == 100 - FAST.max_attempts


def test_after_a_failure_nothing_more_is_sent() -> None:
    client = FakeClient(failures=1, error=_client_error("AccessDeniedException", 403))
    with VectorWriter(client, TARGET, max_in_flight=1, policy=FAST) as writer:
        writer.put([_record(f"k{i}") for i in range(500)])
        with pytest.raises(WriteError):
            writer.flush()
        with pytest.raises(WriteError):
            writer.put([_record(f"x{i}") for i in range(500)])
    assert client.put_calls == []


def test_call_with_retries_does_not_retry_client_mistakes() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        raise _client_error("ValidationException", 400)

    with pytest.raises(ClientError):
        call_with_retries(fn, policy=FAST)
    assert calls == [1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_keeps_to_the_vectors_per_second_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_second=1000, vectors_per_second=2500, clock=clock, sleep=clock.sleep)
    for _ in range(15):  # 7,500 vectors: the first 2,500 are the burst, the rest take 2 seconds
        limiter.acquire(500)
    assert clock.now == pytest.approx(2.0, abs=0.01)


def test_rate_limiter_keeps_to_the_requests_per_second_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_second=10, vectors_per_second=1e9, clock=clock, sleep=clock.sleep)
    for _ in range(30):
        limiter.acquire(1)
    assert clock.now == pytest.approx(2.0, abs=0.01)


def test_rate_limiter_halves_on_throttling_and_recovers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_second=1000, vectors_per_second=1000, clock=clock, sleep=clock.sleep)
    limiter.throttled()
    limiter.throttled()
    assert limiter.factor == 0.25
    for _ in range(3):  # burst spent, then 250 vectors/s: 1,500 more take 6 s
        limiter.acquire(500)
    before = clock.now
    limiter.acquire(500)
    assert clock.now - before == pytest.approx(2.0, abs=0.01)
    for _ in range(30):
        limiter.succeeded()
    assert limiter.factor == 1.0
