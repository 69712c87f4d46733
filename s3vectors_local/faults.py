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
from collections import Counter
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


_FAULTS: dict[int, Callable[[str], ServiceError]] = {
    429: lambda what: ThrottledError(f"Injected fault: request throttled{what}"),
    503: lambda what: UnavailableError(f"Injected fault: service unavailable{what}"),
    500: lambda what: InternalError(f"Injected fault: internal server error{what}"),
}


class FaultInjector:
    """Answers a share of requests with a retryable error, and delays requests.

    ``rate``: share answered 429/503/500 (``codes``) before the operation runs, so it has no effect.
    ``after_rate``: share whose operation runs and commits, and is then answered 503 anyway, as when
    a response is lost on the way back: the client must retry a write that already happened.
    ``latency_ms``: added to every request; ``spike_rate``/``spike_ms``: a share delayed by much more.
    ``injected`` counts what was done, by (operation, status, "before" | "after").
    """

    def __init__(
        self,
        rate: float,
        latency_ms: float = 0.0,
        seed: int | None = None,
        *,
        codes: tuple[int, ...] = (429, 503, 500),
        after_rate: float = 0.0,
        spike_rate: float = 0.0,
        spike_ms: float = 0.0,
    ) -> None:
        for name, value in (("fault rate", rate), ("after rate", after_rate), ("spike rate", spike_rate)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        unknown = [c for c in codes if c not in _FAULTS]
        if unknown or not codes:
            raise ValueError(f"fault codes must be among {sorted(_FAULTS)}, got {list(codes)}")
        self.rate, self.latency_s = rate, latency_ms / 1000.0
        self.codes = tuple(codes)
        self.after_rate, self.spike_rate, self.spike_s = after_rate, spike_rate, spike_ms / 1000.0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected: Counter[tuple[str, int, str]] = Counter()
        self.spikes = 0

    @property
    def active(self) -> bool:
        return bool(self.rate or self.latency_s or self.after_rate or (self.spike_rate and self.spike_s))

    def total(self, phase: str | None = None) -> int:
        with self._lock:
            return sum(n for (_, _, p), n in self.injected.items() if phase is None or p == phase)

    def before(self, operation: str = "") -> None:
        with self._lock:
            spike = self.spike_rate > 0 and self._rng.random() < self.spike_rate
            hit = self.rate > 0 and self._rng.random() < self.rate
            code = self.codes[self._rng.randrange(len(self.codes))]
            if spike:
                self.spikes += 1
            if hit:
                self.injected[(operation, code, "before")] += 1
        delay = self.latency_s + (self.spike_s if spike else 0.0)
        if delay:
            time.sleep(delay)
        if hit:
            raise _FAULTS[code]("")

    def after(self, operation: str = "") -> None:
        """Called once the operation has succeeded: maybe lose its response."""
        if not self.after_rate:
            return
        with self._lock:
            hit = self._rng.random() < self.after_rate
            if hit:
                self.injected[(operation, 503, "after")] += 1
        if hit:
            raise _FAULTS[503](" (after the request was applied)")
