"""Opt-in throttling at AWS's per-index write rates, and opt-in fault injection.

Throttling: "Combined PutVectors and DeleteVectors requests per second per vector index: Up to 1,000"
and "Combined vectors inserted and deleted per second per vector index: Up to 2,500"; beyond them the
service answers 429 TooManyRequestsException (limits.py, LIMITS_PAGE). Each index gets two token
buckets refilled at those rates, holding at most one second's worth (the burst a client can send
after being idle). A request that cannot take its tokens takes none and is throttled.

Faults: with probability ``fault_rate`` a request is answered, before it runs, by a 429, 503 or 500
(the retryable errors of the model), so retries never see a half-applied request.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from s3vectors_local import limits
from s3vectors_local.errors import InternalError, ServiceError, ThrottledError, UnavailableError


class TokenBucket:
    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate, self.capacity, self.clock = rate, capacity, clock
        self.tokens = capacity
        self.stamp = clock()

    def refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


class WriteThrottle:
    def __init__(
        self,
        requests_per_s: float = limits.WRITE_REQUESTS_PER_S,
        vectors_per_s: float = limits.WRITE_VECTORS_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests_per_s, self.vectors_per_s, self.clock = requests_per_s, vectors_per_s, clock
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}
        self._lock = threading.Lock()

    def take(self, index: str, vectors: int) -> None:
        """Charge one write request of ``vectors`` vectors to ``index`` or raise ThrottledError."""
        with self._lock:
            pair = self._buckets.get(index)
            if pair is None:
                pair = (
                    TokenBucket(self.requests_per_s, self.requests_per_s, self.clock),
                    TokenBucket(self.vectors_per_s, self.vectors_per_s, self.clock),
                )
                self._buckets[index] = pair
            reqs, vecs = pair
            reqs.refill()
            vecs.refill()
            if reqs.tokens < 1 or vecs.tokens < vectors:
                raise ThrottledError(
                    "Request rate exceeded for the vector index: at most "
                    f"{self.requests_per_s:g} write requests and {self.vectors_per_s:g} vectors per second"
                )
            reqs.tokens -= 1
            vecs.tokens -= vectors


class FaultInjector:
    def __init__(self, rate: float, latency_ms: float = 0.0, seed: int | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        self.rate, self.latency_s = rate, latency_ms / 1000.0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def before(self) -> None:
        if self.latency_s:
            time.sleep(self.latency_s)
        if not self.rate:
            return
        with self._lock:
            hit = self._rng.random() < self.rate
            kind = self._rng.randrange(3)
        if hit:
            err: ServiceError = (
                ThrottledError("Injected fault: request throttled"),
                UnavailableError("Injected fault: service unavailable"),
                InternalError("Injected fault: internal server error"),
            )[kind]
            raise err
