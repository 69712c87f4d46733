"""Metadata filters: every operator against a brute-force reference, and AWS's errors for bad filters."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KEYS = ["genre", "year", "tags", "flag"]
strings = st.sampled_from(["drama", "comedy", "doc", "Drama", ""])
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0, 1e9]))
primitives = st.one_of(strings, numbers, st.booleans())
values = st.one_of(primitives, st.lists(primitives, max_size=3))
metadata = st.dictionaries(st.sampled_from(KEYS), values, max_size=4)


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    key = st.sampled_from(KEYS)
    ops = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), primitives),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), numbers),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(primitives, min_size=1, max_size=3)),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$startsWith"), st.sampled_from(["d", "Dr", "co", ""])),
    )
    explicit = st.builds(lambda k, op: {k: {op[0]: op[1]}}, key, ops)
    implicit = st.builds(lambda k, v: {k: v}, key, primitives)
    return st.one_of(explicit, implicit)


filters = st.recursive(
    _leaf(),
    lambda children: st.builds(lambda op, xs: {op: xs}, st.sampled_from(["$and", "$or"]),
                               st.lists(children, min_size=1, max_size=3)),
    max_leaves=6,
)


# -- the reference: a direct reading of the documented semantics (see s3vectors_local/filters.py) --------
def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def reference(f: dict[str, Any], md: dict[str, Any]) -> bool:
    ((key, arg),) = f.items()
    if key == "$and":
        return all(reference(x, md) for x in arg)
    if key == "$or":
        return any(reference(x, md) for x in arg)
    op, x = next(iter(arg.items())) if isinstance(arg, dict) else ("$eq", arg)
    present = key in md
    vals = md.get(key) if isinstance(md.get(key), list) else [md.get(key)]
    if op == "$exists":
        return present == x
    if op == "$eq":
        return present and any(_eq(v, x) for v in vals)
    if op == "$ne":
        return not (present and any(_eq(v, x) for v in vals))
    if op == "$in":
        return present and any(_eq(v, o) for v in vals for o in x)
    if op == "$nin":
        return not (present and any(_eq(v, o) for v in vals for o in x))
    if op == "$startsWith":
        return present and any(isinstance(v, str) and v.startswith(x) for v in vals)
    compare = {"$gt": lambda a: a > x, "$gte": lambda a: a >= x, "$lt": lambda a: a < x, "$lte": lambda a: a <= x}
    return present and any(_num(v) and compare[op](v) for v in vals)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(metadata, min_size=1, max_size=25), f=filters)
def test_filters_match_reference(client: Any, make_index: Any, docs: list[dict[str, Any]], f: dict[str, Any]) -> None:
    names = make_index(f"f-{uuid.uuid4().hex[:16]}", dimension=2, metric="euclidean")
    client.put_vectors(**names, vectors=[
        {"key": f"d{i:02d}", "data": {"float32": [float(i), 0.0]}, "metadata": md} for i, md in enumerate(docs)
    ])
    got = client.query_vectors(**names, topK=len(docs), queryVector={"float32": [0.0, 0.0]}, filter=f)
    want = [f"d{i:02d}" for i, md in enumerate(docs) if reference(f, md)]
    assert [v["key"] for v in got["vectors"]] == want  # nearest first, which here is key order
    client.delete_index(**names)


def test_documented_examples(client: Any, make_index: Any) -> None:
    names = make_index(dimension=1)
    docs = {
        "a": {"genre": "documentary", "year": 2019},
        "b": {"genre": ["documentary", "romance"], "year": 2021},
        "c": {"genre": "drama", "year": 2020, "flag": True},
        "d": {"year": "2020"},
    }
    client.put_vectors(**names, vectors=[
        {"key": k, "data": {"float32": [float(i + 1)]}, "metadata": md} for i, (k, md) in enumerate(docs.items())
    ])

    def keys(f: dict[str, Any]) -> list[str]:
        r = client.query_vectors(**names, topK=10, queryVector={"float32": [1.0]}, filter=f)
        return [v["key"] for v in r["vectors"]]

    assert keys({"genre": "documentary"}) == ["a", "b"]  # implicit $eq, matches inside an array
    assert keys({"genre": {"$ne": "drama"}}) == ["a", "b", "d"]
    assert keys({"year": {"$gt": 2019}}) == ["b", "c"]  # numbers only: "2020" is a string
    assert keys({"year": {"$gte": 2019, }}) == ["a", "b", "c"]
    assert keys({"genre": {"$in": ["comedy", "romance"]}}) == ["b"]
    assert keys({"genre": {"$nin": ["documentary"]}}) == ["c", "d"]
    assert keys({"flag": {"$exists": True}}) == ["c"]
    assert keys({"flag": True}) == ["c"]
    assert keys({"year": 2020}) == ["c"]
    assert keys({"$and": [{"genre": "documentary"}, {"year": {"$lt": 2020}}]}) == ["a"]
    assert keys({"$or": [{"genre": "drama"}, {"year": {"$lte": 2019}}]}) == ["a", "c"]
    assert keys({"genre": {"$startsWith": "doc"}}) == ["a", "b"]


@pytest.mark.parametrize(
    "bad",
    [
        {},
        [],
        "genre",
        {"genre": "drama", "year": 2020},  # several keys in one object: use $and
        {"year": {"$gt": 1, "$lt": 5}},  # several operators in one object
        {"$and": []},
        {"$or": {"genre": "drama"}},
        {"$not": {"genre": "drama"}},
        {"genre": {"$regex": "dr.*"}},
        {"genre": {"$eq": ["drama"]}},
        {"genre": {"$eq": None}},
        {"genre": ["drama"]},
        {"year": {"$gt": "2020"}},
        {"year": {"$gte": True}},
        {"genre": {"$in": []}},
        {"genre": {"$in": "drama"}},
        {"genre": {"$nin": [["a"]]}},
        {"genre": {"$exists": "yes"}},
        {"genre": {"$startsWith": 1}},
        {"$and": [{"genre": "drama"}, {"year": {"$lt": "x"}}]},
    ],
)
def test_malformed_filters_are_validation_errors(client: Any, make_index: Any, bad: Any) -> None:
    names = make_index(dimension=1)
    client.put_vectors(**names, vectors=[{"key": "a", "data": {"float32": [1.0]}, "metadata": {"genre": "drama"}}])
    with pytest.raises(client.exceptions.ValidationException) as e:
        client.query_vectors(**names, topK=1, queryVector={"float32": [1.0]}, filter=bad)
    assert "Invalid query filter" in e.value.response["Error"]["Message"]


def test_enhanced_filters_allow_at_most_100_constraints(client: Any, make_index: Any) -> None:
    names = make_index(dimension=1)
    client.put_vectors(**names, vectors=[{"key": "a", "data": {"float32": [1.0]}, "metadata": {"n": 5}}])
    q = {"topK": 1, "queryVector": {"float32": [1.0]}}
    ok = {"$or": [{"n": i} for i in range(100)]}
    assert [v["key"] for v in client.query_vectors(**names, **q, filter=ok)["vectors"]] == ["a"]
    with pytest.raises(client.exceptions.ValidationException):
        client.query_vectors(**names, **q, filter={"$or": [{"n": i} for i in range(101)]})
