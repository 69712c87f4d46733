"""Every documented limit: just under passes, just over fails with the service's error.

Sources are cited next to each constant in s3vectors_local/limits.py. The ``raw`` client skips
botocore's client-side checks so that the endpoint's own validation is what answers.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from s3vectors_local import limits


def _vec(key: str, data: list[float], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "data": {"float32": data}}
    if metadata is not None:
        out["metadata"] = metadata
    return out


@pytest.mark.parametrize(
    ("name", "ok"),
    [("abc", True), ("a" * 63, True), ("a1-b2", True), ("ab", False), ("a" * 64, False), ("Abc", False),
     ("-abc", False), ("abc-", False), ("a.bc", False), ("a_bc", False)],
)
def test_bucket_names(raw: Any, name: str, ok: bool) -> None:
    if ok:
        raw.create_vector_bucket(vectorBucketName=name)
    else:
        with pytest.raises(raw.exceptions.ValidationException):
            raw.create_vector_bucket(vectorBucketName=name)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("abc", True), ("a.b-c", True), ("a" * 63, True), ("ab", False), ("a" * 64, False), ("a.B", False),
     (".abc", False), ("abc.", False)],
)
def test_index_names(raw: Any, name: str, ok: bool) -> None:
    raw.create_vector_bucket(vectorBucketName="bkt")
    kw = {"vectorBucketName": "bkt", "indexName": name, "dataType": "float32", "dimension": 2,
          "distanceMetric": "cosine"}
    if ok:
        raw.create_index(**kw)
    else:
        with pytest.raises(raw.exceptions.ValidationException):
            raw.create_index(**kw)


@pytest.mark.parametrize(("dimension", "ok"), [(1, True), (4096, True), (0, False), (4097, False)])
def test_dimension_range(raw: Any, dimension: int, ok: bool) -> None:
    raw.create_vector_bucket(vectorBucketName="bkt")
    kw = {"vectorBucketName": "bkt", "indexName": "idx", "dataType": "float32", "dimension": dimension,
          "distanceMetric": "euclidean"}
    if ok:
        raw.create_index(**kw)
    else:
        with pytest.raises(raw.exceptions.ValidationException) as e:
            raw.create_index(**kw)
        assert e.value.response["fieldList"][0]["path"] == "/dimension"


def test_enums_are_checked(raw: Any) -> None:
    raw.create_vector_bucket(vectorBucketName="bkt")
    kw = {"vectorBucketName": "bkt", "indexName": "idx", "dimension": 2}
    with pytest.raises(raw.exceptions.ValidationException):
        raw.create_index(**kw, dataType="float16", distanceMetric="cosine")
    with pytest.raises(raw.exceptions.ValidationException):
        raw.create_index(**kw, dataType="float32", distanceMetric="dot")
    with pytest.raises(raw.exceptions.ValidationException) as e:
        raw.create_index(vectorBucketName="bkt", indexName="idx")  # required members missing
    paths = {f["path"] for f in e.value.response["fieldList"]}
    assert paths == {"/dataType", "/dimension", "/distanceMetric"}


def test_non_filterable_key_count(raw: Any) -> None:
    raw.create_vector_bucket(vectorBucketName="bkt")
    kw = {"vectorBucketName": "bkt", "dataType": "float32", "dimension": 2, "distanceMetric": "cosine"}
    raw.create_index(indexName="ten", metadataConfiguration={"nonFilterableMetadataKeys": [f"k{i}" for i in range(10)]},
                     **kw)
    with pytest.raises(raw.exceptions.ValidationException):
        raw.create_index(indexName="eleven",
                         metadataConfiguration={"nonFilterableMetadataKeys": [f"k{i}" for i in range(11)]}, **kw)
    with pytest.raises(raw.exceptions.ValidationException):
        raw.create_index(indexName="dup", metadataConfiguration={"nonFilterableMetadataKeys": ["a", "a"]}, **kw)


@pytest.mark.parametrize(
    ("op", "n", "ok"),
    [("put", limits.MAX_PUT_VECTORS, True), ("put", limits.MAX_PUT_VECTORS + 1, False),
     ("get", limits.MAX_GET_VECTORS, True), ("get", limits.MAX_GET_VECTORS + 1, False),
     ("delete", limits.MAX_DELETE_VECTORS, True), ("delete", limits.MAX_DELETE_VECTORS + 1, False)],
)
def test_batch_sizes(raw: Any, make_index: Any, op: str, n: int, ok: bool) -> None:
    names = make_index(dimension=1)
    keys = [f"k{i}" for i in range(n)]
    call = {
        "put": lambda: raw.put_vectors(**names, vectors=[_vec(k, [1.0]) for k in keys]),
        "get": lambda: raw.get_vectors(**names, keys=keys),
        "delete": lambda: raw.delete_vectors(**names, keys=keys),
    }[op]
    if ok:
        call()
    else:
        with pytest.raises(raw.exceptions.ValidationException):
            call()


def test_duplicate_keys_in_one_request(client: Any, make_index: Any) -> None:
    names = make_index(dimension=1)
    with pytest.raises(client.exceptions.ValidationException):
        client.put_vectors(**names, vectors=[_vec("a", [1.0]), _vec("a", [2.0])])
    assert client.list_vectors(**names)["vectors"] == []  # nothing of a rejected request is written
    with pytest.raises(client.exceptions.ValidationException):
        client.get_vectors(**names, keys=["a", "a"])
    with pytest.raises(client.exceptions.ValidationException):
        client.delete_vectors(**names, keys=["a", "a"])


def test_key_length(raw: Any, make_index: Any) -> None:
    names = make_index(dimension=1)
    raw.put_vectors(**names, vectors=[_vec("k" * 1024, [1.0]), _vec("é" * 1024, [1.0])])  # code points
    for bad in ("k" * 1025, ""):
        with pytest.raises(raw.exceptions.ValidationException):
            raw.put_vectors(**names, vectors=[_vec(bad, [1.0])])


@pytest.mark.parametrize(
    ("data", "metric", "why"),
    [([1.0, 2.0], "cosine", "dimension"), ([1.0, 2.0, 3.0, 4.0], "cosine", "dimension"),
     ([math.nan, 0.0, 0.0], "euclidean", "NaN"), ([math.inf, 0.0, 0.0], "euclidean", "Infinity"),
     ([-math.inf, 0.0, 0.0], "cosine", "Infinity"), ([1e39, 0.0, 0.0], "euclidean", "float32"),
     ([0.0, 0.0, 0.0], "cosine", "zero")],
)
def test_invalid_vector_data(client: Any, make_index: Any, data: list[float], metric: str, why: str) -> None:
    names = make_index(dimension=3, metric=metric)
    with pytest.raises(client.exceptions.ValidationException) as e:
        client.put_vectors(**names, vectors=[_vec("ok", [1.0, 1.0, 1.0]), _vec("bad", data)])
    assert "Invalid record for key 'bad'" in e.value.response["Error"]["Message"]
    assert e.value.response["fieldList"][0]["path"] == "/vectors/1"
    assert client.list_vectors(**names)["vectors"] == []  # all-or-nothing


def test_zero_vector_is_fine_for_euclidean(client: Any, make_index: Any) -> None:
    names = make_index(dimension=3, metric="euclidean")
    client.put_vectors(**names, vectors=[_vec("zero", [0.0, 0.0, 0.0]), _vec("max", [3.4e38, 0.0, 0.0])])


def test_metadata_key_count(client: Any, make_index: Any) -> None:
    names = make_index(dimension=1)
    client.put_vectors(**names, vectors=[_vec("ok", [1.0], {f"k{i}": i for i in range(limits.MAX_METADATA_KEYS)})])
    with pytest.raises(client.exceptions.ValidationException):
        client.put_vectors(**names, vectors=[
            _vec("bad", [1.0], {f"k{i}": i for i in range(limits.MAX_METADATA_KEYS + 1)})])


def _sized(size: int, key: str = "pad", char: str = "x") -> dict[str, str]:
    """A one-key metadata object whose compact JSON is exactly ``size`` UTF-8 bytes."""
    overhead = len(f'{{"{key}":""}}'.encode())
    width = len(char.encode())
    assert (size - overhead) % width == 0
    return {key: char * ((size - overhead) // width)}


def test_filterable_metadata_counts_utf8_bytes(client: Any, make_index: Any) -> None:
    names = make_index(dimension=1)
    limit = limits.MAX_FILTERABLE_METADATA_BYTES
    # "é" is 2 bytes in UTF-8: 1020 of them plus the JSON around them is exactly 2048 bytes.
    client.put_vectors(**names, vectors=[_vec("ok", [1.0], _sized(limit, char="é"))])
    client.put_vectors(**names, vectors=[_vec("ok2", [1.0], _sized(limit))])
    with pytest.raises(client.exceptions.ValidationException) as e:
        client.put_vectors(**names, vectors=[_vec("bad", [1.0], _sized(limit + 2, char="é"))])
    assert e.value.response["Error"]["Message"] == (
        "Invalid record for key 'bad': Filterable metadata must have at most 2048 bytes"
    )


def test_total_metadata_size(client: Any, make_index: Any) -> None:
    names = make_index(dimension=1, non_filterable=["text"])
    limit = limits.MAX_METADATA_BYTES
    # Non-filterable metadata is not held to 2 KB, only to the 40 KB total.
    client.put_vectors(**names, vectors=[_vec("ok", [1.0], _sized(limit, key="text"))])
    with pytest.raises(client.exceptions.ValidationException):
        client.put_vectors(**names, vectors=[_vec("bad", [1.0], _sized(limit + 1, key="text"))])


@pytest.mark.parametrize("value", [{"nested": 1}, None, [[1]], [{"a": 1}]])
def test_metadata_value_types(client: Any, make_index: Any, value: Any) -> None:
    names = make_index(dimension=1)
    with pytest.raises(client.exceptions.ValidationException):
        client.put_vectors(**names, vectors=[_vec("bad", [1.0], {"v": value})])


def test_metadata_must_be_an_object(raw: Any, make_index: Any) -> None:
    names = make_index(dimension=1)
    with pytest.raises(raw.exceptions.ValidationException):
        raw.put_vectors(**names, vectors=[_vec("bad", [1.0], ["not", "an", "object"])])  # type: ignore[arg-type]


def test_top_k(raw: Any, make_index: Any) -> None:
    names = make_index(dimension=1)
    raw.put_vectors(**names, vectors=[_vec("a", [1.0])])
    q = {"queryVector": {"float32": [1.0]}}
    assert len(raw.query_vectors(**names, topK=limits.MAX_TOP_K, **q)["vectors"]) == 1
    for bad in (0, limits.MAX_TOP_K + 1):
        with pytest.raises(raw.exceptions.ValidationException):
            raw.query_vectors(**names, topK=bad, **q)


def test_list_page_sizes(raw: Any, make_index: Any) -> None:
    names = make_index(dimension=1)
    raw.list_vectors(**names, maxResults=1000)
    raw.list_vector_buckets(maxResults=500)
    raw.list_indexes(vectorBucketName="bkt", maxResults=500)
    for call in (lambda: raw.list_vectors(**names, maxResults=1001),
                 lambda: raw.list_vector_buckets(maxResults=501),
                 lambda: raw.list_indexes(vectorBucketName="bkt", maxResults=501),
                 lambda: raw.list_vectors(**names, segmentCount=17, segmentIndex=0)):
        with pytest.raises(raw.exceptions.ValidationException):
            call()


def test_request_payload_limit(client: Any, make_index: Any) -> None:
    """20 MiB: a PutVectors body just under it is accepted, one just over it is refused."""
    # Mostly metadata (cheap to build and check): under 500 vectors of 512 floats and ~40 KB each.
    names = make_index(dimension=512, non_filterable=["pad"])
    op = client.meta.service_model.operation_model("PutVectors")
    data = [1.0] * 512

    def body(n: int, pad: int) -> dict[str, Any]:
        vectors = [_vec(f"v{i:03d}", data, {"pad": "x" * 40000}) for i in range(n)]
        vectors.append(_vec("last", data, {"pad": "x" * pad}))
        return {**names, "vectors": vectors}

    def size(params: dict[str, Any]) -> int:
        return len(client._serializer.serialize_to_request(params, op)["body"])

    one = size(body(1, 0)) - size(body(0, 0))
    n = (limits.MAX_PAYLOAD_BYTES - size(body(0, 0))) // one
    under = limits.MAX_PAYLOAD_BYTES - size(body(n, 0)) - 10
    assert n < limits.MAX_PUT_VECTORS and 0 < under < 40000
    params = body(n, under)
    assert size(params) == limits.MAX_PAYLOAD_BYTES - 10
    client.put_vectors(**params)
    params = body(n, under + 20)
    with pytest.raises(client.exceptions.ValidationException) as e:
        client.put_vectors(**params)
    assert "20 MiB" in e.value.response["Error"]["Message"]


def test_filter_on_non_filterable_key(client: Any, make_index: Any) -> None:
    names = make_index(dimension=1, non_filterable=["text"])
    client.put_vectors(**names, vectors=[_vec("a", [1.0], {"text": "hello", "lang": "en"})])
    q = {"topK": 1, "queryVector": {"float32": [1.0]}}
    assert len(client.query_vectors(**names, **q, filter={"lang": "en"})["vectors"]) == 1
    with pytest.raises(client.exceptions.ValidationException):
        client.query_vectors(**names, **q, filter={"text": "hello"})
    with pytest.raises(client.exceptions.ValidationException):
        client.query_vectors(**names, **q, filter={"$or": [{"lang": "en"}, {"text": {"$exists": True}}]})
