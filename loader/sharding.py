"""``--shard I/N``: a deterministic 1/N of the documents, so N workers together load what one would.

A document belongs to shard ``int(sha256(source)[:16], 16) % N`` (of the NFC-normalized path): the
same on every machine and every run, independent of listing order or of which other documents exist,
so re-running any one shard is safe. Pruning uses the same rule: a shard deletes only vectors of
documents it owns, never another shard's (a long path's vectors carry that hash in their keys, so
their owner is known even when their stored ``source`` was cut to fit the metadata limit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loader.errors import UsageError
from loader.keys import source_digest

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based, like AWS_BATCH_JOB_ARRAY_INDEX
    count: int

    def owns(self, source: str) -> bool:
        return self.count == 1 or self.owns_digest(source_digest(source))

    def owns_digest(self, digest: str) -> bool:
        """Whether the path whose ``loader.keys.source_digest`` is ``digest`` is this shard's (a long
        path's keys carry that digest even when its stored ``source`` metadata was cut)."""
        return self.count == 1 or int(digest, 16) % self.count == self.index

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
