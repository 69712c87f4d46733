"""Durable state in SQLite (WAL) under the data dir: buckets, indexes, vectors, tags, policies.

Durability: journal_mode=WAL with synchronous=FULL makes SQLite fsync the WAL at every commit, so a
write the server has acknowledged survives kill -9 and power loss (https://sqlite.org/pragma.html
#pragma_synchronous). Each request runs in one transaction (``write()``), so it is all-or-nothing.
Concurrency: one writer connection, used only under the service's write lock, and a small pool of
reader connections; WAL lets readers run beside the writer and see only committed data.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    arn TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    sse_type TEXT NOT NULL,
    kms_key_arn TEXT,
    default_index_mode TEXT NOT NULL,
    policy TEXT
);
CREATE TABLE IF NOT EXISTS indexes (
    id INTEGER PRIMARY KEY,
    bucket TEXT NOT NULL REFERENCES buckets(name),
    name TEXT NOT NULL,
    arn TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    data_type TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    metric TEXT NOT NULL,
    non_filterable TEXT NOT NULL,
    text_search TEXT NOT NULL,
    sse_type TEXT NOT NULL,
    kms_key_arn TEXT,
    index_mode TEXT NOT NULL,
    UNIQUE (bucket, name)
);
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY,
    index_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    seg INTEGER NOT NULL,
    data BLOB NOT NULL,
    metadata TEXT,
    UNIQUE (index_id, key)
);
CREATE INDEX IF NOT EXISTS vectors_in_order ON vectors (index_id, id);
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (arn, key)
);
"""

_READERS = 4


def segment_hash(key: str) -> int:
    """Stable hash that assigns a key to a ListVectors segment (the same key, the same segment)."""
    return zlib.crc32(key.encode("utf-8"))


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Store:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "s3vectors.sqlite3"
        self._writer = _connect(self.path)
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.executescript(_SCHEMA)
        self._readers: queue.Queue[sqlite3.Connection] = queue.Queue()
        for _ in range(_READERS):
            self._readers.put(_connect(self.path))

    def close(self) -> None:
        self._writer.close()
        while not self._readers.empty():
            self._readers.get_nowait().close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; callers hold the service write lock, so BEGIN IMMEDIATE never waits."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A reader connection in one read transaction (a consistent snapshot)."""
        conn = self._readers.get()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        finally:
            self._readers.put(conn)

    # -- buckets ---------------------------------------------------------------------------------
    @staticmethod
    def bucket(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
        return conn.execute("SELECT * FROM buckets WHERE name = ?", (name,)).fetchone()

    @staticmethod
    def list_buckets(conn: sqlite3.Connection, prefix: str, after: str, limit: int) -> list[sqlite3.Row]:
        return conn.execute(
            "SELECT * FROM buckets WHERE name > ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
            (after, len(prefix), prefix, limit),
        ).fetchall()

    @staticmethod
    def count(conn: sqlite3.Connection, sql: str, *args: Any) -> int:
        return int(conn.execute(sql, args).fetchone()[0])

    # -- indexes ---------------------------------------------------------------------------------
    @staticmethod
    def index(conn: sqlite3.Connection, bucket: str, name: str) -> sqlite3.Row | None:
        return conn.execute("SELECT * FROM indexes WHERE bucket = ? AND name = ?", (bucket, name)).fetchone()

    @staticmethod
    def list_indexes(
        conn: sqlite3.Connection, bucket: str, prefix: str, after: str, limit: int
    ) -> list[sqlite3.Row]:
        return conn.execute(
            "SELECT * FROM indexes WHERE bucket = ? AND name > ? AND substr(name, 1, ?) = ? "
            "ORDER BY name LIMIT ?",
            (bucket, after, len(prefix), prefix, limit),
        ).fetchall()

    # -- vectors ---------------------------------------------------------------------------------
    @staticmethod
    def put_vectors(conn: sqlite3.Connection, index_id: int, rows: list[tuple[str, bytes, str | None]]) -> None:
        # ON CONFLICT DO UPDATE keeps the row id, so an overwritten vector keeps its place in
        # ListVectors' order and a listing in progress neither repeats nor skips it.
        conn.executemany(
            "INSERT INTO vectors (index_id, key, seg, data, metadata) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (index_id, key) DO UPDATE SET data = excluded.data, metadata = excluded.metadata",
            [(index_id, key, segment_hash(key), data, md) for key, data, md in rows],
        )

    @staticmethod
    def delete_vectors(conn: sqlite3.Connection, index_id: int, keys: list[str]) -> None:
        conn.executemany("DELETE FROM vectors WHERE index_id = ? AND key = ?", [(index_id, k) for k in keys])

    @staticmethod
    def get_vectors(conn: sqlite3.Connection, index_id: int, keys: list[str]) -> dict[str, sqlite3.Row]:
        out: dict[str, sqlite3.Row] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(
                f"SELECT key, data, metadata FROM vectors WHERE index_id = ? AND key IN ({marks})",
                (index_id, *chunk),
            ):
                out[row["key"]] = row
        return out

    @staticmethod
    def scan_vectors(
        conn: sqlite3.Connection, index_id: int, after_id: int, segments: tuple[int, int] | None
    ) -> Iterator[sqlite3.Row]:
        """Vectors in insertion (row id) order after ``after_id``, optionally one segment of them."""
        if segments is None:
            yield from conn.execute(
                "SELECT id, key, data, metadata FROM vectors WHERE index_id = ? AND id > ? ORDER BY id",
                (index_id, after_id),
            )
        else:
            count, which = segments
            yield from conn.execute(
                "SELECT id, key, data, metadata FROM vectors WHERE index_id = ? AND id > ? AND seg % ? = ? "
                "ORDER BY id",
                (index_id, after_id, count, which),
            )

    @staticmethod
    def all_vectors(conn: sqlite3.Connection, index_id: int, with_metadata: bool) -> Iterator[sqlite3.Row]:
        cols = "key, data, metadata" if with_metadata else "key, data"
        yield from conn.execute(f"SELECT {cols} FROM vectors WHERE index_id = ?", (index_id,))

    @staticmethod
    def all_metadata(conn: sqlite3.Connection, index_id: int) -> Iterator[sqlite3.Row]:
        yield from conn.execute("SELECT key, metadata FROM vectors WHERE index_id = ?", (index_id,))

    # -- tags --------------------------------------------------------------------------------------
    @staticmethod
    def tags(conn: sqlite3.Connection, arn: str) -> dict[str, str]:
        return {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM tags WHERE arn = ?", (arn,))}

    @staticmethod
    def set_tags(conn: sqlite3.Connection, arn: str, tags: dict[str, str]) -> None:
        conn.executemany(
            "INSERT INTO tags (arn, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (arn, key) DO UPDATE SET value = excluded.value",
            [(arn, k, v) for k, v in tags.items()],
        )


def dumps(value: Any) -> str:
    """Compact JSON, the form whose UTF-8 size the metadata limits count (see limits.py)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
