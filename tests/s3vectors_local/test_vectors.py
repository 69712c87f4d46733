"""PutVectors, GetVectors, ListVectors and DeleteVectors over HTTP."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _vec(key: str, data: list[float], **metadata: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "data": {"float32": data}}
    if metadata:
        out["metadata"] = metadata
    return out


def test_put_get_overwrite_and_return_flags(client: Any, make_index: Any) -> None:
    names = make_index(dimension=2)
    client.put_vectors(**names, vectors=[_vec("a", [1, 2], genre="x", year=2020), _vec("b", [3, 4])])
    got = client.get_vectors(**names, keys=["a", "b", "missing"])["vectors"]
    assert got == [{"key": "a"}, {"key": "b"}]  # keys only by default; missing keys are left out
    got = client.get_vectors(**names, keys=["b", "a"], returnData=True, returnMetadata=True)["vectors"]
    assert got == [
        {"key": "b", "data": {"float32": [3.0, 4.0]}, "metadata": {}},
        {"key": "a", "data": {"float32": [1.0, 2.0]}, "metadata": {"genre": "x", "year": 2020}},
    ]
    # A put with an existing key replaces the whole vector, metadata included.
    client.put_vectors(**names, vectors=[_vec("a", [5, 6], other=True)])
    got = client.get_vectors(**names, keys=["a"], returnData=True, returnMetadata=True)["vectors"]
    assert got == [{"key": "a", "data": {"float32": [5.0, 6.0]}, "metadata": {"other": True}}]


def test_values_are_stored_as_float32(client: Any, make_index: Any) -> None:
    names = make_index(dimension=3)
    client.put_vectors(**names, vectors=[_vec("a", [0.1, 1e-40, 123456789.123])])
    got = client.get_vectors(**names, keys=["a"], returnData=True)["vectors"][0]["data"]["float32"]
    assert got == np.array([0.1, 1e-40, 123456789.123], dtype=np.float32).tolist()


def test_delete_vectors(client: Any, make_index: Any) -> None:
    names = make_index(dimension=2)
    client.put_vectors(**names, vectors=[_vec(k, [1, 1]) for k in "abc"])
    client.delete_vectors(**names, keys=["a", "c", "never-existed"])  # a missing key is not an error
    assert client.get_vectors(**names, keys=["a", "b", "c"])["vectors"] == [{"key": "b"}]
    q = client.query_vectors(**names, topK=10, queryVector={"float32": [1, 1]})
    assert [v["key"] for v in q["vectors"]] == ["b"]
    with pytest.raises(client.exceptions.NotFoundException):
        client.delete_vectors(vectorBucketName="bkt", indexName="gone", keys=["a"])


def test_delete_index_deletes_its_vectors(client: Any, make_index: Any) -> None:
    names = make_index(dimension=2)
    client.put_vectors(**names, vectors=[_vec("a", [1, 1])])
    client.delete_index(**names)
    make_index(dimension=2)
    assert client.list_vectors(**names)["vectors"] == []
    assert client.query_vectors(**names, topK=5, queryVector={"float32": [1, 1]})["vectors"] == []


def test_list_vectors_flags_and_max_results(client: Any, make_index: Any) -> None:
    names = make_index(dimension=2)
    client.put_vectors(**names, vectors=[_vec(f"k{i}", [i, 1], n=i) for i in range(7)])
    page = client.list_vectors(**names, maxResults=3)
    assert page["vectors"] == [{"key": "k0"}, {"key": "k1"}, {"key": "k2"}]
    page = client.list_vectors(**names, maxResults=3, nextToken=page["nextToken"], returnData=True,
                               returnMetadata=True)
    assert page["vectors"][0] == {"key": "k3", "data": {"float32": [3.0, 1.0]}, "metadata": {"n": 3}}
    last = client.list_vectors(**names, maxResults=3, nextToken=page["nextToken"])
    assert [v["key"] for v in last["vectors"]] == ["k6"] and "nextToken" not in last
    assert len(client.list_vectors(**names)["vectors"]) == 7  # default page of 500
    with pytest.raises(client.exceptions.ValidationException):  # a token belongs to its index
        other = make_index("other", dimension=2)
        client.list_vectors(**other, nextToken=page["nextToken"])


def test_list_vectors_stops_a_page_after_one_megabyte(client: Any, make_index: Any) -> None:
    names = make_index(dimension=4096)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((100, 4096)).astype(np.float32)
    client.put_vectors(**names, vectors=[_vec(f"v{i:03d}", vecs[i].tolist()) for i in range(100)])
    # Each record holds 16 KiB of float32 data: a page stops once 1 MB has been processed.
    page = client.list_vectors(**names, maxResults=1000, returnData=True)
    n = len(page["vectors"])
    assert 60 <= n <= 65 and "nextToken" in page
    rest = client.list_vectors(**names, maxResults=1000, returnData=True, nextToken=page["nextToken"])
    assert n + len(rest["vectors"]) == 100 and "nextToken" not in rest
    assert rest["vectors"][0]["data"]["float32"] == vecs[n].tolist()


def test_segments_need_each_other(client: Any, make_index: Any) -> None:
    names = make_index(dimension=2)
    with pytest.raises(client.exceptions.ValidationException):
        client.list_vectors(**names, segmentCount=2)
    with pytest.raises(client.exceptions.ValidationException):
        client.list_vectors(**names, segmentIndex=0)
    with pytest.raises(client.exceptions.ValidationException):
        client.list_vectors(**names, segmentCount=2, segmentIndex=2)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.sets(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
                 min_size=0, max_size=60),
    page=st.integers(1, 7),
    segments=st.integers(1, 16),
)
def test_pagination_and_segments_return_every_vector_once(
    client: Any, make_index: Any, keys: set[str], page: int, segments: int
) -> None:
    import uuid

    names = make_index(f"p-{uuid.uuid4().hex[:12]}", dimension=2)
    keys_l = sorted(keys)
    for i in range(0, len(keys_l), 500):
        client.put_vectors(**names, vectors=[_vec(k, [1, 2]) for k in keys_l[i : i + 500]])
    listed = [v["key"] for p in client.get_paginator("list_vectors").paginate(
        **names, PaginationConfig={"PageSize": page}) for v in p["vectors"]]
    assert sorted(listed) == keys_l and len(listed) == len(set(listed))
    per_segment = [
        [v["key"] for p in client.get_paginator("list_vectors").paginate(
            **names, segmentCount=segments, segmentIndex=s, PaginationConfig={"PageSize": page})
         for v in p["vectors"]]
        for s in range(segments)
    ]
    flat = [k for seg in per_segment for k in seg]
    assert sorted(flat) == keys_l and len(flat) == len(set(flat))  # a partition: each key in one segment
    client.delete_index(**names)


def test_listing_while_writing_never_repeats(client: Any, make_index: Any) -> None:
    names = make_index(dimension=2)
    client.put_vectors(**names, vectors=[_vec(f"k{i:02d}", [1, 1]) for i in range(20)])
    first = client.list_vectors(**names, maxResults=5)
    # Overwrite listed and unlisted vectors and add new ones between pages.
    client.put_vectors(**names, vectors=[_vec(f"k{i:02d}", [2, 2]) for i in range(0, 20, 3)] +
                       [_vec("new", [1, 1])])
    seen = [v["key"] for v in first["vectors"]]
    token = first["nextToken"]
    while token:
        page = client.list_vectors(**names, maxResults=5, nextToken=token)
        seen += [v["key"] for v in page["vectors"]]
        token = page.get("nextToken")
    assert sorted(seen) == sorted([f"k{i:02d}" for i in range(20)] + ["new"])
