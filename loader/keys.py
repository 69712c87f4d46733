"""Deterministic vector keys: ``<source path>#<chunk ordinal>``, e.g. ``baggage/checked.md#0003``.

Why this shape:

* the full path relative to the corpus root (not the basename) cannot collide between
  ``baggage/faq.md`` and ``pets/faq.md``, and does not change from run to run (unlike UUIDs), so a
  re-run overwrites instead of duplicating;
* the ordinal is the last ``#``-separated field and contains only digits, so ``source`` is everything
  before the last ``#`` (``a#b.md#0001`` is unambiguous) and keys of one document sort together;
* S3 Vectors keys are 1-1,024 characters (botocore model ``VectorKey``); counting UTF-8 *bytes*
  keeps us under the limit whichever way it is counted. A longer path keeps a readable prefix cut at a
  UTF-8 boundary and adds a hash of the full path: ``<prefix>~<sha256[:16]>#0003``.

Paths are NFC-normalized: macOS file systems hand out NFD names, Linux keeps what was written, and the
same document must get the same key on both.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_KEY_BYTES = 1024
SEPARATOR = "#"
HASH_MARK = "~"
ORDINAL_WIDTH = 4
_HASHED = re.compile(r"~[0-9a-f]{16}$")
_HASHED_KEY = re.compile(r"~([0-9a-f]{16})#[0-9]+$")


def normalize_source(source: str) -> str:
    return unicodedata.normalize("NFC", source)


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``max_bytes`` (never splits a character)."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max(0, max_bytes)].decode("utf-8", errors="ignore")


def vector_key(source: str, ordinal: int) -> str:
    if ordinal < 0:
        raise ValueError(f"chunk ordinal must be >= 0, got {ordinal}")
    source = normalize_source(source)
    suffix = f"{SEPARATOR}{ordinal:0{ORDINAL_WIDTH}d}"
    key = source + suffix
    if len(key.encode("utf-8")) <= MAX_KEY_BYTES:
        return key
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    tail = f"{HASH_MARK}{digest}{suffix}"
    return truncate_utf8(source, MAX_KEY_BYTES - len(tail.encode("utf-8"))) + tail


def split_key(key: str) -> tuple[str, int] | None:
    """``(source, ordinal)`` of a key made by :func:`vector_key` without hashing, else None.

    Hashed keys cannot be reversed; use the vector's ``source`` metadata, which every vector has.
    """
    source, sep, ordinal = key.rpartition(SEPARATOR)
    if not sep or not source or not ordinal.isascii() or not ordinal.isdigit():
        return None
    if _HASHED.search(source) and len(key.encode("utf-8")) > MAX_KEY_BYTES - 4:
        return None  # "<prefix>~<hash>#n" cut to the limit: a long path's key, not this literal path's
    if vector_key(source, int(ordinal)) != key:
        return None
    return source, int(ordinal)


def source_digest(source: str) -> str:
    """The first 16 hex digits of the path's SHA-256: the hash in a long path's keys, and the number
    ``--shard`` divides (``loader.sharding``)."""
    return hashlib.sha256(normalize_source(source).encode("utf-8")).hexdigest()[:16]


def key_digest(key: str) -> str | None:
    """The path hash carried by a long path's key (``<prefix>~<hash>#0003``), or None for a plain key.

    A stored vector of a long path may have its ``source`` metadata cut to fit the 2 KB filterable
    limit; the key's hash still identifies the full path it was made from.
    """
    match = _HASHED_KEY.search(key)
    if match is None or split_key(key) is not None:
        return None
    return match[1]
