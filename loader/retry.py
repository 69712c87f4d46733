"""Retries with exponential backoff and jitter, and a client-side rate limiter for one index.

AWS documents per-index write limits: "Combined PutVectors and DeleteVectors requests per second per
vector index: Up to 1,000" and "Combined vectors inserted and deleted per second per vector index: Up
to 2,500"; beyond them requests fail with 429 TooManyRequestsException
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-limitations.html and
s3-vectors-best-practices.html). The limiter keeps the writer under both; when the service throttles
anyway (another writer on the same index, a lower quota), the allowed rate is halved and then grows
back by a little after each success (additive increase, multiplicative decrease), so a load adapts
and recovers instead of hammering the index.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

T = TypeVar("T")

MAX_WRITE_REQUESTS_PER_SECOND = 1000.0
MAX_WRITE_VECTORS_PER_SECOND = 2500.0

THROTTLING_CODES = frozenset({"TooManyRequestsException", "ThrottlingException", "SlowDown"})
TRANSIENT_CODES = frozenset(
    {"ServiceUnavailableException", "InternalServerException", "InternalFailure", "RequestTimeoutException"}
)
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_CONNECTION_ERRORS = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__


def is_throttling(exc: BaseException) -> bool:
    if not isinstance(exc, ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exc) in THROTTLING_CODES or status == 429


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx and dropped connections. Writes are idempotent (same key overwrites), so safe."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    if not isinstance(exc, ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return is_throttling(exc) or error_code(exc) in TRANSIENT_CODES or status in TRANSIENT_STATUS


@dataclass
class RetryStats:
    """Counted across threads; reported in the summary."""

    retries: int = 0
    throttled: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def record(self, exc: BaseException) -> None:
        with self._lock:
            self.retries += 1
            if is_throttling(exc):
                self.throttled += 1


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base_delay: float = 0.1  # seconds
    max_delay: float = 20.0
    # A refused or dropped connection is retried a few times only: an endpoint that is down (a wrong
    # --endpoint-url, a stopped local server) should fail in a second, not after minutes of backoff.
    max_connection_attempts: int = 3

    def delay(self, attempt: int) -> float:
        """"Full jitter" backoff: uniform in [0, min(cap, base * 2**attempt)] (AWS Architecture Blog,
        "Exponential Backoff And Jitter"), so threads that failed together do not retry together."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


DEFAULT_POLICY = RetryPolicy()


class RateLimiter:
    """Two token buckets (requests/s and vectors/s) with an adaptive rate; thread-safe.

    ``burst_seconds``: how many seconds' worth of tokens the buckets hold (and start with).
    ``throttle_cooldown``: seconds during which further throttling answers do not lower the rate again
    (the requests already in flight when the first 429 came back were sent at the old rate).
    """

    def __init__(
        self,
        requests_per_second: float = MAX_WRITE_REQUESTS_PER_SECOND,
        vectors_per_second: float = MAX_WRITE_VECTORS_PER_SECOND,
        *,
        burst_seconds: float = 1.0,
        throttle_cooldown: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_requests = requests_per_second
        self.max_vectors = vectors_per_second
        self.factor = 1.0  # share of the maximum rates currently allowed, lowered on throttling
        self.throttle_cooldown = throttle_cooldown
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._request_capacity = max(1.0, requests_per_second * burst_seconds)
        self._vector_capacity = vectors_per_second * burst_seconds
        self._request_tokens = self._request_capacity
        self._vector_tokens = self._vector_capacity
        self._last = clock()
        self._last_cut = -math.inf
        self.waited_seconds = 0.0  # total time callers were held back, all threads together

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._request_tokens = min(
            self._request_capacity, self._request_tokens + elapsed * self.max_requests * self.factor
        )
        self._vector_tokens = min(self._vector_capacity, self._vector_tokens + elapsed * self.max_vectors * self.factor)

    def acquire(self, vectors: int) -> float:
        """Block until one request of ``vectors`` vectors may be sent; return the seconds waited."""
        # A request larger than the bucket could never fit: let it through once the bucket is full.
        vectors_needed = min(float(vectors), self._vector_capacity)
        waited = 0.0
        while True:
            with self._lock:
                self._refill(self._clock())
                if self._request_tokens >= 1 and self._vector_tokens >= vectors_needed:
                    self._request_tokens -= 1
                    self._vector_tokens -= vectors_needed
                    self.waited_seconds += waited
                    return waited
                missing_requests = max(0.0, 1 - self._request_tokens) / (self.max_requests * self.factor)
                missing_vectors = max(0.0, vectors_needed - self._vector_tokens) / (self.max_vectors * self.factor)
                pause = max(missing_requests, missing_vectors, 0.001)
            self._sleep(pause)
            waited += pause

    def throttled(self) -> None:
        with self._lock:
            now = self._clock()
            if now - self._last_cut < self.throttle_cooldown:
                return
            self._last_cut = now
            self.factor = max(0.02, self.factor / 2)

    def succeeded(self) -> None:
        with self._lock:
            self.factor = min(1.0, self.factor + 0.05)


def call_with_retries(
    fn: Callable[..., T],
    /,
    *args: Any,
    policy: RetryPolicy,
    stats: RetryStats | None = None,
    limiter: RateLimiter | None = None,
    cost: int = 0,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """Call ``fn`` (a boto3 client method), retrying transient failures; re-raise the last one.

    With a ``limiter``, each attempt first takes a token for one request of ``cost`` vectors.
    """
    attempt = 0
    while True:
        if limiter is not None:
            limiter.acquire(cost)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            attempt += 1
            # A refused or dropped connection means the endpoint is down: fail fast. A read timeout means
            # it is alive but slow (and PutVectors/DeleteVectors are idempotent): retry as for a 503.
            unreachable = isinstance(exc, _CONNECTION_ERRORS) and not isinstance(exc, ReadTimeoutError)
            limit = policy.max_connection_attempts if unreachable else policy.max_attempts
            if not is_retryable(exc) or attempt >= limit:
                raise
            if stats is not None:
                stats.record(exc)
            if limiter is not None and is_throttling(exc):
                limiter.throttled()
            sleep(policy.delay(attempt))
            continue
        if limiter is not None:
            limiter.succeeded()
        return result
