"""``--shard I/N``: a deterministic 1/N of the documents, so N workers together load what one would.

A document belongs to shard ``int(sha256(source)[:16], 16) % N``: the same on every machine and every
run, independent of listing order or of which other documents exist, so re-running any one shard is
safe. Pruning uses the same rule: a shard deletes only vectors whose ``source`` it owns, never another
shard's.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from loader.errors import UsageError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based, like AWS_BATCH_JOB_ARRAY_INDEX
    count: int

    def owns(self, source: str) -> bool:
        if self.count == 1:
            return True
        digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
        return int(digest[:16], 16) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


ALL = Shard(0, 1)


def parse_shard(text: str) -> Shard:
    """``"3/8"`` -> Shard(3, 8); I is 0-based (0 <= I < N), as AWS Batch numbers array jobs."""
    match = _SHARD.match(text)
    if not match:
        raise UsageError(f"--shard must look like I/N (e.g. 0/4), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text}: need N >= 1 and 0 <= I < N (shards are numbered from 0)")
    return Shard(index, count)
