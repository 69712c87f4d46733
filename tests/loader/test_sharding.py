"""Shards partition the documents deterministically."""

from __future__ import annotations

import pytest

from loader.errors import UsageError
from loader.sharding import ALL, Shard, parse_shard

SOURCES = [f"folder{i % 7}/doc-{i}.md" for i in range(2000)]


@pytest.mark.parametrize("count", [1, 2, 3, 8, 16])
def test_every_document_belongs_to_exactly_one_shard(count: int) -> None:
    shards = [Shard(i, count) for i in range(count)]
    for source in SOURCES:
        assert sum(shard.owns(source) for shard in shards) == 1


def test_shards_are_balanced_and_stable() -> None:
    sizes = [sum(Shard(i, 4).owns(s) for s in SOURCES) for i in range(4)]
    assert all(400 <= size <= 600 for size in sizes), sizes
    # The rule depends on the source alone: another listing, another machine, the same answer.
    assert [Shard(1, 4).owns(s) for s in reversed(SOURCES)] == list(reversed([Shard(1, 4).owns(s) for s in SOURCES]))
    assert Shard(2, 5).owns("baggage/checked-baggage.md") == Shard(2, 5).owns("baggage/checked-baggage.md")


def test_parse_shard() -> None:
    assert parse_shard("0/1") == ALL
    assert parse_shard(" 3 / 8 ") == Shard(3, 8)
    assert str(Shard(3, 8)) == "3/8"
    for bad in ("8/8", "-1/4", "1/0", "a/b", "1", "1/2/3"):
        with pytest.raises(UsageError):
            parse_shard(bad)
