"""Validate requests against botocore's own s3vectors service model (no retyped constraints).

Checks what a Smithy server checks before an operation runs: required members, types, string
lengths (in Unicode code points), list/map sizes, integer ranges, enums, patterns and unions.
Failures are collected and returned as one ValidationException whose ``fieldList`` holds a
JSON-pointer path and a message per failure, the shape of Smithy's ValidationException.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import unicodedata
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from s3vectors_local.errors import ValidationError

# rest-json sends non-finite floats as these strings (botocore/serialize.py _serialize_type_float).
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("s3vectors")


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


@functools.cache
def _category_ranges(prefix: str) -> str:
    """A regex class body covering every code point whose Unicode category starts with ``prefix``."""
    parts: list[str] = []
    start = prev = -2
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith(prefix):
            if cp != prev + 1:
                if start >= 0:
                    parts.append(_range(start, prev))
                start = cp
            prev = cp
    if start >= 0:
        parts.append(_range(start, prev))
    return "".join(parts)


def _range(a: int, b: int) -> str:
    return re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"


@functools.cache
def _compile(pattern: str) -> re.Pattern[str]:
    """Translate the model's (ECMA 262 / Java) pattern to Python: ``\\p{X}`` has no ``re`` form."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        m = re.match(r"\\p\{([A-Za-z])\}", pattern[i:])
        if m:
            body = _category_ranges(m.group(1))
            out.append(body if in_class else f"[{body}]")
            i += m.end()
            continue
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return re.compile("".join(out))


class _Validator:
    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append({"path": path or "/", "message": f"Value at '{path or '/'}' failed to satisfy "
                            f"constraint: {message}"})

    def check(self, shape: Shape, value: Any, path: str) -> Any:
        kind = shape.type_name
        if shape.metadata.get("document"):
            return value  # free-form JSON; its meaning is checked by the operation
        handler = getattr(self, f"_{kind}", None)
        if handler is None:  # pragma: no cover - the model has no other input types
            return value
        return handler(shape, value, path)

    def _length(self, shape: Shape, n: int, path: str, what: str) -> None:
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and hi is not None and not lo <= n <= hi:
            self.fail(path, f"Member must have {what} between {lo} and {hi}, inclusive")
        elif lo is not None and hi is None and n < lo:
            self.fail(path, f"Member must have {what} greater than or equal to {lo}")
        elif hi is not None and lo is None and n > hi:
            self.fail(path, f"Member must have {what} less than or equal to {hi}")

    def _structure(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, "Member must be a structure")
            return value
        members = shape.members
        out: dict[str, Any] = {}
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail(f"{path}/{name}", "Member must not be null")
        set_members = [n for n in members if value.get(n) is not None]
        if shape.metadata.get("union") and len(set_members) != 1:
            self.fail(path, f"Member must have exactly one of {sorted(members)} set")
        for name in set_members:
            out[name] = self.check(members[name], value[name], f"{path}/{name}")
        return out  # unknown members are ignored, as Smithy servers do

    def _list(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            self.fail(path, "Member must be a list")
            return value
        self._length(shape, len(value), path, "length")
        member = shape.member
        if member.type_name == "float" and set(map(type, value)) <= {float, int}:
            return value  # fast path for vector data: already plain JSON numbers
        return [self.check(member, v, f"{path}/{i}") for i, v in enumerate(value)]

    def _map(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, "Member must be a map")
            return value
        self._length(shape, len(value), path, "length")
        key_shape, value_shape = shape.key, shape.value
        return {
            self.check(key_shape, k, f"{path}/{k}"): self.check(value_shape, v, f"{path}/{k}")
            for k, v in value.items()
        }

    def _string(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            self.fail(path, "Member must be a string")
            return value
        self._length(shape, len(value), path, "length")
        if shape.enum and value not in shape.enum:
            self.fail(path, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = shape.metadata.get("pattern")
        # Smithy patterns are not implicitly anchored, but every pattern in this model describes a whole
        # value (ARNs; tag keys/values, whose AWS rule allows only letters, numbers, spaces and _.:/=+-@),
        # and an unanchored "(...*)" would accept anything. Matching the whole value is the stricter reading.
        if pattern and not _compile(pattern).fullmatch(value):
            self.fail(path, f"Member must satisfy regular expression pattern: {pattern}")
        return value

    def _integer(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "Member must be an integer")
            return value
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and hi is not None and not lo <= value <= hi:
            self.fail(path, f"Member must have value between {lo} and {hi}, inclusive")
        elif lo is not None and value < lo:
            self.fail(path, f"Member must have value greater than or equal to {lo}")
        elif hi is not None and value > hi:
            self.fail(path, f"Member must have value less than or equal to {hi}")
        return value

    _long = _integer

    def _float(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, str) and value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, "Member must be a number")
            return value
        return float(value)

    _double = _float

    def _boolean(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            self.fail(path, "Member must be a boolean")
        return value


def validate_input(operation_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Return the request's members, normalised; raise ValidationError listing every failure."""
    shape = operation(operation_name).input_shape
    if shape is None:  # pragma: no cover - every s3vectors operation has an input
        return {}
    v = _Validator()
    out = v.check(shape, params, "")
    if v.errors:
        n = len(v.errors)
        summary = "; ".join(e["message"] for e in v.errors)
        raise ValidationError(
            f"{n} validation error{'s' if n > 1 else ''} detected: {summary}", field_list=v.errors
        )
    return out
