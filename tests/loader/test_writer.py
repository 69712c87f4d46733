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


# --- loader.wire: PutVectors bodies encoded once, sent through the ordinary boto3 client --------------
def _local_client_and_index(endpoint: Any, dimension: int = 8) -> tuple[Any, Target]:
    from tests.loader.support import create_index, loader_client

    client = loader_client(endpoint.endpoint_url)
    return client, create_index(client, dimension=dimension)


def _all_vectors(client: Any, target: Target) -> dict[str, Any]:
    out: dict[str, Any] = {}
    params: dict[str, Any] = {**target.index_ref(), "maxResults": 1000, "returnData": True, "returnMetadata": True}
    while True:
        page = client.list_vectors(**params)
        for v in page["vectors"]:
            assert v["key"] not in out  # listed once
            out[v["key"]] = v
        if not page.get("nextToken"):
            return out
        params["nextToken"] = page["nextToken"]


def test_encoded_put_stores_exactly_the_float32_values_keys_and_metadata(s3vectors_endpoint: Any) -> None:
    import numpy as np

    from loader import wire

    client, target = _local_client_and_index(s3vectors_endpoint)
    vectors = np.random.default_rng(5).standard_normal((50, 8)).astype(np.float32)
    metadata = {"source": "é/ü.md", "text": "naïve café — ünïcode", "chunk": 3, "tags": ["a", "b"], "ok": True}
    assert wire.install(client) and wire.install(client)  # idempotent
    client.put_vectors(
        **target.index_ref(), vectors=wire.encode_vectors((f"k{i}", vectors[i], metadata) for i in range(50))
    )
    client.put_vectors(
        **target.index_ref(),  # a plain call on the same client is botocore's, as before
        vectors=[{"key": "plain", "data": {"float32": [0.5] * 8}, "metadata": {"x": 1}}],
    )
    stored = _all_vectors(client, target)
    assert set(stored) == {f"k{i}" for i in range(50)} | {"plain"}
    for i in range(50):
        assert np.array_equal(np.asarray(stored[f"k{i}"]["data"]["float32"], dtype=np.float32), vectors[i])
        assert stored[f"k{i}"]["metadata"] == metadata
    assert stored["plain"]["metadata"] == {"x": 1}


class EventClient(FakeClient):
    """A fake client with an event system, so that the writer sends it encoded vectors."""

    class meta:
        class events:
            @staticmethod
            def register(*args: Any, **kwargs: Any) -> None:
                return None

    def put_vectors(self, **params: Any) -> dict[str, Any]:
        from loader import wire

        vectors = params["vectors"]
        assert isinstance(vectors, wire.EncodedVectors)
        return super().put_vectors(**{**params, "vectors": [{"key": k} for k in vectors.keys]})


def test_a_vector_that_is_not_finite_is_refused_before_sending() -> None:
    from loader.writer import VectorRecord

    client = EventClient()
    with VectorWriter(client, TARGET, policy=FAST) as writer:
        assert writer.encode
        writer.put([VectorRecord("bad", [0.1, float("nan"), 0.2, 0.3], {})])
        with pytest.raises(WriteError, match="NaN or infinite"):
            writer.flush()
    assert client.put_calls == []


def test_records_may_carry_ndarray_rows_for_clients_without_wire() -> None:
    import numpy as np

    from loader.writer import VectorRecord

    item = VectorRecord("k", np.arange(4, dtype=np.float32), {"a": 1}).request_item()
    assert item["data"]["float32"] == [0.0, 1.0, 2.0, 3.0]
    assert all(type(x) is float for x in item["data"]["float32"])  # botocore's json.dumps needs Python floats


