"""Search: embed a question, QueryVectors with an optional metadata filter, rank and format hits.

Filters use S3 Vectors' syntax (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
s3-vectors-metadata-filtering.html): ``{"category": "pets"}`` (implicit $eq), ``{"chunks": {"$gte": 3}}``,
``$eq $ne $gt $gte $lt $lte $in $nin $exists``, ``$and``/``$or`` over arrays of filters, and
``$startsWith`` on ENHANCED indexes. Filters are checked here before sending, so a typo is a clear
usage error instead of a 400: unknown operators, wrong operand types, and filtering on a
non-filterable key (the chunk text) are refused. An object with several fields, or a field with
several operators, is rewritten as ``$and``: the service's reading of such objects is not documented
and other clients saw them rejected (mem0 #4554).

Scores: S3 Vectors returns a *distance* (smaller is closer). We also print a similarity score,
higher is closer: for cosine, ``score = 1 - distance`` (the cosine similarity, -1..1, as
langchain-aws does); for euclidean, ``score = 1 / (1 + distance)`` (0..1].
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from loader import contract
from loader.errors import UsageError
from loader.outputs import Target
from loader.records import Embedder
from loader.retry import DEFAULT_POLICY, RetryPolicy, call_with_retries

FIELD_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$startsWith")
LOGICAL_OPERATORS = ("$and", "$or")
_NUMERIC = ("$gt", "$gte", "$lt", "$lte")


def _is_number(value: Any) -> bool:
    # NaN and Infinity are not JSON: AWS rejects a request carrying them, so they are not numbers here.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_primitive(value: Any) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


def _condition(name: str, op: str, operand: Any) -> None:
    where = f"filter on {name!r}"
    if op not in FIELD_OPERATORS:
        hint = " (use $and/$or around conditions)" if op in LOGICAL_OPERATORS else ""
        raise UsageError(f"{where}: unknown operator {op!r}{hint}; supported: {', '.join(FIELD_OPERATORS)}")
    if op in ("$eq", "$ne") and not _is_primitive(operand):
        raise UsageError(f"{where}: {op} takes a string, number or boolean, got {json.dumps(operand)}")
    if op in _NUMERIC and not _is_number(operand):
        raise UsageError(f"{where}: {op} compares numbers only, got {json.dumps(operand)}")
    if op in ("$in", "$nin") and (
        not isinstance(operand, list) or not operand or not all(_is_primitive(v) for v in operand)
    ):
        raise UsageError(f"{where}: {op} takes a non-empty array of strings, numbers or booleans")
    if op == "$exists" and not isinstance(operand, bool):
        raise UsageError(f"{where}: $exists takes true or false")
    if op == "$startsWith" and not isinstance(operand, str):
        raise UsageError(f"{where}: $startsWith takes a string")


def normalize_filter(node: Any, *, non_filterable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Validate a filter and return it with one key per object (several keys become ``$and``)."""
    if not isinstance(node, dict) or not node:
        raise UsageError(f"a filter must be a non-empty JSON object, got {json.dumps(node)}")
    if len(node) > 1:
        return {"$and": [normalize_filter({k: v}, non_filterable=non_filterable) for k, v in node.items()]}
    ((name, value),) = node.items()
    if name in LOGICAL_OPERATORS:
        if not isinstance(value, list) or not value:
            raise UsageError(f"{name} takes a non-empty array of filters")
        return {name: [normalize_filter(v, non_filterable=non_filterable) for v in value]}
    if name.startswith("$"):
        if name in FIELD_OPERATORS:
            raise UsageError(f'{name} must be inside a field\'s condition, e.g. {{"chunk": {{"{name}": ...}}}}')
        raise UsageError(
            f"unknown operator {name!r}; supported: {', '.join(LOGICAL_OPERATORS + FIELD_OPERATORS)}"
        )
    if name in non_filterable:
        raise UsageError(
            f"metadata key {name!r} is non-filterable in this index (it holds the chunk text) "
            "and cannot be used in a filter"
        )
    if isinstance(value, dict):
        if not value:
            raise UsageError(f"filter on {name!r}: empty condition")
        for op, operand in value.items():
            _condition(name, op, operand)
        if len(value) > 1:
            return {"$and": [{name: {op: operand}} for op, operand in value.items()]}
        return {name: value}
    if isinstance(value, list):
        raise UsageError(f'filter on {name!r}: to match any of several values use {{"{name}": {{"$in": [...]}}}}')
    if not _is_primitive(value):
        raise UsageError(f"filter on {name!r}: expected a string, number or boolean, got {json.dumps(value)}")
    return {name: value}


def _reject_constant(name: str) -> Any:
    raise UsageError(f"--filter: {name} is not a JSON number (AWS accepts only finite numbers)")


