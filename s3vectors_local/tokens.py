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


def decode(token: str, kind: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("t") != kind:
        raise ValidationError.at("/nextToken", "The provided pagination token is invalid")
    return data