def test_encoding_happens_after_the_rate_limiter_admits_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests queued behind the limiter hold their records, not their encoded bodies (bounded memory)."""
    from loader import wire

    events: list[str] = []
    original = wire.encode_vectors

    class RecordingLimiter(RateLimiter):
        def acquire(self, vectors: int) -> float:
            events.append("acquire")
            return super().acquire(vectors)

    def encode(items: Any) -> Any:
        events.append("encode")
        return original(items)

    monkeypatch.setattr(wire, "encode_vectors", encode)
    client = EventClient()
    with VectorWriter(client, TARGET, policy=FAST, limiter=RecordingLimiter(), encode=True, max_in_flight=1) as writer:
        writer.put([_record(f"k{i}") for i in range(600)])
        writer.flush()
    assert events == ["acquire", "encode", "acquire", "encode"]


def _throttled_write(tmp_path: Any, n: int, **endpoint: Any) -> tuple[Any, Any, Any, list[str]]:
    import numpy as np

    from loader.writer import VectorRecord
    from s3vectors_local import LocalEndpoint

    ep = LocalEndpoint(data_dir=tmp_path / "ep", **endpoint).start()
    client, target = _local_client_and_index(ep, dimension=16)
    vectors = np.random.default_rng(2).standard_normal((n, 16)).astype(np.float32)
    keys = [f"doc-{i // 10}#{i % 10}" for i in range(n)]
    stats = RetryStats()
    policy = RetryPolicy(max_attempts=30, base_delay=0.02, max_delay=0.5)
    with VectorWriter(client, target, max_in_flight=8, policy=policy, stats=stats) as writer:
        for lo in range(0, n, 64):  # as the loader hands them over, one embedding batch at a time
            part = range(lo, min(n, lo + 64))
            writer.put([VectorRecord(keys[i], vectors[i], {"source": f"doc-{i // 10}"}) for i in part])
        writer.flush()
    stored = _all_vectors(ep.client(max_attempts=30), target)  # the endpoint's faults hit listing too
    ep.stop()
    return writer, stats, stored, keys


def test_no_vector_is_lost_or_duplicated_under_aws_throttling_and_latency(tmp_path: Any) -> None:
    writer, _, stored, keys = _throttled_write(tmp_path, 4000, throttle=True, latency_ms=20)
    assert writer.written == 4000 and set(stored) == set(keys) and len(stored) == 4000


def test_no_vector_is_lost_or_duplicated_when_requests_fail_and_are_retried(tmp_path: Any) -> None:
    writer, stats, stored, keys = _throttled_write(tmp_path, 3000, fault_rate=0.3, fault_seed=11, latency_ms=5)
    assert stats.retries > 0
    assert writer.written == 3000 and set(stored) == set(keys) and len(stored) == 3000


def test_default_limiter_keeps_half_a_second_in_reserve_and_halves_once_per_burst_of_429s() -> None:
    from loader.writer import default_limiter

    limiter = default_limiter()
    assert limiter.max_vectors == 2500 and limiter.max_requests == 1000
    clock = FakeClock()
    limiter = RateLimiter(burst_seconds=0.5, throttle_cooldown=0.5, clock=clock, sleep=clock.sleep)
    for _ in range(6):  # 3,000 vectors: 1,250 at once, 1,750 more at 2,500/s
        limiter.acquire(500)
    assert clock.now == pytest.approx(0.7, abs=0.01)
    limiter.throttled()
    limiter.throttled()  # the other requests in flight when the first 429 came: the same congestion
    assert limiter.factor == 0.5
    clock.now += 0.6
    limiter.throttled()
    assert limiter.factor == 0.25


def test_encoded_bodies_are_signed_as_sent(tmp_path: Any) -> None:
    """The body is replaced before SigV4 signing: an endpoint that verifies signatures accepts it."""
    import boto3
    import numpy as np
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from loader import wire
    from s3vectors_local import LocalEndpoint

    try:
        ep = LocalEndpoint(tmp_path / "ep", credentials={"AKIDLOADERTEST": "secret-1"}).start()
    except TypeError:
        pytest.skip("this s3vectors_local cannot verify signatures")

    def client(secret: str) -> Any:
        return boto3.client("s3vectors", endpoint_url=ep.endpoint_url, region_name="us-east-1",
                            aws_access_key_id="AKIDLOADERTEST", aws_secret_access_key=secret,
                            config=Config(retries={"total_max_attempts": 1}))

    try:
        good = client("secret-1")
        good.create_vector_bucket(vectorBucketName="sig-bucket")
        good.create_index(vectorBucketName="sig-bucket", indexName="sig-index", dataType="float32", dimension=4,
                          distanceMetric="cosine")
        wire.install(good)
        good.put_vectors(vectorBucketName="sig-bucket", indexName="sig-index",
                         vectors=wire.encode_vectors([("k", np.ones(4, np.float32), {"t": "é"})]))
        assert [v["key"] for v in good.list_vectors(vectorBucketName="sig-bucket", indexName="sig-index")["vectors"]] \
            == ["k"]
        bad = client("wrong")
        wire.install(bad)
        with pytest.raises(ClientError):
            bad.put_vectors(vectorBucketName="sig-bucket", indexName="sig-index",
                            vectors=wire.encode_vectors([("k2", np.ones(4, np.float32), {})]))
    finally:
        ep.stop()


def test_the_heap_tuning_is_applied_once_and_never_fails() -> None:
    from loader.writer import keep_large_buffers_out_of_the_heap

    first = keep_large_buffers_out_of_the_heap()
    assert isinstance(first, bool) and keep_large_buffers_out_of_the_heap() is first


def test_a_partial_batch_is_sent_only_when_no_request_is_in_flight() -> None:
    client = FakeClient(delay=0.3)
    with VectorWriter(client, TARGET, max_in_flight=4, policy=FAST) as writer:
        writer.put([_record(f"a{i}") for i in range(64)])
        writer.send_if_idle()  # idle: sent now, 64 vectors
        writer.put([_record(f"b{i}") for i in range(64)])
        writer.send_if_idle()  # the first request is still in flight: kept for a fuller batch
        writer.put([_record(f"c{i}") for i in range(500)])  # a full batch goes out anyway
        writer.flush()
    assert sorted(len(c) for c in client.put_calls) == [64, 64, 500]
    assert sorted(c[0][0] for c in client.put_calls) == ["a", "b", "c"]  # b's went out with the full batch
    assert sorted(k for c in client.put_calls for k in c) == sorted(
        [f"a{i}" for i in range(64)] + [f"b{i}" for i in range(64)] + [f"c{i}" for i in range(500)])
