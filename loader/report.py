"""What a load did, for people (a summary) and for programs (``--json``), and the progress bar.

The summary goes to stdout; the progress bar and warnings go to stderr, so ``--json`` output can be
piped. The bar is off when stderr is not a terminal (CI logs) or with ``--quiet``.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

from loader.outputs import Target

ACTIONS = ("new", "changed", "unchanged", "deleted")
MAX_LISTED = 20  # per category in the human summary; --json lists everything


@dataclass
class LoadReport:
    root: str
    target: Target
    model: str
    dry_run: bool = False
    index_metric: str = ""
    documents_read: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    plan: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: {a: [] for a in ACTIONS})
    chunks_embedded: int = 0
    vectors_written: int = 0
    vectors_deleted: int = 0
    vectors_stale: int = 0  # keys to delete (written to the plan in a dry run)
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    vectors_before: int = 0
    foreign_vectors: int = 0
    other_shards_vectors: int = 0  # the loader's vectors of documents other shards own (left alone)
    shard: str | None = None  # "I/N" for a sharded run
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._warned: set[str] = set()

    def record(self, action: str, source: str, chunks: int) -> None:
        self.plan[action].append((source, chunks))

    def warn_all(self, source: str, messages: list[str]) -> None:
        for message in messages:
            line = f"{source}: {message}"
            if line not in self._warned:  # one warning per document, not one per chunk
                self._warned.add(line)
                self.warnings.append(line)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_embedded / self.seconds if self.seconds > 0 else 0.0

    def count(self, action: str) -> int:
        return len(self.plan[action])

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "root": self.root,
            "shard": self.shard,
            "target": target_dict(self.target),
            "model": self.model,
            "documents": {
                "read": self.documents_read,
                "skipped": len(self.skipped),
                **{action: self.count(action) for action in ACTIONS},
            },
            "plan": {action: [{"source": s, "chunks": n} for s, n in self.plan[action]] for action in ACTIONS},
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "chunks": {
                "embedded": self.chunks_embedded,
                "written": self.vectors_written,
                "deleted": self.vectors_deleted,
                "stale": self.vectors_stale,
            },
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "index_vectors_before": self.vectors_before,
            "foreign_vectors": self.foreign_vectors,
            "other_shards_vectors": self.other_shards_vectors,
            "seconds": round(self.seconds, 3),
            "chunks_per_second": round(self.chunks_per_second, 1),
            "warnings": self.warnings,
        }

    def human(self) -> str:
        lines = []
        where = f"{self.target.bucket}/{self.target.index}"
        shard = f" (shard {self.shard})" if self.shard else ""
        if self.dry_run:
            lines.append(f"Dry run{shard}: nothing was embedded, written or deleted in {where}.")
        else:
            origin = f" ({self.target.origin})" if self.target.origin else ""
            lines.append(f"Loaded {self.root}{shard} into {where}{origin}.")
        lines.append(
            f"Documents: {self.documents_read} read, {len(self.skipped)} skipped; "
            + ", ".join(f"{self.count(a)} {a}" for a in ACTIONS)
        )
        for action in ("new", "changed", "deleted"):
            entries = self.plan[action]
            for source, chunks in entries[:MAX_LISTED]:
                lines.append(f"  {action:<8} {source} ({chunks} chunk{'s' if chunks != 1 else ''})")
            if len(entries) > MAX_LISTED:
                lines.append(f"  {action:<8} ... and {len(entries) - MAX_LISTED} more (--json lists all)")
        for path, reason in self.skipped[:MAX_LISTED]:
            lines.append(f"  skipped  {path}: {reason}")
        if len(self.skipped) > MAX_LISTED:
            lines.append(f"  skipped  ... and {len(self.skipped) - MAX_LISTED} more (--json lists all)")
        if self.dry_run:
            to_write = sum(n for a in ("new", "changed") for _, n in self.plan[a])
            lines.append(f"Chunks: {to_write} to embed and write, {self.vectors_stale} stale to delete")
        else:
            lines.append(
                f"Chunks: {self.chunks_embedded} embedded, {self.vectors_written} written, "
                f"{self.vectors_deleted} deleted"
            )
            lines.append(
                f"Requests: {self.requests} ({self.retries} retried, {self.throttled} throttled); "
                f"{self.seconds:.1f} s, {self.chunks_per_second:.1f} chunks/s"
            )
        if self.foreign_vectors:
            lines.append(f"Left alone: {self.foreign_vectors} vector(s) without the loader's metadata")
        if self.other_shards_vectors:
            lines.append(f"Left alone: {self.other_shards_vectors} vector(s) of documents other shards own")
        return "\n".join(lines)


def target_dict(target: Target) -> dict[str, Any]:
    return {
        "bucket": target.bucket,
        "index": target.index,
        "region": target.region,
        "endpoint_url": target.endpoint_url,
        "origin": target.origin,
    }


class Progress:
    """A tqdm bar over chunks written; its total grows as the reader finds more chunks to write."""

    def __init__(self, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._bar: Any = None
        self._lock = threading.Lock()

    @classmethod
    def for_terminal(cls, *, quiet: bool, stream: TextIO | None = None) -> Progress:
        stream = stream if stream is not None else sys.stderr
        return cls(enabled=not quiet and stream.isatty(), stream=stream)

    def _ensure(self) -> Any:
        if self._bar is None and self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=0, unit="chunk", file=self.stream, dynamic_ncols=True, leave=False)
        return self._bar

    def status(self, text: str) -> None:
        with self._lock:
            bar = self._ensure()
            if bar is not None:
                bar.set_description_str(text)

    def add_total(self, n: int) -> None:
        with self._lock:
            bar = self._ensure()
            if bar is not None and n:
                bar.total += n
                bar.refresh()

    def advance(self, n: int) -> None:
        with self._lock:  # called from writer threads
            bar = self._ensure()
            if bar is not None:
                bar.update(n)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
