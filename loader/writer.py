"""PutVectors/DeleteVectors in valid batches, several in flight, rate-limited and retried.

Vectors are encoded once per request by ``loader.wire`` (orjson writes float32 arrays directly)
instead of by botocore's per-float serializer, which costs 0.23-0.5 s of CPU per 500 x 384 floats
(~12 ms encoded; bench/bench_write.py) and would cap one process near or below the per-index write
limit; the boto3 client still sends, signs and parses every request. Records may carry their vector
as a float32 ndarray row (no ``tolist``).

A PutVectors request holds 1-500 vectors (botocore model ``PutVectorsInputList``), at most 20 MiB of
payload ("Request payload size: Up to 20 MiB", limits page) and no key twice (the service rejects a
duplicate key within one request; spiceai #7031). DeleteVectors takes 1-500 keys. Every request goes
through ``loader.retry``: a token from the per-index rate limiter, then retries with backoff on
throttling/5xx. Both operations are idempotent, so a retried or re-run request is harmless.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from loader import wire
from loader.errors import WriteError
from loader.outputs import Target
from loader.retry import DEFAULT_POLICY, RateLimiter, RetryPolicy, RetryStats, call_with_retries, error_code

if TYPE_CHECKING:  # numpy costs ~0.1 s to import: a no-change re-run never needs it
    import numpy as np
    import numpy.typing as npt

MAX_BATCH_VECTORS = 500
MAX_DELETE_KEYS = 500
MAX_PAYLOAD_BYTES = 20 * 1024 * 1024
PAYLOAD_MARGIN = 64 * 1024  # request envelope (bucket/index names, JSON punctuation) and rounding
FLOAT_JSON_BYTES = 26  # longest repr of a float32 widened to a Python float ("-1.2345678901234567e-05"), plus ","


@dataclass(frozen=True)
class VectorRecord:
    key: str
    data: Sequence[float] | npt.NDArray[np.float32]  # a row of the embedder's output as is, or floats
    metadata: dict[str, Any]

    def request_item(self) -> dict[str, Any]:
        """The item as botocore takes it (plain Python floats), for clients without ``loader.wire``."""
        tolist = getattr(self.data, "tolist", None)
        data = tolist() if callable(tolist) else list(self.data)
        return {"key": self.key, "data": {"float32": data}, "metadata": self.metadata}

    def payload_bytes(self) -> int:
        """An upper bound on this vector's share of the JSON request body.

        botocore serializes with ``json.dumps`` defaults (botocore/serialize.py): non-ASCII text is
        sent as ``\\uXXXX`` escapes, so a UTF-8 byte count would under-estimate it; count the same way.
        """
        return len(self.data) * FLOAT_JSON_BYTES + len(json.dumps(self.key)) + len(json.dumps(self.metadata)) + 64


def batches(
    records: Iterable[VectorRecord],
    *,
    max_vectors: int = MAX_BATCH_VECTORS,
    max_bytes: int = MAX_PAYLOAD_BYTES - PAYLOAD_MARGIN,
) -> Iterator[list[VectorRecord]]:
    """Valid PutVectors batches: at most ``max_vectors`` vectors, ``max_bytes`` bytes, no repeated key.

    A key repeated in the stream starts a new batch, so the later record still overwrites the earlier.
    """
    it = iter(records)
    while window := list(islice(it, max_vectors)):
        batch: list[VectorRecord] = []
        keys: set[str] = set()
        size = 0
        for record in window:
            record_size = record.payload_bytes()
            if batch and (record.key in keys or size + record_size > max_bytes):
                yield batch
                batch, keys, size = [], set(), 0
            batch.append(record)
            keys.add(record.key)
            size += record_size
        if batch:
            yield batch


def key_batches(keys: Iterable[str], size: int = MAX_DELETE_KEYS) -> Iterator[list[str]]:
    it = iter(dict.fromkeys(keys))  # de-duplicated, order kept
    while batch := list(islice(it, size)):
        yield batch


class VectorWriter:
    """Buffers records into full batches and sends them from a thread pool.

    ``put``/``delete`` return once their requests are queued, blocking while ``max_in_flight`` requests
    are outstanding (back-pressure on the embedder). The first failure is re-raised by the next call
    and by ``flush``; nothing further is sent after it.

    ``encode``: send PutVectors bodies encoded by ``loader.wire`` (default: whenever the client is a
    botocore client it can be installed on; fakes without an event system get plain lists).
    ``busy_seconds``/``encode_seconds`` add up, over all requests, the time spent in requests (encoding,
    rate-limiter waits, retries and backoff included) and in encoding alone.
    """

    def __init__(
        self,
        client: Any,
        target: Target,
        *,
        max_in_flight: int = 8,
        limiter: RateLimiter | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        stats: RetryStats | None = None,
        on_written: Callable[[int], None] | None = None,
        on_deleted: Callable[[int], None] | None = None,
        encode: bool | None = None,
    ) -> None:
        self.client = client
        self.target = target
        self.limiter = limiter if limiter is not None else default_limiter()
        self.policy = policy
        self.stats = stats if stats is not None else RetryStats()
        self.on_written = on_written
        self.on_deleted = on_deleted
        self.written = 0
        self.deleted = 0
        self.requests = 0
        self.busy_seconds = 0.0
        self.encode_seconds = 0.0
        self.encode = wire.install(client) if encode in (None, True) else False
        if self.encode:
            keep_large_buffers_out_of_the_heap()
        self._buffer: list[VectorRecord] = []
        self._slots = threading.BoundedSemaphore(max(1, max_in_flight))
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_in_flight), thread_name_prefix="write")
        self._futures: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    # --- public API -------------------------------------------------------------------------
    def put(self, records: Iterable[VectorRecord]) -> None:
        self._raise_if_failed()
        self._buffer.extend(records)
        while len(self._buffer) >= MAX_BATCH_VECTORS:
            head, self._buffer = self._buffer[:MAX_BATCH_VECTORS], self._buffer[MAX_BATCH_VECTORS:]
            for batch in batches(head):
                self._submit(self._put_batch, batch)

    def send_if_idle(self) -> None:
        """Send the buffered records now, as a partial batch, if no request is in flight.

        For a producer slower than the network (an embedder on a CPU): its vectors go out while it
        computes the next ones, instead of waiting for a full batch of 500 and being sent after the
        last batch is embedded. A fast producer keeps requests in flight, so its batches stay full.
        """
        self._raise_if_failed()
        with self._lock:
            idle = not self._futures
        if idle and self._buffer:
            pending, self._buffer = self._buffer, []
            for batch in batches(pending):
                self._submit(self._put_batch, batch)

    def delete(self, keys: Iterable[str]) -> None:
        self._raise_if_failed()
        for batch in key_batches(keys):
            self._submit(self._delete_batch, batch)

    def flush(self) -> None:
        """Send what is buffered and wait for every request; raise the first failure."""
        if self._buffer and self._error is None:
            pending, self._buffer = self._buffer, []
            for batch in batches(pending):
                self._submit(self._put_batch, batch)
        while True:
            with self._lock:
                futures = set(self._futures)
            if not futures:
                break
            for future in futures:
                future.exception()  # wait; errors are kept in self._error by _run
        self._raise_if_failed()

    def close(self, *, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def __enter__(self) -> VectorWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is not None:
            self._error = self._error or WriteError("stopped")  # queued requests see this and return
        self.close(cancel=exc is not None)

    # --- internals --------------------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _submit(self, fn: Callable[[Any], None], batch: Any) -> None:
        self._slots.acquire()  # back-pressure: at most max_in_flight requests queued or running
        if self._error is not None:
            self._slots.release()
            raise self._error
        future = self._pool.submit(self._run, fn, batch)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)
        self._slots.release()

    def _run(self, fn: Callable[[Any], None], batch: Any) -> None:
        if self._error is not None:
            return
        try:
            fn(batch)
        except BaseException as exc:  # kept and re-raised in the caller's thread
            with self._lock:
                if self._error is None:
                    self._error = _as_write_error(exc)

    def _put_batch(self, batch: list[VectorRecord]) -> None:
        started = time.perf_counter()
        encoding = 0.0

        def send(**params: Any) -> Any:
            # Encoded only once the rate limiter has let the request through (call_with_retries takes the
            # token first): requests waiting for a token hold their records, not a few MB of JSON each.
            nonlocal encoding
            began = time.perf_counter()
            vectors: Any
            if self.encode:
                vectors = wire.encode_vectors((r.key, r.data, r.metadata) for r in batch)
            else:
                vectors = [r.request_item() for r in batch]
            encoding += time.perf_counter() - began
            return self.client.put_vectors(**params, vectors=vectors)

        call_with_retries(
            send,
            policy=self.policy,
            stats=self.stats,
            limiter=self.limiter,
            cost=len(batch),
            **self.target.index_ref(),
        )
        with self._lock:
            self.written += len(batch)
            self.requests += 1
            self.encode_seconds += encoding
            self.busy_seconds += time.perf_counter() - started
        if self.on_written:
            self.on_written(len(batch))

    def _delete_batch(self, keys: list[str]) -> None:
        started = time.perf_counter()
        call_with_retries(
            self.client.delete_vectors,
            policy=self.policy,
            stats=self.stats,
            limiter=self.limiter,
            cost=len(keys),
            **self.target.index_ref(),
            keys=keys,
        )
        with self._lock:
            self.deleted += len(keys)
            self.requests += 1
            self.busy_seconds += time.perf_counter() - started
        if self.on_deleted:
            self.on_deleted(len(keys))


_HEAP_TUNED: bool | None = None  # None: not tried yet
MMAP_THRESHOLD = 1 << 20  # bytes: allocations at least this large get their own mapping


def keep_large_buffers_out_of_the_heap() -> bool:
    """Have glibc serve allocations of 1 MiB or more (request bodies: ~3 MB each) with their own mmap.

    By default glibc raises its mmap threshold after the first large buffer is freed, so later request
    bodies come from the per-thread heaps (one per writer thread), which keep their high-water mark:
    the process's RSS then creeps up over a long load (measured on 2 cores: 135 MiB peak at 100k
    chunks, 97-113 MiB with the threshold fixed; bench/bench_memory.py). ``mallopt(M_MMAP_THRESHOLD)`` fixes it; such
    buffers go back to the system as soon as they are freed. Linux/glibc only, once per process, and
    not when the user set ``MALLOC_MMAP_THRESHOLD_`` themselves. Returns whether it was applied.
    """
    global _HEAP_TUNED
    if _HEAP_TUNED is None:
        _HEAP_TUNED = False
        if sys.platform.startswith("linux") and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            try:
                import ctypes
                import platform

                if platform.libc_ver()[0] == "glibc":
                    mallopt = ctypes.CDLL(None).mallopt
                    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                    _HEAP_TUNED = bool(mallopt(-3, MMAP_THRESHOLD))  # -3: M_MMAP_THRESHOLD (malloc.h)
            except (OSError, AttributeError, ValueError):
                pass
    return _HEAP_TUNED


def default_limiter() -> RateLimiter:
    """The writer's limiter: AWS's per-index rates, with half a second of burst instead of a whole one.

    The index's own token bucket (AWS's, or the local endpoint's) holds about a second's worth. A
    client that could spend all of it at once would leave no margin: any jitter between when a request
    is admitted here and when it is counted there (encoding, connection, a slow response before it)
    becomes a 429, and the rate is halved. Keeping half a second of tokens in reserve absorbs that
    jitter at no cost to the sustained rate, which is the same 2,500 vectors/s.
    """
    return RateLimiter(burst_seconds=0.5, throttle_cooldown=0.5)


def _as_write_error(exc: BaseException) -> BaseException:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "request")
        return WriteError(f"{operation} failed: {error_code(exc)}: {error.get('Message', exc)}")
    if isinstance(exc, WriteError | KeyboardInterrupt | SystemExit):
        return exc
    if isinstance(exc, wire.EncodingError):
        return WriteError(f"PutVectors not sent: {exc}")
    return WriteError(f"write failed: {type(exc).__name__}: {exc}")
