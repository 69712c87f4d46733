"""Metadata filters for QueryVectors: parse (with the service's errors), then evaluate per vector.

Operators and their inputs, from https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-metadata-filtering.html:
  $eq, $ne            string, number or boolean. $eq against an array value matches if any element does.
  $gt $gte $lt $lte   number (numeric comparison only)
  $in, $nin           non-empty array of primitives
  $exists             boolean
  $and, $or           non-empty array of filters
  a bare value        implicit $eq: {"genre": "documentary"}
  $startsWith         string; only on ENHANCED indexes (s3-vectors-index-mode.html)
Filtering on a non-filterable key is a 400 (s3-vectors-query.html).

Choices where AWS is silent (documented, and each the stricter reading where one exists):
  * A filter object holds exactly one key (a field or $and/$or), and an operator object exactly one
    operator: flat multi-key objects were answered "Invalid query filter" (mem0 PR #4554); use $and.
  * Types compare strictly: true never equals 1, "1" never equals 1; numbers compare by value.
  * Ordering operators match numbers only (an array value matches if any element does).
  * $ne and $nin match vectors that lack the key (MongoDB semantics, whose syntax this is), and an
    array value matches $ne/$nin only if no element equals the operand.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from s3vectors_local.errors import ValidationError

Predicate = Callable[[dict[str, Any]], bool]

# How deeply $and/$or may nest. AWS documents no limit; filters are evaluated recursively here, and a
# nesting of a few hundred levels (valid JSON) would exhaust Python's stack and fail as a 500 (found by
# tests/reliability/test_fuzz.py). Real filters nest a few levels; deeper ones are refused as invalid.
MAX_FILTER_DEPTH = 64

_COMPARE = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", "$startsWith", *_COMPARE})


def _invalid(why: str) -> ValidationError:
    return ValidationError.at("/filter", f"Invalid query filter: {why}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_primitive(v: Any) -> bool:
    return isinstance(v, str | bool) or _is_number(v)


def _same(a: Any, b: Any) -> bool:
    """Equality without Python's True == 1 and with numbers compared by value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return bool(_is_number(a) and _is_number(b) and a == b)


def _values(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


class Filter:
    """A parsed filter: ``matches(metadata)`` and ``constraints`` (the number of leaf conditions)."""

    def __init__(
        self,
        document: Any,
        non_filterable: Collection[str] = (),
        allow_starts_with: bool = False,
    ) -> None:
        self._non_filterable = set(non_filterable)
        self._allow_starts_with = allow_starts_with
        self.constraints = 0
        self.keys: set[str] = set()
        self.matches: Predicate = self._node(document, 1)

    def _node(self, node: Any, depth: int) -> Predicate:
        if depth > MAX_FILTER_DEPTH:
            raise _invalid(f"filters may nest $and/$or at most {MAX_FILTER_DEPTH} levels deep")
        if not isinstance(node, dict) or not node:
            raise _invalid("each filter must be a non-empty JSON object")
        if len(node) != 1:
            raise _invalid(
                f"a filter object must have exactly one key, got {sorted(node)}; combine conditions with $and"
            )
        ((key, value),) = node.items()
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise _invalid(f"{key} takes a non-empty array of filters")
            parts = [self._node(v, depth + 1) for v in value]
            if key == "$and":
                return lambda md: all(p(md) for p in parts)
            return lambda md: any(p(md) for p in parts)
        if key.startswith("$"):
            raise _invalid(f"unsupported operator {key!r} at the top of a filter")
        if key in self._non_filterable:
            raise ValidationError.at(
                "/filter", f"Invalid query filter: metadata key {key!r} is non-filterable and cannot be used"
            )
        self.keys.add(key)
        self.constraints += 1
        if isinstance(value, dict):
            if len(value) != 1:
                raise _invalid(f"the condition on {key!r} must hold exactly one operator")
            ((op, operand),) = value.items()
            return self._condition(key, op, operand)
        return self._condition(key, "$eq", value)

    def _condition(self, key: str, op: str, x: Any) -> Predicate:
        missing = object()
        if op not in OPERATORS:
            raise _invalid(f"unsupported operator {op!r} on {key!r}")
        if op == "$startsWith" and not self._allow_starts_with:
            raise _invalid("$startsWith is supported only on vector indexes in ENHANCED mode")
        if op in ("$eq", "$ne"):
            if not _is_primitive(x):
                raise _invalid(f"{op} on {key!r} takes a string, number or boolean")
            if op == "$eq":
                return lambda md: (v := md.get(key, missing)) is not missing and any(
                    _same(e, x) for e in _values(v)
                )
            return lambda md: (v := md.get(key, missing)) is missing or not any(_same(e, x) for e in _values(v))
        if op in _COMPARE:
            if not _is_number(x):
                raise _invalid(f"{op} on {key!r} takes a number")
            cmp = _COMPARE[op]
            return lambda md: any(_is_number(e) and cmp(e, x) for e in _values(md.get(key)))
        if op in ("$in", "$nin"):
            if not isinstance(x, list) or not x or not all(_is_primitive(e) for e in x):
                raise _invalid(f"{op} on {key!r} takes a non-empty array of strings, numbers or booleans")
            operands = list(x)

            def inside(md: dict[str, Any]) -> bool:
                v = md.get(key, missing)
                return v is not missing and any(_same(e, o) for e in _values(v) for o in operands)

            return inside if op == "$in" else (lambda md: not inside(md))
        if op == "$exists":
            if not isinstance(x, bool):
                raise _invalid(f"$exists on {key!r} takes a boolean")
            return lambda md: (key in md) == x
        # $startsWith
        if not isinstance(x, str):
            raise _invalid(f"$startsWith on {key!r} takes a string")
        return lambda md: any(isinstance(e, str) and e.startswith(x) for e in _values(md.get(key)))
