"""Opaque pagination tokens: base64url JSON tagged with the operation they belong to."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from s3vectors_local.errors import ValidationError


def encode(kind: str, **fields: Any) -> str:
    raw = json.dumps({"t": kind, **fields}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, kind: str, **fields: type) -> dict[str, Any]:
    """The token's fields; ``fields`` names those it must carry, with their types (a forged or corrupted
    token is a 400, never a KeyError or ValueError further on: found by tests/reliability/test_fuzz.py)."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeError):
        data = None
    if not isinstance(data, dict) or data.get("t") != kind or not all(
        isinstance(data.get(name), wanted) and (wanted is bool or not isinstance(data.get(name), bool))
        for name, wanted in fields.items()
    ):
        raise ValidationError.at("/nextToken", "The provided pagination token is invalid")
    return data
