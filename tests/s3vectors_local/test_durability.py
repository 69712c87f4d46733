"""Data survives restarts and kill -9; concurrent clients are safe; one server per data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from s3vectors_local import LocalEndpoint
from tests.s3vectors_local.support import wait_for_endpoint


def _setup(c: Any) -> dict[str, str]:
    c.create_vector_bucket(vectorBucketName="bkt")
    c.create_index(vectorBucketName="bkt", indexName="idx", dataType="float32", dimension=2,
                   distanceMetric="euclidean", metadataConfiguration={"nonFilterableMetadataKeys": ["t"]})
    return {"vectorBucketName": "bkt", "indexName": "idx"}


def test_data_survives_restart(tmp_path: Path) -> None:
    with LocalEndpoint(data_dir=tmp_path) as ep:
        c = ep.client(max_attempts=1)
        names = _setup(c)
        c.put_vectors(**names, vectors=[{"key": f"k{i}", "data": {"float32": [float(i), 0.0]},
                                         "metadata": {"n": i, "t": "x"}} for i in range(10)])
        c.delete_vectors(**names, keys=["k3"])
        c.query_vectors(**names, topK=1, queryVector={"float32": [0.0, 0.0]})  # matrix loaded, then dropped
        c.tag_resource(resourceArn=c.get_index(**names)["index"]["indexArn"], tags={"a": "b"})
    with LocalEndpoint(data_dir=tmp_path) as ep:
        c = ep.client(max_attempts=1)
        idx = c.get_index(**names)["index"]
        assert idx["metadataConfiguration"] == {"nonFilterableMetadataKeys": ["t"]}
        assert c.list_tags_for_resource(resourceArn=idx["indexArn"])["tags"] == {"a": "b"}
        got = c.query_vectors(**names, topK=3, queryVector={"float32": [2.9, 0.0]}, filter={"n": {"$gte": 2}})
        assert [v["key"] for v in got["vectors"]] == ["k2", "k4", "k5"]
        assert len(c.list_vectors(**names)["vectors"]) == 9


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "s3vectors_local", "serve", "--port", "0",
                             "--data-dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        info = wait_for_endpoint(tmp_path, proc)
        from s3vectors_local.endpoint import make_client

        c = make_client(info["endpoint_url"], max_attempts=1)
        names = _setup(c)
        for i in range(20):
            c.put_vectors(**names, vectors=[{"key": f"k{i}", "data": {"float32": [float(i), 1.0]}}])
        os.kill(proc.pid, signal.SIGKILL)  # no chance to flush or close anything
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with LocalEndpoint(data_dir=tmp_path) as ep:
        c = ep.client(max_attempts=1)
        keys = {v["key"] for v in c.list_vectors(**names)["vectors"]}
        assert keys == {f"k{i}" for i in range(20)}


def test_concurrent_writers_and_readers(ep: LocalEndpoint) -> None:
    c = ep.client(max_attempts=1)
    names = _setup(c)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            cw = ep.client(max_attempts=1)
            for batch in range(10):
                cw.put_vectors(**names, vectors=[
                    {"key": f"w{w}-{batch}-{i}", "data": {"float32": [float(w), float(i)]}} for i in range(20)
                ])
                cw.delete_vectors(**names, keys=[f"w{w}-{batch}-0"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        try:
            cr = ep.client(max_attempts=1)
            for _ in range(30):
                cr.query_vectors(**names, topK=5, queryVector={"float32": [1.0, 1.0]})
                cr.list_vectors(**names, maxResults=50)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)] + [
        threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    listed = [v["key"] for p in c.get_paginator("list_vectors").paginate(**names) for v in p["vectors"]]
    assert sorted(listed) == sorted(f"w{w}-{b}-{i}" for w in range(4) for b in range(10) for i in range(1, 20))
    # The in-memory matrix agrees with the database.
    pages = c.get_paginator("query_vectors").paginate(**names, topK=10000, queryVector={"float32": [0.0, 0.0]})
    assert sorted(v["key"] for p in pages for v in p["vectors"]) == sorted(listed)


def test_one_server_per_data_dir(tmp_path: Path) -> None:
    with LocalEndpoint(data_dir=tmp_path), pytest.raises(RuntimeError, match="already using"):
        LocalEndpoint(data_dir=tmp_path).start()
    with LocalEndpoint(data_dir=tmp_path) as ep:  # released on exit
        assert ep.client().list_vector_buckets()["vectorBuckets"] == []
