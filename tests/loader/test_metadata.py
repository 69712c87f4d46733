"""Metadata: the right keys, text non-filterable, and every vector within S3 Vectors' size limits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from loader import contract
from loader.metadata import MAX_FILTERABLE_BYTES, MAX_KEYS, MAX_TOTAL_BYTES, build_metadata, json_size
from loader.records import Chunk, Document

TEXT = contract.TEXT_METADATA_KEY
NON_FILTERABLE = frozenset(contract.NON_FILTERABLE_METADATA_KEYS)


def _doc(**kwargs: object) -> Document:
    values: dict[str, object] = {
        "source": "travel/pets.md",
        "title": "Travelling with pets",
        "text": "body",
        "content_hash": "abc",
        "fields": {"category": "pets"},
    }
    values.update(kwargs)
    return Document(**values)  # type: ignore[arg-type]


def _filterable(metadata: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in metadata.items() if k not in NON_FILTERABLE}


def test_all_loader_keys_and_front_matter_are_written() -> None:
    built = build_metadata(_doc(), Chunk("travel/pets.md", 2, "Pets in the cabin", "Cats may travel."), chunk_count=5,
                           content_hash="h1")
    assert built.warnings == []
    assert built.metadata == {
        "source": "travel/pets.md",
        "title": "Travelling with pets",
        "section": "Pets in the cabin",
        "chunk": 2,
        "chunks": 5,
        "content_hash": "h1",
        "category": "pets",
        TEXT: "Cats may travel.",
    }


def test_front_matter_values_become_metadata_types_and_clashes_are_dropped_with_a_warning() -> None:
    fields = {
        "updated": dt.date(2026, 5, 1),
        "tags": ["a", "b"],
        "draft": False,
        "weight": 2.5,
        "source": "overrides?",
        "text": "overrides?",
        "$or": "x",
        "nested": {"a": 1},
        "nan": float("nan"),
    }
    built = build_metadata(_doc(fields=fields), Chunk("travel/pets.md", 0, "", "t"), chunk_count=1, content_hash="h")
    md = built.metadata
    assert md["updated"] == "2026-05-01"
    assert md["tags"] == ["a", "b"]
    assert md["draft"] is False and md["weight"] == 2.5
    assert md["source"] == "travel/pets.md" and md[TEXT] == "t"
    assert "$or" not in md and "nested" not in md and "nan" not in md
    assert len(built.warnings) == 5


def test_a_huge_title_is_cut_at_a_utf8_boundary_to_fit_the_2kb_filterable_limit() -> None:
    title = "日本語のタイトル" * 200  # 4,800 bytes
    built = build_metadata(_doc(title=title), Chunk("travel/pets.md", 0, "§" * 1500, "t"), chunk_count=1,
                           content_hash="h")
    assert json_size(_filterable(built.metadata)) <= MAX_FILTERABLE_BYTES
    cut: Any = built.metadata["title"]
    assert cut.endswith("…") and title.startswith(cut[:-1])
    assert any("title cut" in w for w in built.warnings)
    assert any("section cut" in w for w in built.warnings)


def test_large_front_matter_fields_are_dropped_largest_first() -> None:
    fields = {"small": "x", "big": "y" * 1900, "medium": "z" * 300}
    built = build_metadata(_doc(fields=fields), Chunk("travel/pets.md", 0, "", "t"), chunk_count=1, content_hash="h")
    assert "big" not in built.metadata
    assert built.metadata["small"] == "x" and built.metadata["medium"] == "z" * 300
    assert json_size(_filterable(built.metadata)) <= MAX_FILTERABLE_BYTES
    assert built.warnings == ["front-matter field 'big' dropped (filterable metadata is limited to 2 KB per vector)"]


def test_a_front_matter_field_the_index_declares_non_filterable_does_not_count_as_filterable() -> None:
    fields = {"summary": "s" * 5000}
    built = build_metadata(
        _doc(fields=fields), Chunk("travel/pets.md", 0, "", "t"), chunk_count=1, content_hash="h",
        non_filterable=NON_FILTERABLE | {"summary"},
    )
    assert built.metadata["summary"] == "s" * 5000
    assert built.warnings == []


def test_at_most_50_keys() -> None:
    fields = {f"f{i}": i for i in range(80)}
    built = build_metadata(_doc(fields=fields), Chunk("travel/pets.md", 0, "", "t"), chunk_count=1, content_hash="h")
    assert len(built.metadata) == MAX_KEYS
    assert any("at most 50 metadata keys" in w for w in built.warnings)


def test_huge_chunk_text_is_cut_to_the_40kb_total_with_a_warning() -> None:
    text = "ü\n" * 30_000  # 90,000 bytes, escapes included in JSON
    built = build_metadata(_doc(), Chunk("travel/pets.md", 0, "", text), chunk_count=1, content_hash="h")
    assert json_size(built.metadata) <= MAX_TOTAL_BYTES
    kept: Any = built.metadata[TEXT]
    assert text.startswith(kept) and len(kept) > 10_000
    assert any("chunk text cut" in w for w in built.warnings)


def test_source_override_is_used() -> None:
    built = build_metadata(_doc(), Chunk("x", 0, "", "t"), chunk_count=1, content_hash="h", source="nfc/path.md")
    assert built.metadata["source"] == "nfc/path.md"
