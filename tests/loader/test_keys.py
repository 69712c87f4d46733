"""Vector keys: deterministic, collision-free, within 1,024 UTF-8 bytes, reversible when short."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from loader.keys import MAX_KEY_BYTES, normalize_source, split_key, truncate_utf8, vector_key


def test_key_is_path_and_zero_padded_ordinal() -> None:
    assert vector_key("baggage/checked.md", 3) == "baggage/checked.md#0003"
    assert vector_key("baggage/checked.md", 12345) == "baggage/checked.md#12345"


def test_same_basename_in_two_folders_does_not_collide() -> None:
    assert vector_key("baggage/faq.md", 0) != vector_key("pets/faq.md", 0)


def test_split_key_round_trips_even_with_hash_in_the_path() -> None:
    assert split_key(vector_key("notes/c#-tips.md", 7)) == ("notes/c#-tips.md", 7)
    assert split_key("no-ordinal") is None
    assert split_key("doc.md#12a") is None
    assert split_key("doc.md#3") is None  # not made by vector_key (no zero padding)


def test_long_path_keeps_a_readable_prefix_and_the_ordinal_within_1024_bytes() -> None:
    source = "deep/" * 300 + "document.md"
    key = vector_key(source, 42)
    assert len(key.encode("utf-8")) <= MAX_KEY_BYTES
    assert key.startswith("deep/deep/")
    assert key.endswith("#0042")
    assert split_key(key) is None  # hashed keys are identified by their `source` metadata
    # Two long paths sharing the kept prefix still get different keys (the hash covers the full path).
    assert vector_key(source, 42) != vector_key(source.replace("document", "other"), 42)


def test_long_multibyte_path_is_cut_at_a_character_boundary() -> None:
    source = "é" * 2000  # 4,000 bytes
    key = vector_key(source, 0)
    assert len(key.encode("utf-8")) <= MAX_KEY_BYTES
    assert key.encode("utf-8").decode("utf-8") == key
    assert key.startswith("é" * 100)


def test_nfd_and_nfc_spellings_of_a_path_get_the_same_key() -> None:
    nfc = "menu/café.md"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    assert vector_key(nfd, 1) == vector_key(nfc, 1)
    assert normalize_source(nfd) == nfc


def test_truncate_utf8_never_splits_a_character() -> None:
    assert truncate_utf8("aé", 2) == "a"
    assert truncate_utf8("aé", 3) == "aé"
    assert truncate_utf8("😀😀", 5) == "😀"


@given(st.text(min_size=1, max_size=1500), st.integers(min_value=0, max_value=10**6))
def test_any_path_gives_a_valid_deterministic_key(source: str, ordinal: int) -> None:
    key = vector_key(source, ordinal)
    assert 1 <= len(key.encode("utf-8")) <= MAX_KEY_BYTES
    assert key == vector_key(source, ordinal)
    assert key.endswith(f"#{ordinal:04d}")


@given(
    st.tuples(st.text(min_size=1, max_size=1200), st.integers(0, 20_000)),
    st.tuples(st.text(min_size=1, max_size=1200), st.integers(0, 20_000)),
)
def test_distinct_documents_or_chunks_get_distinct_keys(a: tuple[str, int], b: tuple[str, int]) -> None:
    (sa, oa), (sb, ob) = a, b
    if (normalize_source(sa), oa) != (normalize_source(sb), ob):
        assert vector_key(sa, oa) != vector_key(sb, ob)
