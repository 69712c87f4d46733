"""QueryVectors: exact nearest neighbours, AWS's distance definitions, ordering and paging."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from s3vectors_local import limits
from s3vectors_local.matrix import IndexMatrix


def _brute(vecs: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    v, q64 = vecs.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        return 1.0 - (v @ q64) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q64))
    return np.linalg.norm(v - q64, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_neighbours_over_http(client: Any, make_index: Any, metric: str) -> None:
    rng = np.random.default_rng(7)
    names = make_index(dimension=16, metric=metric)
    vecs = rng.standard_normal((400, 16)).astype(np.float32)
    keys = [f"k{i:03d}" for i in range(400)]
    for i in range(0, 400, 200):
        client.put_vectors(**names, vectors=[{"key": keys[j], "data": {"float32": vecs[j].tolist()}}
                                             for j in range(i, i + 200)])
    for _ in range(5):
        q = rng.standard_normal(16).astype(np.float32)
        got = client.query_vectors(**names, topK=10, queryVector={"float32": q.tolist()}, returnDistance=True)
        assert got["distanceMetric"] == metric
        d = _brute(vecs, q, metric)
        want = sorted(range(400), key=lambda i: (d[i], keys[i]))[:10]
        assert [v["key"] for v in got["vectors"]] == [keys[i] for i in want]
        assert [v["distance"] for v in got["vectors"]] == pytest.approx([d[i] for i in want], abs=1e-6)


def test_distance_definitions(client: Any, make_index: Any) -> None:
    """cosine = 1 - cosine similarity; euclidean = the L2 distance itself, not its square."""
    cos = make_index("cos", dimension=2, metric="cosine")
    euc = make_index("euc", dimension=2, metric="euclidean")
    vectors = [{"key": "x", "data": {"float32": [3.0, 4.0]}}, {"key": "y", "data": {"float32": [-4.0, 3.0]}}]
    client.put_vectors(**cos, vectors=vectors)
    client.put_vectors(**euc, vectors=vectors)
    q = {"queryVector": {"float32": [6.0, 8.0]}, "topK": 2, "returnDistance": True}
    got = {v["key"]: v["distance"] for v in client.query_vectors(**cos, **q)["vectors"]}
    assert got == pytest.approx({"x": 0.0, "y": 1.0}, abs=1e-7)  # same direction; orthogonal
    got = {v["key"]: v["distance"] for v in client.query_vectors(**euc, **q)["vectors"]}
    assert got == pytest.approx({"x": 5.0, "y": float(np.hypot(10.0, 5.0))})


def test_ties_break_by_key_and_flags(client: Any, make_index: Any) -> None:
    names = make_index(dimension=2)
    client.put_vectors(**names, vectors=[
        {"key": k, "data": {"float32": [1.0, 1.0]}, "metadata": {"k": k}} for k in ["d", "b", "a", "c"]
    ])
    got = client.query_vectors(**names, topK=3, queryVector={"float32": [2.0, 2.0]})["vectors"]
    assert got == [{"key": "a"}, {"key": "b"}, {"key": "c"}]  # no distance or metadata unless asked
    got = client.query_vectors(**names, topK=1, queryVector={"float32": [2.0, 2.0]}, returnMetadata=True)
    assert got["vectors"] == [{"key": "a", "metadata": {"k": "a"}}]


def test_query_vector_is_validated(client: Any, make_index: Any) -> None:
    names = make_index(dimension=3, metric="cosine")
    for bad in ([1.0, 2.0], [0.0, 0.0, 0.0], [float("nan"), 1.0, 1.0]):
        with pytest.raises(client.exceptions.ValidationException):
            client.query_vectors(**names, topK=1, queryVector={"float32": bad})
    with pytest.raises(client.exceptions.NotFoundException):
        client.query_vectors(vectorBucketName="bkt", indexName="gone", topK=1, queryVector={"float32": [1, 1, 1]})


def test_full_text_search_is_refused_clearly(client: Any, make_index: Any) -> None:
    names = make_index(dimension=3)
    with pytest.raises(client.exceptions.ValidationException) as e:
        client.query_vectors(**names, topK=1, queryTexts=[{"text": "hello", "metadataKey": "body"}])
    assert "NotImplemented" in e.value.response["Error"]["Message"]


def test_top_k_beyond_a_page_is_paginated(client: Any, make_index: Any) -> None:
    rng = np.random.default_rng(1)
    names = make_index(dimension=4, metric="euclidean")
    vecs = rng.standard_normal((250, 4)).astype(np.float32)
    client.put_vectors(**names, vectors=[{"key": f"k{i:03d}", "data": {"float32": vecs[i].tolist()},
                                          "metadata": {"i": i}} for i in range(250)])
    q = {"queryVector": {"float32": [0.0, 0.0, 0.0, 0.0]}, "topK": 230, "returnDistance": True,
         "returnMetadata": True}
    pages = list(client.get_paginator("query_vectors").paginate(**names, **q))
    assert [len(p["vectors"]) for p in pages] == [limits.QUERY_PAGE_SIZE, limits.QUERY_PAGE_SIZE, 30]
    got = [v for p in pages for v in p["vectors"]]
    dist = np.linalg.norm(vecs.astype(np.float64), axis=1)
    want = sorted(range(250), key=lambda i: (dist[i], f"k{i:03d}"))[:230]
    assert [v["key"] for v in got] == [f"k{i:03d}" for i in want]
    assert all(v["metadata"] == {"i": int(v["key"][1:])} for v in got)
    # Later pages come from the first request's snapshot: writes in between do not shift them.
    first = client.query_vectors(**names, **q)
    client.delete_vectors(**names, keys=[got[150]["key"]])
    second = client.query_vectors(**names, **q, nextToken=first["nextToken"])
    assert [v["key"] for v in second["vectors"]] == [v["key"] for v in got[100:200]]
    # Every page must repeat the query.
    with pytest.raises(client.exceptions.ValidationException):
        client.query_vectors(**names, **{**q, "topK": 229}, nextToken=first["nextToken"])
    with pytest.raises(client.exceptions.ValidationException):
        client.query_vectors(**names, **q, nextToken="bm90LWEtdG9rZW4")


def test_query_sessions_expire(ep: Any, make_index: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    names = make_index(dimension=1)
    client.put_vectors(**names, vectors=[{"key": f"k{i}", "data": {"float32": [float(i + 1)]}} for i in range(150)])
    q = {"queryVector": {"float32": [1.0]}, "topK": 150}
    first = client.query_vectors(**names, **q)
    now = ep.service.clock()
    monkeypatch.setattr(ep.service, "clock", lambda: now + limits.QUERY_TOKEN_TTL_S + 1)
    with pytest.raises(client.exceptions.ValidationException):
        client.query_vectors(**names, **q, nextToken=first["nextToken"])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matrix_matches_brute_force_with_near_ties(metric: str) -> None:
    """The float32 pre-selection never drops a true neighbour, even among near-duplicates."""
    rng = np.random.default_rng(3)
    m = IndexMatrix(64, metric)
    base = rng.standard_normal(64).astype(np.float32) * 100
    vecs = (base + rng.standard_normal((3000, 64)).astype(np.float32) * 1e-3).astype(np.float32)
    vecs[::7] = base  # many exact duplicates
    keys = [f"{i:05d}" for i in range(3000)]
    m.upsert(keys, vecs)
    m.delete(keys[:500:3])
    alive = [i for i in range(3000) if keys[i] not in set(keys[:500:3])]
    q = (base + rng.standard_normal(64).astype(np.float32) * 1e-3).astype(np.float32)
    d = _brute(vecs[alive], q, metric)
    want = sorted(range(len(alive)), key=lambda j: (d[j], keys[alive[j]]))[:50]
    got = m.search(q, 50)
    assert [k for k, _ in got] == [keys[alive[j]] for j in want]
    mask = np.zeros(len(m), dtype=bool)
    mask[::2] = True
    allowed = {m.keys[i] for i in np.flatnonzero(mask)}
    got = m.search(q, 20, mask)
    sub = [j for j in range(len(alive)) if keys[alive[j]] in allowed]
    want_sub = sorted(sub, key=lambda j: (d[j], keys[alive[j]]))[:20]
    assert [k for k, _ in got] == [keys[alive[j]] for j in want_sub]
