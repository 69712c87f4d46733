"""Filters (validation, --where shorthand), scores, and search against the local endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from loader.errors import UsageError
from loader.outputs import Target
from loader.query import build_filter, format_hits, normalize_filter, score, search, typed_value, where_filter
from tests.loader.fakes import FakeEmbedder

TEXT_ONLY = frozenset({"text"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pets", "pets"),
        ("3", 3),
        ("-2", -2),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        ("true", True),
        ("false", False),
        ('"3"', "3"),
        ("'true'", "true"),
        ("True", "True"),
        ("", ""),
    ],
)
def test_where_values_are_typed(raw: str, expected: object) -> None:
    value = typed_value(raw)
    assert value == expected and type(value) is type(expected)


def test_where_shorthand_becomes_aws_filter_syntax() -> None:
    assert where_filter(["category=pets"]) == [{"category": "pets"}]
    assert where_filter(["chunk>=2", "chunk < 5", "draft!=true", "title=a=b"]) == [
        {"chunk": {"$gte": 2}},
        {"chunk": {"$lt": 5}},
        {"draft": {"$ne": True}},
        {"title": "a=b"},
    ]


def test_several_conditions_are_combined_with_and() -> None:
    assert build_filter('{"category": "pets"}', ["chunk<=1"]) == {
        "$and": [{"category": "pets"}, {"chunk": {"$lte": 1}}]
    }
    assert build_filter(None, []) is None
    assert build_filter(None, ["category=pets"]) == {"category": "pets"}


def test_flat_multi_key_objects_and_multi_operator_conditions_are_rewritten_as_and() -> None:
    assert normalize_filter({"category": "pets", "chunk": {"$gte": 1, "$lt": 3}}) == {
        "$and": [
            {"category": "pets"},
            {"$and": [{"chunk": {"$gte": 1}}, {"chunk": {"$lt": 3}}]},
        ]
    }


def test_valid_filters_pass_unchanged() -> None:
    valid = {
        "$or": [
            {"category": {"$in": ["pets", "baggage"]}},
            {"$and": [{"chunks": {"$gt": 2}}, {"draft": {"$exists": False}}, {"title": {"$ne": "x"}}]},
            {"source": {"$startsWith": "travel/"}},
        ]
    }
    assert normalize_filter(valid) == valid


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('{"category": "pets"', [], "--filter is not valid JSON"),
        ("[1]", [], "must be a non-empty JSON object"),
        ("{}", [], "must be a non-empty JSON object"),
        ('{"category": {"$regex": "p.*"}}', [], "unknown operator '\\$regex'"),
        ('{"$not": {"category": "pets"}}', [], "unknown operator '\\$not'"),
        ('{"$gt": {"chunk": 1}}', [], "must be inside a field's condition"),
        ('{"chunk": {"$gt": "2"}}', [], "compares numbers only"),
        ('{"chunk": {"$gt": true}}', [], "compares numbers only"),
        ('{"category": {"$in": []}}', [], "non-empty array"),
        ('{"category": {"$exists": 1}}', [], "takes true or false"),
        ('{"category": ["a", "b"]}', [], "use .*\\$in"),
        ('{"category": null}', [], "expected a string, number or boolean"),
        ('{"$and": []}', [], "non-empty array of filters"),
        (None, ["category"], "expected KEY=VALUE"),
        (None, ["=pets"], "expected KEY=VALUE"),
    ],
)
def test_invalid_filters_are_usage_errors(text: str | None, where: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_filter(text, where)


def test_filtering_on_the_non_filterable_text_key_is_refused() -> None:
    with pytest.raises(UsageError, match="'text' is non-filterable"):
        build_filter(None, ["text=cats"], non_filterable=TEXT_ONLY)
    with pytest.raises(UsageError, match="non-filterable"):
        build_filter('{"$or": [{"category": "pets"}, {"text": {"$exists": true}}]}', [], non_filterable=TEXT_ONLY)


def test_scores() -> None:
    assert score(0.25, "cosine") == 0.75
    assert score(0.0, "euclidean") == 1.0
    assert score(1.0, "euclidean") == 0.5


class PagedClient:
    """Answers QueryVectors in pages of two, checking every page repeats vector, topK and filter."""

    def __init__(self, n: int) -> None:
        self.hits = [
            {"key": f"doc.md#{i:04d}", "distance": i / 10, "metadata": {"source": "doc.md", "text": f"t{i}"}}
            for i in range(n)
        ]
        self.calls: list[dict[str, Any]] = []

    def query_vectors(self, **params: Any) -> dict[str, Any]:
        if self.calls:
            first = {k: v for k, v in self.calls[0].items() if k != "nextToken"}
            assert {k: v for k, v in params.items() if k != "nextToken"} == first
        self.calls.append(params)
        start = int(params.get("nextToken", 0))
        out: dict[str, Any] = {"vectors": self.hits[start : start + 2], "distanceMetric": "cosine"}
        if start + 2 < min(len(self.hits), params["topK"]):
            out["nextToken"] = str(start + 2)
        return out


def test_search_follows_pages_until_top_k() -> None:
    client = PagedClient(10)
    hits = search(client, Target("b-1", "i-1"), FakeEmbedder(), "q", top_k=5, metadata_filter={"source": "doc.md"})
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.key for h in hits] == [f"doc.md#{i:04d}" for i in range(5)]
    assert hits[1].score == pytest.approx(0.9)
    assert len(client.calls) == 3
    assert client.calls[0]["filter"] == {"source": "doc.md"}
    assert client.calls[0]["returnMetadata"] is True and client.calls[0]["returnDistance"] is True


def test_search_against_the_local_endpoint_ranks_the_closest_text_first(s3vectors_endpoint: Any) -> None:
    client = s3vectors_endpoint.client()
    client.create_vector_bucket(vectorBucketName="bucket-1")
    client.create_index(
        vectorBucketName="bucket-1", indexName="index-1", dataType="float32", dimension=64, distanceMetric="cosine",
        metadataConfiguration={"nonFilterableMetadataKeys": ["text"]},
    )
    embedder = FakeEmbedder(dimension=64)
    texts = {"pets.md": "cats and dogs travel in the cabin", "bags.md": "checked baggage fees and weight"}
    vectors = embedder.embed(list(texts.values()))
    client.put_vectors(
        vectorBucketName="bucket-1", indexName="index-1",
        vectors=[
            {"key": f"{source}#0000", "data": {"float32": v.tolist()},
             "metadata": {"source": source, "category": source[:-3], "text": text, "section": "S"}}
            for (source, text), v in zip(texts.items(), vectors, strict=True)
        ],
    )
    target = Target("bucket-1", "index-1")
    hits = search(client, target, embedder, "can my cats travel in the cabin", top_k=2)
    assert [h.source for h in hits] == ["pets.md", "bags.md"]
    assert hits[0].score > hits[1].score
    assert hits[0].score == pytest.approx(1 - hits[0].distance)
    filtered = search(client, target, embedder, "can my cats travel", top_k=2, metadata_filter={"category": "bags"})
    assert [h.source for h in filtered] == ["bags.md"]
    text = format_hits(hits, metric="cosine")
    assert text.startswith("1. pets.md#0000  score ")
    assert "cats and dogs travel in the cabin" in text and "1 - cosine distance" in text


def test_snippet_drops_the_context_line_and_shortens() -> None:
    from loader.query import snippet

    text = "Pets — Cabin\n\nYou may bring a small cat.\nIt must stay in its carrier."
    assert snippet(text, title="Pets") == "You may bring a small cat. It must stay in its carrier."
    assert snippet(text, title="Other").startswith("Pets — Cabin You may")
    assert snippet("word " * 100, width=40).endswith(" …") and len(snippet("word " * 100, width=40)) <= 40
