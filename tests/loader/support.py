"""Helpers shared by the loader's write-side tests (not a conftest: plain imports, nothing implicit)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loader import contract
from loader.client import make_session, s3vectors_client
from loader.outputs import Target
from loader.records import Chunk, Document, Embedder, Skipped

BUCKET = "docs-bucket"
INDEX = "docs-index"


def create_index(
    client: Any,
    *,
    dimension: int = 384,
    metric: str = "cosine",
    non_filterable: tuple[str, ...] = (contract.TEXT_METADATA_KEY,),
    bucket: str = BUCKET,
    index: str = INDEX,
) -> Target:
    client.create_vector_bucket(vectorBucketName=bucket)
    params: dict[str, Any] = {
        "vectorBucketName": bucket,
        "indexName": index,
        "dataType": "float32",
        "dimension": dimension,
        "distanceMetric": metric,
    }
    if non_filterable:
        params["metadataConfiguration"] = {"nonFilterableMetadataKeys": list(non_filterable)}
    client.create_index(**params)
    return Target(bucket=bucket, index=index, region="us-east-1", origin="test")


def loader_client(endpoint_url: str, max_in_flight: int = 8) -> Any:
    """The client the loader itself builds (botocore retries off: the loader retries and counts)."""
    session = make_session(region="us-east-1", local=True)  # dummy credentials if none (module fixtures)
    return s3vectors_client(session, endpoint_url=endpoint_url, max_pool_connections=max_in_flight)


def stored(client: Any, target: Target) -> dict[str, dict[str, Any]]:
    """key -> metadata of every vector in the index."""
    out: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {**target.index_ref(), "returnMetadata": True, "maxResults": 1000}
    while True:
        page = client.list_vectors(**params)
        out.update({v["key"]: v.get("metadata", {}) for v in page["vectors"]})
        if not page.get("nextToken"):
            return out
        params["nextToken"] = page["nextToken"]


def keys_of(index: dict[str, dict[str, Any]], source: str) -> list[str]:
    return sorted(k for k, m in index.items() if m.get("source") == source)


def write_corpus(root: Path, docs: dict[str, str]) -> Path:
    for name, text in docs.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def paragraphs(n: int, topic: str) -> str:
    return "\n\n".join(f"Paragraph {i} about {topic}: {topic} rules number {i} apply here." for i in range(n))


# A minimal read side with exactly predictable chunks (one per paragraph), so that sync tests can
# assert exact keys and counts without depending on the real chunker's choices.
def simple_read(root: Path, *, strict: bool = False) -> Iterator[Document | Skipped]:
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        source = path.relative_to(root).as_posix()
        if path.suffix != ".md":
            yield Skipped(source, "unsupported type")
            continue
        data = path.read_bytes()
        yield Document(
            source=source,
            title=path.stem,
            text=data.decode("utf-8"),
            content_hash=hashlib.sha256(data).hexdigest(),
            fields={"category": path.parent.name},
        )


def simple_chunk(document: Document, embedder: Embedder, *, max_tokens: int | None = None,
                 overlap_tokens: int = 32) -> list[Chunk]:
    parts = [p for p in document.text.split("\n\n") if p.strip()]
    return [Chunk(document.source, i, f"Part {i // 10}", p) for i, p in enumerate(parts)]


class FailingClient:
    """Wraps a client; the ``fail_on``-th call of ``operation`` (and every later one) raises."""

    def __init__(self, client: Any, *, operation: str, fail_on: int) -> None:
        self._client, self._operation, self._fail_on = client, operation, fail_on
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name != self._operation:
            return attr

        def wrapped(**kwargs: Any) -> Any:
            with self._lock:
                self.calls += 1
                fail = self.calls >= self._fail_on
            if fail:
                raise RuntimeError(f"simulated crash during {name}")  # not retryable: the run stops here
            return attr(**kwargs)

        return wrapped


def outputs_file(path: Path, target: Target, *, stack: str = contract.DEFAULT_STACK_NAME, **extra: str) -> Path:
    outputs = {
        contract.Outputs.VECTOR_BUCKET_NAME: target.bucket,
        contract.Outputs.INDEX_NAME: target.index,
        contract.Outputs.REGION: "us-east-1",
        **extra,
    }
    path.write_text(json.dumps({stack: outputs}))
    return path
