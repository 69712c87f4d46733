"""What the loader asks of the index itself: its shape (GetIndex) and its contents (ListVectors).

The sync state lives in the index, not in a local file: ListVectors with ``returnMetadata`` tells, for
every vector, its source document, chunk ordinal, chunk count and content hash. ListVectors "is
strongly consistent with writes" and can be split into up to 16 segments listed in parallel
(botocore model, ListVectors documentation; limits page: "Segment count for parallel listing ... Up
to 16"). Vectors without the loader's ``source``/``content_hash`` metadata are someone else's: they
are counted but never deleted.

A sharded run (``--shard I/N``) keeps only its own documents' vectors in the state (the others are
counted), so each of N workers holds 1/N of the index's sync state in memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from loader import contract
from loader.errors import IndexMismatchError, LoaderError
from loader.keys import key_digest, source_digest, vector_key
from loader.outputs import Target
from loader.retry import DEFAULT_POLICY, RetryPolicy, RetryStats, call_with_retries
from loader.sharding import Shard

T = TypeVar("T")

MAX_SEGMENTS = 16
LIST_PAGE_SIZE = 1000  # ListVectors maxResults: 1-1,000 (botocore model)


@dataclass(frozen=True)
class IndexInfo:
    name: str
    bucket: str
    dimension: int
    distance_metric: str
    data_type: str
    non_filterable_keys: frozenset[str]
    index_mode: str | None = None
    arn: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def describe_index(
    client: Any, target: Target, *, policy: RetryPolicy = DEFAULT_POLICY, stats: RetryStats | None = None
) -> IndexInfo:
    try:
        response = call_with_retries(client.get_index, policy=policy, stats=stats, **target.index_ref())
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "NotFoundException":
            raise LoaderError(
                f"index {target.index!r} in vector bucket {target.bucket!r} not found ({target.origin or 'flags'}): "
                "deploy the stack (`npx cdk deploy --outputs-file cdk-outputs.json`) or check --bucket/--index/--region"
            ) from None
        raise
    index = response["index"]
    keys = (index.get("metadataConfiguration") or {}).get("nonFilterableMetadataKeys") or []
    return IndexInfo(
        name=index.get("indexName", target.index),
        bucket=index.get("vectorBucketName", target.bucket),
        dimension=int(index["dimension"]),
        distance_metric=str(index["distanceMetric"]),
        data_type=str(index.get("dataType", contract.DATA_TYPE)),
        non_filterable_keys=frozenset(keys),
        index_mode=index.get("indexMode"),
        arn=index.get("indexArn"),
        raw=index,
    )


def check_index(info: IndexInfo, *, dimension: int, model: str) -> None:
    """Refuse to write into an index that cannot hold what the loader writes, and say how to fix it."""
    problems = []
    if info.dimension != dimension:
        problems.append(
            f"the index stores {info.dimension}-dimensional vectors but the model {model} produces {dimension}; "
            f"use a model with {info.dimension} dimensions (--model), or redeploy the stack with "
            f"`-c dimension={dimension}` (an index's dimension is fixed at creation, so this creates a new index)"
        )
    if info.distance_metric not in contract.DISTANCE_METRICS:
        problems.append(
            f"the index's distance metric {info.distance_metric!r} is not one the loader supports "
            f"({', '.join(contract.DISTANCE_METRICS)})"
        )
    if info.data_type != contract.DATA_TYPE:
        problems.append(f"the index's data type {info.data_type!r} is not {contract.DATA_TYPE}")
    if contract.TEXT_METADATA_KEY not in info.non_filterable_keys:
        problems.append(
            f"the metadata key {contract.TEXT_METADATA_KEY!r} (the chunk text) is filterable in this index, so every "
            "chunk over 2 KB would be rejected (filterable metadata is limited to 2 KB per vector); non-filterable "
            "keys are fixed when an index is created: redeploy the stack so it creates a new index with "
            f"nonFilterableMetadataKeys including {contract.TEXT_METADATA_KEY!r} (e.g. with a new `-c indexName=...`)"
        )
    if problems:
        raise IndexMismatchError(f"index {info.name!r} cannot be loaded: " + "; ".join(problems))


@dataclass(frozen=True)
class StoredVector:
    key: str
    source: str
    chunk: int | None
    chunks: int | None
    content_hash: str | None


# A long path's vectors are grouped under this + the path hash their keys carry: their stored
# ``source`` may be cut to fit the 2 KB filterable limit, and two long paths can be cut alike.
HASHED_DOCUMENT = "\0"


def document_id(source: str) -> str:
    """The name :class:`IndexState` groups a document's vectors under: its path, or for a long path
    (hashed keys) the hash in its keys."""
    digest = key_digest(vector_key(source, 0))
    return source if digest is None else HASHED_DOCUMENT + digest


@dataclass
class IndexState:
    """The loader's vectors in the index, by key and by document (only ``shard``'s own).

    ``by_source`` maps a :func:`document_id` (the source path, or a long path's hash) to its keys;
    :meth:`label` gives the stored ``source`` to show for it."""

    by_key: dict[str, StoredVector] = field(default_factory=dict)
    by_source: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    foreign: int = 0  # vectors without the loader's metadata
    other_shards: int = 0  # the loader's vectors of documents another shard owns (not kept)
    shard: Shard | None = None
    labels: dict[str, str] = field(default_factory=dict)  # hashed document id -> a stored (maybe cut) source

    def add(self, key: str, metadata: dict[str, Any] | None) -> None:
        metadata = metadata or {}
        source = metadata.get(contract.SOURCE_METADATA_KEY)
        content_hash = metadata.get(contract.CONTENT_HASH_METADATA_KEY)
        if not isinstance(source, str) or not isinstance(content_hash, str):
            self.foreign += 1
            return
        digest = key_digest(key)
        if self.shard is not None and not self.shard.owns_digest(digest or source_digest(source)):
            self.other_shards += 1
            return
        name = source
        if digest is not None:
            name = HASHED_DOCUMENT + digest
            self.labels.setdefault(name, source)
        chunk = metadata.get(contract.CHUNK_METADATA_KEY)
        chunks = metadata.get(contract.CHUNK_COUNT_METADATA_KEY)
        self.by_key[key] = StoredVector(
            key=key,
            source=source,
            chunk=int(chunk) if isinstance(chunk, int | float) else None,
            chunks=int(chunks) if isinstance(chunks, int | float) else None,
            content_hash=content_hash,
        )
        self.by_source[name].append(key)

    def keys_of(self, source: str) -> list[str]:
        """The stored keys of the document at ``source``."""
        return self.by_source.get(document_id(source), [])

    def label(self, name: str) -> str:
        return self.labels.get(name, name)

    @property
    def vectors(self) -> int:
        return len(self.by_key) + self.foreign + self.other_shards


def _list_segment(
    client: Any,
    target: Target,
    *,
    segment: int,
    segments: int,
    metadata: bool,
    policy: RetryPolicy,
    stats: RetryStats | None,
) -> Iterator[dict[str, Any]]:
    params: dict[str, Any] = {**target.index_ref(), "maxResults": LIST_PAGE_SIZE, "returnMetadata": metadata}
    if segments > 1:  # segmentCount and segmentIndex must be given together
        params.update(segmentCount=segments, segmentIndex=segment)
    while True:
        page = call_with_retries(client.list_vectors, policy=policy, stats=stats, **params)
        yield from page.get("vectors", [])
        token = page.get("nextToken")
        if not token:
            return
        params["nextToken"] = token


def list_vectors(
    client: Any,
    target: Target,
    transform: Callable[[dict[str, Any]], T],
    *,
    segments: int = 4,
    metadata: bool = True,
    policy: RetryPolicy = DEFAULT_POLICY,
    stats: RetryStats | None = None,
) -> list[T]:
    """``transform(vector)`` of every vector, listing ``segments`` segments in parallel.

    ``transform`` runs as pages arrive, so only what it keeps stays in memory (not the chunk texts).
    """
    segments = max(1, min(MAX_SEGMENTS, segments))

    def one(segment: int) -> list[T]:
        vectors = _list_segment(
            client, target, segment=segment, segments=segments, metadata=metadata, policy=policy, stats=stats
        )
        return [transform(v) for v in vectors]

    if segments == 1:
        return one(0)
    with ThreadPoolExecutor(max_workers=segments, thread_name_prefix="list") as pool:
        return [item for part in pool.map(one, range(segments)) for item in part]


def _compact(vector: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    metadata = vector.get("metadata") or {}
    return vector["key"], {k: v for k, v in metadata.items() if k in _SYNC_KEYS}


_SYNC_KEYS = frozenset(
    {
        contract.SOURCE_METADATA_KEY,
        contract.CONTENT_HASH_METADATA_KEY,
        contract.CHUNK_METADATA_KEY,
        contract.CHUNK_COUNT_METADATA_KEY,
    }
)


def scan_index(
    client: Any,
    target: Target,
    *,
    segments: int = 4,
    policy: RetryPolicy = DEFAULT_POLICY,
    stats: RetryStats | None = None,
    shard: Shard | None = None,
) -> IndexState:
    """The loader's vectors in the index (ListVectors with metadata, which needs GetVectors permission);
    with ``shard``, only the vectors of the documents that shard owns."""
    state = IndexState(shard=shard if shard is not None and shard.count > 1 else None)
    for key, metadata in list_vectors(client, target, _compact, segments=segments, policy=policy, stats=stats):
        state.add(key, metadata)
    return state


def count_vectors(client: Any, target: Target, *, segments: int = 8, policy: RetryPolicy = DEFAULT_POLICY) -> int:
    """Vectors in the index; keys only, so ListVectors permission alone suffices."""
    return len(list_vectors(client, target, lambda v: None, segments=segments, metadata=False, policy=policy))
