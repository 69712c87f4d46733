"""PutVectors bodies encoded once, in C, instead of by botocore's per-float serializer.

botocore validates and serializes a PutVectors call member by member in Python: for 500 vectors of
384 floats that is ~192,000 ``_serialize``/``_handle_float`` calls plus a ``json.dumps`` of the widened
doubles (17 digits each), 0.25-0.5 s of CPU per request depending on the machine, which caps one
process at ~1,000-2,000 vectors/s, below the per-index limit (2,500 vectors/s) — and on a 2-core
machine that CPU is taken from the embedder. Encoded here, the same request costs ~15 ms
(``bench/bench_write.py`` measures both) and its body is ~40% smaller (shortest float32 digits).

Here the ``vectors`` member is checked by us (``encode_vectors``) and passed to the ordinary boto3
``put_vectors`` call wrapped in ``EncodedVectors``; the request body is then written in one piece
(orjson writes float32 arrays directly, in their shortest round-trip form; without orjson,
``ndarray.tolist()`` and the C ``json`` encoder). Two handlers on the client's own event system
splice it in:

* ``before-parameter-build.s3vectors.PutVectors`` takes the encoded bytes out of the parameters and
  leaves one tiny placeholder vector, so botocore's validation and serialization of the call (names,
  ARN pattern, list length) still run, on almost nothing;
* ``before-call.s3vectors.PutVectors`` rewrites the serialized JSON body, the members botocore
  serialized plus the vectors, before the request is signed (SigV4 hashes the final body) and sent.

Everything else is boto3's: endpoint resolution, SigV4 signing (of the final body), connection
pooling, error parsing, the exceptions the loader's retry logic reads. What botocore would have
checked on the vectors, we check before encoding (``loader.writer.batches``: 1-500 vectors, 20 MiB,
unique keys; keys of 1-1,024 characters; finite float32 data; metadata is a free-form document for
botocore anyway).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

try:  # a C JSON encoder that writes numpy float32 arrays natively; optional (stdlib fallback below)
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    orjson = None  # type: ignore[assignment]

_CONTEXT_KEY = "loader_encoded_vectors"
_PLACEHOLDER_KEY = "__loader_encoded_vectors__"
_PLACEHOLDER = [{"key": _PLACEHOLDER_KEY, "data": {"float32": [0.0]}}]
_HANDLER_ID = "loader-wire-encoded-put-vectors"

MAX_KEY_LENGTH = 1024  # botocore model: PutInputVector.key, 1-1,024 characters


class EncodingError(ValueError):
    """A vector that the service would reject: not finite, or a key of the wrong length."""


class EncodedVectors:
    """PutVectors' ``vectors`` member, checked and ready to encode: the request body is written in one
    piece (one allocation of a few MB, freed as soon as the request is sent) when the call goes out."""

    __slots__ = ("count", "keys", "rows")

    def __init__(self, rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
        self.rows = rows
        self.keys = list(keys)
        self.count = len(self.keys)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"EncodedVectors({self.count} vectors)"

    def request_body(self, members: dict[str, Any]) -> bytes:
        """The whole JSON body: ``members`` (bucket, index, ...) and these vectors."""
        if orjson is not None:
            return orjson.dumps({**members, "vectors": self.rows}, option=orjson.OPT_SERIALIZE_NUMPY)
        rows = [{**row, "data": {"float32": row["data"]["float32"].tolist()}} for row in self.rows]
        return json.dumps({**members, "vectors": rows}, separators=(",", ":"), allow_nan=False).encode()

    @property
    def body(self) -> bytes:
        """The JSON array of the vectors alone (what botocore would put under ``vectors``)."""
        whole = self.request_body({})
        return whole[len(b'{"vectors":') : -1]


def encoder_name() -> str:
    return "orjson" if orjson is not None else "json"


def encode_vectors(items: Iterable[tuple[str, Any, dict[str, Any]]]) -> EncodedVectors:
    """Check (key, data, metadata) triples for PutVectors; ``data`` is a float32 ndarray row or floats.

    Raises ``EncodingError`` for what the service would refuse: a key outside 1-1,024 characters, a
    NaN or infinite value. The vectors are referenced, not copied.
    """
    import numpy as np  # here, not at module level: a run that writes nothing never imports numpy

    keys: list[str] = []
    rows: list[dict[str, Any]] = []
    for key, data, metadata in items:
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise EncodingError(f"vector key must have 1 to {MAX_KEY_LENGTH} characters, got {len(key)}: {key[:80]!r}")
        array = data if isinstance(data, np.ndarray) else np.asarray(data, dtype=np.float32)
        if array.dtype != np.float32 or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise EncodingError(f"vector {key!r} has NaN or infinite values (S3 Vectors accepts finite float32 only)")
        keys.append(key)
        item: dict[str, Any] = {"key": key, "data": {"float32": array}}
        if metadata:
            item["metadata"] = metadata
        rows.append(item)
    return EncodedVectors(rows, keys)


def install(client: Any) -> bool:
    """Teach ``client`` (a boto3 ``s3vectors`` client) to send ``EncodedVectors``; False if it cannot.

    Idempotent. Only calls whose ``vectors`` is an ``EncodedVectors`` are touched; any other call, on
    this client or another, is serialized by botocore as usual.
    """
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None or not hasattr(events, "register"):
        return False
    events.register("before-parameter-build.s3vectors.PutVectors", _take_encoded, unique_id=_HANDLER_ID + "-params")
    events.register("before-call.s3vectors.PutVectors", _splice_encoded, unique_id=_HANDLER_ID + "-body")
    return True


def _take_encoded(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    vectors = params.get("vectors")
    if isinstance(vectors, EncodedVectors):
        context[_CONTEXT_KEY] = vectors
        params["vectors"] = _PLACEHOLDER


def _splice_encoded(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    encoded = context.get(_CONTEXT_KEY)
    if not isinstance(encoded, EncodedVectors):
        return
    body = params.get("body")
    serialized = json.loads(body) if body else {}
    vectors = serialized.pop("vectors", None)
    if not (isinstance(vectors, list) and len(vectors) == 1 and vectors[0].get("key") == _PLACEHOLDER_KEY):
        raise RuntimeError("unexpected PutVectors body from botocore: cannot insert the encoded vectors")
    params["body"] = encoded.request_body(serialized)
    headers = params.get("headers")
    if isinstance(headers, dict):
        for name in [h for h in headers if h.lower() == "content-length"]:
            del headers[name]  # recomputed from the new body when the request is prepared
