"""The load pipeline's moving parts: a reader thread, a length-sorted chunk pool, stage timings.

    reader thread            calling thread                          writer pool (loader.writer)
    read, hash, classify  -> [queue, <= 64 documents] -> pool of chunks (<= window) -> embed the
    and chunk documents                                  longest batch, build records -> PutVectors,
                                                                                        N in flight

* The reader runs ahead of the embedder, bounded by its queue, so reading, extraction, hashing and
  chunking overlap with embedding; on a no-change run nothing is chunked at all.
* The embedder takes its batches from a pool of pending chunks, longest first: a batch holds chunks of
  similar length, so little of it is padding (a transformer's cost grows with the padded length of
  the longest text in the batch). The pool holds at most ``window`` chunks and the queue 64
  documents: memory stays bounded whatever the corpus size.
* Writes go to the writer's thread pool and run while the next batch is embedded; ``put`` blocks
  when ``max_in_flight`` requests are outstanding (back-pressure). Deletes start only after every
  write succeeded (``loader.sync``).

``StageTimes`` adds up the seconds each stage took, per thread; their sum minus the wall time is the
time hidden by overlap.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from loader.records import Chunk, Document, Skipped

T = TypeVar("T")

QUEUE_DOCUMENTS = 64  # documents read ahead of the embedder


@dataclass
class StageTimes:
    """Seconds per stage, each summed over the threads that ran it (filled in by ``loader.sync.load``)."""

    index: float = 0.0  # GetIndex + ListVectors (the sync state), before anything else
    read: float = 0.0  # listing, reading and text extraction (reader thread)
    hash: float = 0.0  # content hash and classification (reader thread)
    chunk: float = 0.0  # token-aware chunking (reader thread)
    model_load: float = 0.0  # a lazily loaded model, if it loaded during the run (informational: the
    # thread that needed the model first waited for it inside its own stage, so it is not added to busy())
    embed: float = 0.0  # embedder.embed calls (calling thread)
    build: float = 0.0  # metadata and records (calling thread)
    write: float = 0.0  # PutVectors requests, summed over the requests in flight (writer threads)
    write_wait: float = 0.0  # the calling thread held back by the writer (max_in_flight reached)
    starved: float = 0.0  # the calling thread waiting for the reader
    delete: float = 0.0  # DeleteVectors after the writes (serial by design)
    wall: float = 0.0  # the whole load() call

    _STAGES = ("index", "read", "hash", "chunk", "embed", "build", "write", "delete")

    def busy(self) -> float:
        """Seconds of work in all stages together (waits excluded)."""
        return sum(getattr(self, name) for name in self._STAGES)

    def hidden(self) -> float:
        """Seconds of work that ran alongside other work (0 if everything ran one after another)."""
        return max(0.0, self.busy() - self.wall)

    def to_dict(self) -> dict[str, float]:
        out = {f.name: round(getattr(self, f.name), 4) for f in fields(self) if not f.name.startswith("_")}
        out["busy"] = round(self.busy(), 4)
        out["hidden_by_overlap"] = round(self.hidden(), 4)
        return out

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, stage, getattr(self, stage) + time.perf_counter() - started)


@dataclass
class DocWork:
    """A document as the reader hands it over: its sync decision and, unless unchanged, its chunks."""

    document: Document
    source: str
    content_hash: str
    action: str  # "new" | "changed" | "unchanged"
    chunks: list[Chunk] = field(default_factory=list)
    chunk_count: int = 0
    warnings: list[str] = field(default_factory=list)


DONE = object()


class Reader(threading.Thread):
    """Reads, classifies and chunks documents ahead of the embedder; hands results over a bounded queue.

    ``decide(document) -> (source, content_hash, action, chunk_count)``; ``split(document) -> chunks``
    (only for documents that are not unchanged). Before the first document that needs embedding it
    calls ``prepare()`` (e.g. start loading the model in the background). The items are ``DocWork``,
    ``Skipped``, an exception raised by the reading side, then ``DONE``.
    """

    def __init__(
        self,
        documents: Iterable[Document | Skipped],
        *,
        decide: Callable[[Document], tuple[str, str, str, int]],
        split: Callable[[Document], tuple[list[Chunk], list[str]]],
        times: StageTimes,
        prepare: Callable[[], None] | None = None,
        chunk: bool = True,
        maxsize: int = QUEUE_DOCUMENTS,
    ) -> None:
        super().__init__(name="reader", daemon=True)
        self.documents = documents
        self.decide, self.split, self.times = decide, split, times
        self.prepare = prepare
        self.chunk = chunk
        self.out: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            iterator = iter(self.documents)
            while not self.stop.is_set():
                with self.times.timing("read"):
                    item = next(iterator, None)
                if item is None:
                    break
                self._put(item if isinstance(item, Skipped) else self._work(item))
        except BaseException as exc:  # handed to the calling thread
            self._put(exc)
        self._put(DONE)

    def _work(self, document: Document) -> DocWork:
        with self.times.timing("hash"):
            source, content_hash, action, count = self.decide(document)
        work = DocWork(document, source, content_hash, action, chunk_count=count)
        if action != "unchanged" and self.chunk:
            if self.prepare is not None:
                prepare, self.prepare = self.prepare, None
                prepare()
            with self.times.timing("chunk"):
                work.chunks, work.warnings = self.split(document)
            work.chunk_count = len(work.chunks)
        return work


class ChunkPool(Generic[T]):
    """Pending items with a length; ``take(n)`` removes the ``n`` longest (ties: oldest first)."""

    def __init__(self, length: Callable[[T], int]) -> None:
        self._length = length
        self._items: list[tuple[int, int, T]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, items: Iterable[T]) -> None:
        for item in items:
            self._items.append((-self._length(item), self._seq, item))
            self._seq += 1

    def take(self, n: int) -> list[T]:
        self._items.sort(key=lambda entry: (entry[0], entry[1]))
        head, self._items = self._items[:n], self._items[n:]
        return [item for _, _, item in head]


def chunk_length(entry: tuple[Any, Chunk]) -> int:
    """Sort key of a pool entry: the chunk's model tokens if the chunker counted them, else an estimate
    (4 characters a token)."""
    chunk = entry[1]
    return chunk.tokens or len(chunk.text) // 4