def parse_filter(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--filter is not valid JSON: {exc.msg} at column {exc.colno}: {text}") from None


_WHERE = re.compile(r"^\s*(?P<key>[^=!<>\s]+)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>.*)$", re.DOTALL)
_WHERE_OPS = {"=": None, "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}


def typed_value(raw: str) -> str | int | float | bool:
    """``true``/``false`` are booleans, ``3``/``2.5`` numbers, ``"3"`` (quoted) or anything else a string."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", text) and math.isfinite(float(text)):
        return float(text)
    return text


def where_filter(expressions: list[str]) -> list[dict[str, Any]]:
    """``--where category=pets --where 'chunk>=2'`` as filters (combined with $and by :func:`combine`)."""
    out = []
    for expression in expressions:
        match = _WHERE.match(expression)
        if not match:
            raise UsageError(f"--where {expression!r}: expected KEY=VALUE (or KEY!=, >, >=, <, <= VALUE)")
        key, op, value = match["key"], _WHERE_OPS[match["op"]], typed_value(match["value"])
        out.append({key: value} if op is None else {key: {op: value}})
    return out


def build_filter(
    filter_json: str | None, where: list[str] | None, *, non_filterable: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    parts: list[Any] = []
    if filter_json:
        parts.append(parse_filter(filter_json))
    parts.extend(where_filter(where or []))
    if not parts:
        return None
    normalized = [normalize_filter(p, non_filterable=non_filterable) for p in parts]
    return normalized[0] if len(normalized) == 1 else {"$and": normalized}


def score(distance: float, metric: str) -> float:
    if metric == "cosine":
        return 1.0 - distance
    return 1.0 / (1.0 + distance)


@dataclass
class Hit:
    rank: int
    key: str
    distance: float
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.metadata.get(contract.SOURCE_METADATA_KEY, ""))

    @property
    def section(self) -> str:
        return str(self.metadata.get(contract.SECTION_METADATA_KEY, ""))

    @property
    def text(self) -> str:
        return str(self.metadata.get(contract.TEXT_METADATA_KEY, ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "key": self.key,
            "source": self.source,
            "section": self.section,
            "title": self.metadata.get(contract.TITLE_METADATA_KEY),
            "chunk": self.metadata.get(contract.CHUNK_METADATA_KEY),
            "distance": self.distance,
            "score": round(self.score, 6),
            "text": self.text,
            "metadata": {k: v for k, v in self.metadata.items() if k != contract.TEXT_METADATA_KEY},
        }


def search(
    client: Any,
    target: Target,
    embedder: Embedder,
    question: str,
    *,
    top_k: int = 5,
    metadata_filter: dict[str, Any] | None = None,
    metric: str = contract.DEFAULT_DISTANCE_METRIC,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> list[Hit]:
    """The ``top_k`` chunks closest to ``question``, closest first (following result pages)."""
    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    vector = embedder.embed([question])[0]
    params: dict[str, Any] = {
        **target.index_ref(),
        "queryVector": {"float32": vector.tolist()},
        "topK": top_k,
        "returnMetadata": True,
        "returnDistance": True,
    }
    if metadata_filter:
        params["filter"] = metadata_filter
    hits: list[Hit] = []
    while True:
        # Same queryVector/topK/filter on every page, as pagination requires.
        page = call_with_retries(client.query_vectors, policy=policy, **params)
        metric = page.get("distanceMetric") or metric
        for vector_hit in page.get("vectors", []):
            distance = float(vector_hit.get("distance", 0.0))
            metadata = vector_hit.get("metadata") or {}
            hits.append(Hit(len(hits) + 1, vector_hit["key"], distance, score(distance, metric), metadata))
        token = page.get("nextToken")
        if not token or len(hits) >= top_k:
            return hits[:top_k]
        params["nextToken"] = token


def snippet(text: str, *, title: str = "", width: int = 240) -> str:
    """The start of the chunk's text on one line, without the "Title — Section" context line the
    chunker puts first (the formatted hit already shows source and section)."""
    head, sep, body = text.partition("\n\n")
    if sep and title and head.startswith(title):
        text = body
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" …")


def format_hits(hits: list[Hit], *, metric: str) -> str:
    if not hits:
        return "No results."
    lines = []
    for hit in hits:
        section = f" — {hit.section}" if hit.section else ""
        lines.append(f"{hit.rank}. {hit.key}  score {hit.score:.3f}  ({metric} distance {hit.distance:.4f})")
        lines.append(f"   {hit.source}{section}")
        title = str(hit.metadata.get(contract.TITLE_METADATA_KEY, ""))
        lines.append(textwrap.indent(textwrap.fill(snippet(hit.text, title=title), width=100), "   "))
    score_rule = "1 - cosine distance" if metric == "cosine" else "1 / (1 + distance)"
    lines.append(f"(score = {score_rule}; higher is closer)")
    return "\n".join(lines)
