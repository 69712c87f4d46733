"""PutVectors/DeleteVectors in valid batches, several in flight, rate-limited and retried.

A PutVectors request holds 1-500 vectors (botocore model ``PutVectorsInputList``), at most 20 MiB of
payload ("Request payload size: Up to 20 MiB", limits page) and no key twice (the service rejects a
duplicate key within one request; spiceai #7031). DeleteVectors takes 1-500 keys. Every request goes
through ``loader.retry``: a token from the per-index rate limiter, then retries with backoff on
throttling/5xx. Both operations are idempotent, so a retried or re-run request is harmless.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from botocore.exceptions import ClientError

from loader.errors import WriteError
from loader.outputs import Target
from loader.retry import DEFAULT_POLICY, RateLimiter, RetryPolicy, RetryStats, call_with_retries, error_code

MAX_BATCH_VECTORS = 500
MAX_DELETE_KEYS = 500
MAX_PAYLOAD_BYTES = 20 * 1024 * 1024
PAYLOAD_MARGIN = 64 * 1024  # request envelope (bucket/index names, JSON punctuation) and rounding
FLOAT_JSON_BYTES = 26  # longest repr of a float32 widened to a Python float ("-1.2345678901234567e-05"), plus ","


@dataclass(frozen=True)
class VectorRecord:
    key: str
    data: Sequence[float]
    metadata: dict[str, Any]

    def request_item(self) -> dict[str, Any]:
        return {"key": self.key, "data": {"float32": list(self.data)}, "metadata": self.metadata}

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
    ) -> None:
        self.client = client
        self.target = target
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.policy = policy
        self.stats = stats if stats is not None else RetryStats()
        self.on_written = on_written
        self.on_deleted = on_deleted
        self.written = 0
        self.deleted = 0
        self.requests = 0
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
        except BaseException as exc: # kept and re-raised in the caller's thread
            with self._lock:
                if self._error is None:
                    self._error = _as_write_error(exc)

    def _put_batch(self, batch: list[VectorRecord]) -> None:
        call_with_retries(
            self.client.put_vectors,
            policy=self.policy,
            stats=self.stats,
            limiter=self.limiter,
            cost=len(batch),
            **self.target.index_ref(),
            vectors=[r.request_item() for r in batch],
        )
        with self._lock:
            self.written += len(batch)
            self.requests += 1
        if self.on_written:
            self.on_written(len(batch))

    def _delete_batch(self, keys: list[str]) -> None:
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
        if self.on_deleted:
            self.on_deleted(len(keys))


def _as_write_error(exc: BaseException) -> BaseException:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "request")
        return WriteError(f"{operation} failed: {error_code(exc)}: {error.get('Message', exc)}")
    if isinstance(exc, WriteError | KeyboardInterrupt | SystemExit):
        return exc
    return WriteError(f"write failed: {type(exc).__name__}: {exc}")
