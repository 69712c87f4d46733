"""State shared by all operations: the store, the lock, loaded matrices, ARNs and name resolution."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from s3vectors_local import limits
from s3vectors_local.errors import NotFoundError, ValidationError
from s3vectors_local.matrix import IndexMatrix
from s3vectors_local.rwlock import RWLock
from s3vectors_local.store import Store

_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws[-a-z0-9]*):s3vectors:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"bucket/(?P<bucket>[^/]+)(?:/index/(?P<index>[^/]+))?$"
)


def parse_arn(arn: str) -> dict[str, str | None] | None:
    m = _ARN_RE.match(arn)
    return m.groupdict() if m else None


def index_ref(params: dict[str, Any]) -> str | None:
    """``bucket/index`` named by a request (by ARN or by names), without touching the store."""
    if params.get("indexArn"):
        parts = parse_arn(params["indexArn"])
        return f"{parts['bucket']}/{parts['index']}" if parts and parts["index"] else None
    if params.get("vectorBucketName") and params.get("indexName"):
        return f"{params['vectorBucketName']}/{params['indexName']}"
    return None


class ServiceBase:
    def __init__(
        self,
        data_dir: Path,
        *,
        account_id: str = "123456789012",
        region: str = "us-east-1",
        partition: str = "aws",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = Store(data_dir)
        self.lock = RWLock()
        self.account_id = account_id
        self.region = region
        self.partition = partition
        self.clock = clock
        self._matrices: dict[int, IndexMatrix] = {}
        self._matrices_lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    # -- ARNs --------------------------------------------------------------------------------------
    def bucket_arn(self, bucket: str) -> str:
        return f"arn:{self.partition}:s3vectors:{self.region}:{self.account_id}:bucket/{bucket}"

    def index_arn(self, bucket: str, index: str) -> str:
        return f"{self.bucket_arn(bucket)}/index/{index}"

    def _own_arn(self, arn: str, member: str) -> dict[str, str | None]:
        parts = parse_arn(arn)
        if parts is None:
            raise ValidationError.at(f"/{member}", f"Invalid ARN: {arn}")
        if (parts["partition"], parts["region"], parts["account"]) != (
            self.partition,
            self.region,
            self.account_id,
        ):
            raise NotFoundError(f"The specified resource does not exist: {arn}")
        return parts

    # -- resolving a request's bucket or index ----------------------------------------------------------
    def bucket_name(self, params: dict[str, Any]) -> str:
        name, arn = params.get("vectorBucketName"), params.get("vectorBucketArn")
        if bool(name) == bool(arn):
            raise ValidationError.at(
                "/vectorBucketName", "Specify exactly one of vectorBucketName or vectorBucketArn"
            )
        if arn:
            parts = self._own_arn(arn, "vectorBucketArn")
            if parts["index"] is not None:
                raise ValidationError.at("/vectorBucketArn", f"Not a vector bucket ARN: {arn}")
            return str(parts["bucket"])
        return str(name)

    def get_bucket(self, conn: sqlite3.Connection, params: dict[str, Any]) -> sqlite3.Row:
        name = self.bucket_name(params)
        row = Store.bucket(conn, name)
        if row is None:
            raise NotFoundError(f"The specified vector bucket could not be found: {name}")
        return row

    def get_index(self, conn: sqlite3.Connection, params: dict[str, Any]) -> sqlite3.Row:
        arn = params.get("indexArn")
        if arn:
            if params.get("vectorBucketName") or params.get("indexName"):
                raise ValidationError.at(
                    "/indexArn", "Specify either indexArn or vectorBucketName and indexName, not both"
                )
            parts = self._own_arn(arn, "indexArn")
            bucket, index = str(parts["bucket"]), parts["index"]
            if index is None:
                raise ValidationError.at("/indexArn", f"Not a vector index ARN: {arn}")
        else:
            bucket, index = str(params.get("vectorBucketName") or ""), params.get("indexName")
            if not bucket or not index:
                raise ValidationError.at(
                    "/indexName", "Specify either indexArn or both vectorBucketName and indexName"
                )
        if Store.bucket(conn, bucket) is None:
            raise NotFoundError(f"The specified vector bucket could not be found: {bucket}")
        row = Store.index(conn, bucket, index)
        if row is None:
            raise NotFoundError(f"The specified index could not be found: {index}")
        return row

    def bucket_policy(self, bucket: str) -> str | None:
        """The bucket's policy JSON, if it has one (for iam.Authorizer)."""
        with self.store.read() as conn:
            row = Store.bucket(conn, bucket)
        return None if row is None else row["policy"]

    # -- in-memory matrices ---------------------------------------------------------------------------
    def matrix(self, index: sqlite3.Row) -> IndexMatrix:
        """The index's matrix, loading it from SQLite on first use (callers hold a read or write lock)."""
        with self._matrices_lock:
            m = self._matrices.get(index["id"])
            if m is None:
                m = IndexMatrix(index["dimension"], index["metric"])
                with self.store.read() as conn:
                    batch_keys: list[str] = []
                    batch: list[bytes] = []
                    for row in Store.all_vectors(conn, index["id"], with_metadata=False):
                        batch_keys.append(row["key"])
                        batch.append(row["data"])
                        if len(batch) == 65536:
                            self._load(m, batch_keys, batch)
                            batch_keys, batch = [], []
                    self._load(m, batch_keys, batch)
                self._matrices[index["id"]] = m
            return m

    @staticmethod
    def _load(m: IndexMatrix, keys: list[str], blobs: list[bytes]) -> None:
        if keys:
            arr = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(keys), m.dimension)
            m.upsert(keys, arr)

    def loaded_matrix(self, index_id: int) -> IndexMatrix | None:
        with self._matrices_lock:
            return self._matrices.get(index_id)

    def forget_matrix(self, index_id: int) -> None:
        with self._matrices_lock:
            self._matrices.pop(index_id, None)

    def ensure_metadata(self, index: sqlite3.Row, m: IndexMatrix) -> list[dict[str, Any]]:
        """Filterable metadata per matrix row, loaded when a filter first needs it."""
        with m.lock:
            if m.meta is None:
                non_filterable = set(json.loads(index["non_filterable"]))
                meta: list[dict[str, Any]] = [{}] * len(m)
                with self.store.read() as conn:
                    for row in Store.all_metadata(conn, index["id"]):
                        pos = m.pos.get(row["key"])
                        if pos is not None and row["metadata"]:
                            md = json.loads(row["metadata"])
                            meta[pos] = {k: v for k, v in md.items() if k not in non_filterable}
                m.meta = meta
            return m.meta

    def bucket_created_before_enhanced(self, bucket: sqlite3.Row) -> bool:
        return bool(bucket["created"] < limits.ENHANCED_DEFAULT_SINCE.timestamp())
