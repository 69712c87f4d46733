"""Documents from an S3 prefix (``s3://bucket/prefix/``), streamed one object at a time.

Objects are listed page by page (ListObjectsV2, in key order) and each is read only when its turn
comes, so a corpus of millions of objects is never held in memory or on disk. The ``source`` of a
document is its key relative to the prefix, exactly as for a local folder, so the same corpus loaded
from a folder or from S3 gets the same vector keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loader.documents import (
    DEFAULT_MAX_FILE_SIZE,
    EMPTY,
    SUPPORTED_SUFFIXES,
    TOO_LARGE,
    UNREADABLE,
    UNSUPPORTED,
    DocumentError,
    document_from_bytes,
    unparsed_if_unchanged,
)
from loader.errors import UsageError
from loader.keys import normalize_source
from loader.records import Document, Skipped
from loader.sharding import ALL, Shard


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def is_s3_uri(text: str) -> bool:
    return text.startswith("s3://")


def parse_s3_uri(uri: str) -> S3Location:
    rest = uri[len("s3://") :] if is_s3_uri(uri) else ""
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UsageError(f"expected s3://bucket/prefix/, got {uri!r}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # a prefix names a folder: s3://b/docs must not also match s3://b/docs-old/...
    return S3Location(bucket, prefix)


def read_s3_documents(
    location: S3Location,
    s3: Any,
    *,
    strict: bool = False,
    shard: Shard = ALL,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    on_listed: Callable[[str, bool], None] | None = None,
    unchanged: Callable[[str, str], bool] | None = None,
) -> Iterator[Document | Skipped]:
    """Every object under the prefix as a Document or Skipped, in key order; only ``shard``'s own.

    ``s3`` is a boto3 S3 client. Objects of other shards are neither downloaded nor reported, but each
    listed document (of any shard) is passed to ``on_listed`` with whether it is one to read (a
    supported type, not empty, not too large). ``unchanged(source, sha256 of the
    bytes)``, if given, spares parsing an object the index already holds: it comes back as a Document
    with that hash and no text (see ``loader.sync``).
    """
    for key, size in _list(location, s3):
        # NFC, as loader.documents does for file names: the same document gets the same key and metadata
        # whether it was uploaded from macOS (NFD) or Linux.
        source = normalize_source(key[len(location.prefix) :])
        if not is_listed_document(source):
            continue
        readable = is_readable(source, size, max_file_size)
        if on_listed is not None:
            on_listed(source, readable)
        if not shard.owns(source):
            continue
        if "" in source.split("/"):  # "a//b.md" or "/b.md": no file in a folder could have that path
            result: Document | Skipped = Skipped(source, "invalid path (an empty folder name in the key)")
        else:
            result = _read_object(location, s3, key, source, size, max_file_size, unchanged)
        if strict and isinstance(result, Skipped):
            raise DocumentError(result.path, result.reason)
        yield result


def is_listed_document(source: str) -> bool:
    """False for folder markers and hidden files or folders: they are ignored, as in a local folder."""
    return bool(source) and not source.endswith("/") and not any(part.startswith(".") for part in source.split("/"))


def is_readable(source: str, size: int, max_file_size: int) -> bool:
    """Whether an object of this name and size is downloaded: a supported type, not empty, not too large."""
    return 0 < size <= max_file_size and source.lower().endswith(_SUFFIXES)


_SUFFIXES = tuple(SUPPORTED_SUFFIXES)


def _list(location: S3Location, s3: Any) -> Iterator[tuple[str, int]]:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
        for item in page.get("Contents", []):
            yield item["Key"], int(item.get("Size", 0))


def _read_object(
    location: S3Location,
    s3: Any,
    key: str,
    source: str,
    size: int,
    max_file_size: int,
    unchanged: Callable[[str, str], bool] | None = None,
) -> Document | Skipped:
    from botocore.exceptions import BotoCoreError, ClientError

    if not source.lower().endswith(_SUFFIXES):
        return Skipped(source, UNSUPPORTED)
    if size > max_file_size:
        return Skipped(source, f"{TOO_LARGE} (> {max_file_size // (1024 * 1024)} MB)")
    if size == 0:
        return Skipped(source, EMPTY)
    try:
        body = s3.get_object(Bucket=location.bucket, Key=key)["Body"]
        data = body.read(max_file_size + 1)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        return Skipped(source, f"{UNREADABLE}: {code}")
    except BotoCoreError as error:
        return Skipped(source, f"{UNREADABLE}: {error}")
    if unchanged is not None:
        same = unparsed_if_unchanged(source, data, max_file_size, unchanged)
        if same is not None:
            return same
    return document_from_bytes(source, data, max_file_size=max_file_size)
