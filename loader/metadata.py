"""Per-vector metadata, kept inside S3 Vectors' limits before anything is sent.

Limits ("Limitations and restrictions", https://docs.aws.amazon.com/AmazonS3/latest/userguide/
s3-vectors-limitations.html): total metadata per vector up to 40 KB (filterable + non-filterable),
filterable metadata up to 2 KB, up to 50 metadata keys per vector; PutVectors fails the whole request
with 400 otherwise. We measure sizes as the compact UTF-8 JSON of the metadata, which over-counts
(quotes, braces, commas) whatever exact rule AWS applies, against 2,000 and 40,000 bytes, which are
under the limit whether "KB" means 1,000 or 1,024. An oversize vector is never sent as is and never
fails its batch: long title/section values are cut at a UTF-8 boundary, front-matter fields are
dropped (largest first), the chunk text is cut last, each with a warning.

The chunk text goes under ``contract.TEXT_METADATA_KEY``, which the index must declare
non-filterable (checked before any write by ``loader.index.check_index``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loader import contract
from loader.keys import truncate_utf8
from loader.records import Chunk, Document

MAX_FILTERABLE_BYTES = 2_000
MAX_TOTAL_BYTES = 40_000
MAX_KEYS = 50
MAX_KEY_LENGTH = 63  # botocore model: MetadataKey is 1-63 characters
SHORT_VALUE_BYTES = 200  # title/section are cut to this much when the filterable budget is exceeded
ELLIPSIS = "…"

CORE_KEYS = (
    contract.SOURCE_METADATA_KEY,
    contract.TITLE_METADATA_KEY,
    contract.SECTION_METADATA_KEY,
    contract.CHUNK_METADATA_KEY,
    contract.CHUNK_COUNT_METADATA_KEY,
    contract.CONTENT_HASH_METADATA_KEY,
    contract.TEXT_METADATA_KEY,
)

MetadataValue = str | int | float | bool | list[str | int | float | bool]


@dataclass
class BuiltMetadata:
    metadata: dict[str, MetadataValue]
    warnings: list[str] = field(default_factory=list)


def json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _primitive(value: Any) -> str | int | float | bool | None:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN/Infinity
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if value is None:
        return None
    return str(value)


def clean_field(name: str, value: Any) -> tuple[MetadataValue | None, str | None]:
    """A front-matter value as S3 Vectors metadata (string, number, boolean or list), or a reason to drop it."""
    if not 1 <= len(name) <= MAX_KEY_LENGTH:
        return None, f"front-matter field {name[:40]!r}: names must be 1-{MAX_KEY_LENGTH} characters"
    if name.startswith("$"):
        return None, f"front-matter field {name!r}: names starting with '$' clash with filter operators"
    if name in CORE_KEYS:
        return None, f"front-matter field {name!r} clashes with the loader's own metadata key"
    if isinstance(value, list | tuple | set | frozenset):
        items = [p for p in (_primitive(v) for v in value) if p is not None]
        return (items, None) if items else (None, f"front-matter field {name!r}: empty list")
    if isinstance(value, Mapping):
        return None, f"front-matter field {name!r}: nested mappings are not supported as metadata"
    primitive = _primitive(value)
    if primitive is None:
        return None, f"front-matter field {name!r}: no value"
    return primitive, None


def build_metadata(
    document: Document,
    chunk: Chunk,
    *,
    chunk_count: int,
    content_hash: str,
    source: str | None = None,
    non_filterable: frozenset[str] = frozenset(contract.NON_FILTERABLE_METADATA_KEYS),
) -> BuiltMetadata:
    """The metadata of one chunk, within limits; ``source`` overrides ``document.source`` (normalized)."""
    warnings: list[str] = []
    core: dict[str, MetadataValue] = {
        contract.SOURCE_METADATA_KEY: source if source is not None else document.source,
        contract.TITLE_METADATA_KEY: document.title,
        contract.SECTION_METADATA_KEY: chunk.section,
        contract.CHUNK_METADATA_KEY: chunk.ordinal,
        contract.CHUNK_COUNT_METADATA_KEY: chunk_count,
        contract.CONTENT_HASH_METADATA_KEY: content_hash,
    }
    extra: dict[str, MetadataValue] = {}
    for name, raw in document.fields.items():
        value, problem = clean_field(str(name), raw)
        if problem:
            warnings.append(problem + "; dropped")
        elif value is not None:
            extra[str(name)] = value
    room = MAX_KEYS - len(CORE_KEYS)
    if len(extra) > room:
        dropped = list(extra)[room:]
        warnings.append(
            f"{len(dropped)} front-matter field(s) dropped ({', '.join(dropped[:5])}...): "
            f"at most {MAX_KEYS} metadata keys per vector"
        )
        extra = dict(list(extra.items())[:room])

    def filterable() -> dict[str, Any]:
        merged = {**core, **extra}
        return {k: v for k, v in merged.items() if k not in non_filterable}

    if json_size(filterable()) > MAX_FILTERABLE_BYTES:
        for name in (contract.TITLE_METADATA_KEY, contract.SECTION_METADATA_KEY):
            value = core[name]
            if isinstance(value, str) and len(value.encode("utf-8")) > SHORT_VALUE_BYTES:
                core[name] = truncate_utf8(value, SHORT_VALUE_BYTES - len(ELLIPSIS.encode())) + ELLIPSIS
                warnings.append(
                    f"{name} cut to {SHORT_VALUE_BYTES} bytes (filterable metadata is limited to 2 KB per vector)"
                )
    for name in sorted(extra, key=lambda n: json_size({n: extra[n]}), reverse=True):
        if json_size(filterable()) <= MAX_FILTERABLE_BYTES:
            break
        if name in non_filterable:
            continue
        del extra[name]
        warnings.append(f"front-matter field {name!r} dropped (filterable metadata is limited to 2 KB per vector)")
    if json_size(filterable()) > MAX_FILTERABLE_BYTES:
        # Only the source path itself can still be too long (a path of ~1,700+ bytes). The vector
        # keys still identify the document (keys.vector_key hashes long paths), so sync stays correct.
        while (over := json_size(filterable()) - MAX_FILTERABLE_BYTES) > 0:
            value = str(core[contract.SOURCE_METADATA_KEY])
            core[contract.SOURCE_METADATA_KEY] = truncate_utf8(value, len(value.encode()) - max(over, 4))
        warnings.append("source path cut to fit the 2 KB filterable metadata limit")

    text = chunk.text
    metadata: dict[str, MetadataValue] = {**core, **extra, contract.TEXT_METADATA_KEY: text}
    if json_size(metadata) > MAX_TOTAL_BYTES:
        # The longest prefix that fits (binary search: JSON escapes make bytes-to-cut hard to predict).
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if json_size({**metadata, contract.TEXT_METADATA_KEY: text[:mid]}) <= MAX_TOTAL_BYTES:
                lo = mid
            else:
                hi = mid - 1
        cut = text[:lo]
        metadata[contract.TEXT_METADATA_KEY] = cut
        warnings.append(
            f"chunk text cut from {len(text.encode())} to {len(cut.encode())} bytes "
            "(metadata is limited to 40 KB per vector)"
        )
    return BuiltMetadata(metadata, warnings)
