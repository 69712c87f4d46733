"""Chunking with the fake embedder (a token is a \\w+ word): sections, budget, overlap, coverage."""

from __future__ import annotations

import bisect
import itertools
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.chunking import CONTEXT_SEPARATOR, chunk_document
from loader.markdown import find_headings
from loader.records import Chunk, Document, Embedder
from tests.loader.fakes import FakeEmbedder

WORD = re.compile(r"\w+")


def doc(text: str, title: str = "Doc") -> Document:
    return Document(source="d.md", title=title, text=text, content_hash="0" * 64)


def words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, start + n))


def body(chunk: Chunk) -> str:
    """The chunk's text without its context line."""
    return chunk.text.split(CONTEXT_SEPARATOR, 1)[1] if CONTEXT_SEPARATOR in chunk.text else chunk.text


def check_invariants(document: Document, chunks: list[Chunk], embedder: Embedder, budget: int) -> None:
    """What must hold for any document: budget, exact bodies, ordinals, coverage of every word in order."""
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.source == document.source
        assert embedder.count_tokens(chunk.text) == chunk.tokens <= budget
        assert chunk.text.endswith(document.text[chunk.start : chunk.end])
        assert document.text[chunk.start : chunk.end] == document.text[chunk.start : chunk.end].strip()
    # Every word outside heading lines lies in a chunk (a word over 64 characters, which the chunker
    # may cut, in consecutive ones), and chunks advance through the text in order.
    headings = find_headings(document.text)
    in_heading = [(h.start, h.end) for h in headings]
    assert all(a.start < b.start and a.end <= b.end for a, b in itertools.pairwise(chunks))
    starts = [c.start for c in chunks]
    for match in WORD.finditer(document.text):
        if any(a <= match.start() < b for a, b in in_heading):
            continue
        # Ends never decrease, so the last chunk starting at or before the word is the one to hold it.
        index = bisect.bisect_right(starts, match.start()) - 1
        assert index >= 0, match.group()
        if len(match.group()) <= 64:
            assert match.end() <= chunks[index].end, match.group()
        else:  # cut into pieces: each piece's start is in a chunk that reaches the next piece
            position = match.start()
            while position < match.end():
                index = bisect.bisect_right(starts, position) - 1
                assert index >= 0 and chunks[index].end > position, match.group()
                position = chunks[index].end


# --- Sections --------------------------------------------------------------------------------------

PETS = """# Travelling with Pets

Intro paragraph about pets.

## Pets in the cabin

Cabin rules.

### Carriers

Carrier sizes.

```bash
# not a heading: a comment in code
```

## Fees

Fee table.
"""


def test_headings_become_section_paths_and_the_title_heading_is_left_out() -> None:
    chunks = chunk_document(doc(PETS, title="Travelling with Pets"), FakeEmbedder())
    assert [(c.section, body(c)) for c in chunks] == [
        ("", "Intro paragraph about pets."),
        ("Pets in the cabin", "Cabin rules."),
        ("Pets in the cabin > Carriers", "Carrier sizes.\n\n```bash\n# not a heading: a comment in code\n```"),
        ("Fees", "Fee table."),
    ]
    assert chunks[2].text.startswith("Travelling with Pets — Pets in the cabin > Carriers\n\n")
    assert chunks[0].text == "Travelling with Pets\n\nIntro paragraph about pets."


def test_a_lone_h1_is_the_title_even_if_worded_differently() -> None:
    chunks = chunk_document(doc("# Pets on board\n\nx\n\n## Fees\n\ny\n", title="Pet policy"), FakeEmbedder())
    assert [c.section for c in chunks] == ["", "Fees"]


def test_several_h1_are_sections() -> None:
    chunks = chunk_document(doc("# Part A\n\nx\n\n## Sub\n\ny\n\n# Part B\n\nz\n", title="Book"), FakeEmbedder())
    assert [c.section for c in chunks] == ["Part A", "Part A > Sub", "Part B"]


def test_without_context_line_the_text_is_the_body() -> None:
    chunks = chunk_document(doc(PETS, title="Travelling with Pets"), FakeEmbedder(), context=False)
    assert chunks[1].text == "Cabin rules." and chunks[1].section == "Pets in the cabin"


def test_long_title_is_cut_to_a_quarter_of_the_budget() -> None:
    embedder = FakeEmbedder(max_tokens=64)
    chunks = chunk_document(doc("Some body text.", title=words(100)), embedder)
    context = chunks[0].text.split(CONTEXT_SEPARATOR)[0]
    assert context.endswith("…") and embedder.count_tokens(context) <= 64 // 4


# --- Budget, breaks, overlap -----------------------------------------------------------------------


def test_budget_is_respected_and_counted_with_the_context_line() -> None:
    embedder = FakeEmbedder(max_tokens=50)
    document = doc("\n\n".join(f"Sentence {i} has a few words. " * 5 for i in range(20)))
    chunks = chunk_document(document, embedder)
    assert len(chunks) > 5
    check_invariants(document, chunks, embedder, 50)
    assert max(c.tokens for c in chunks) > 40  # chunks are filled, not tiny


def test_max_tokens_below_the_model_limit() -> None:
    embedder = FakeEmbedder(max_tokens=256)
    document = doc(words(1000))
    chunks = chunk_document(document, embedder, max_tokens=100)
    check_invariants(document, chunks, embedder, 100)
    assert max(c.tokens for c in chunks) <= 100


def test_invalid_settings() -> None:
    embedder = FakeEmbedder(max_tokens=256)
    with pytest.raises(ValueError, match="over the model's limit of 256"):
        chunk_document(doc("x"), embedder, max_tokens=257)
    with pytest.raises(ValueError, match="at least 16"):
        chunk_document(doc("x"), embedder, max_tokens=8)
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk_document(doc("x"), embedder, overlap_tokens=-1)
    with pytest.raises(ValueError, match="max_chars"):
        chunk_document(doc("x"), embedder, max_chars=10)


def test_cuts_at_paragraphs_then_sentences_not_mid_sentence() -> None:
    embedder = FakeEmbedder(max_tokens=60)
    paragraphs = [f"Para{i} " + " ".join(f"a{i}x{j}." if j % 7 == 6 else f"a{i}x{j}" for j in range(34))
                  for i in range(3)]
    chunks = chunk_document(doc("\n\n".join(paragraphs), title=""), embedder, overlap_tokens=0)
    assert [body(c) for c in chunks] == paragraphs  # each paragraph (35 words) fits, two don't
    long = "First sentence has words here. " * 12
    chunks = chunk_document(doc(long.strip(), title=""), embedder, overlap_tokens=0)
    assert all(body(c).endswith("here.") for c in chunks)


def test_list_items_and_lines_are_preferred_to_spaces() -> None:
    embedder = FakeEmbedder(max_tokens=40)
    items = "\n".join(f"- item {i} with five words" for i in range(20))
    chunks = chunk_document(doc(items, title=""), embedder, overlap_tokens=0)
    assert len(chunks) >= 3
    for chunk in chunks:  # whole items only ("- " is no token to the fake, so it may start without it)
        assert all(re.fullmatch(r"(- )?item \d+ with five words", line) for line in body(chunk).split("\n"))


def test_two_chunks_are_balanced_rather_than_full_plus_scrap() -> None:
    embedder = FakeEmbedder(max_tokens=100)
    text = " ".join(f"s{i} a b c d e f g h i." for i in range(12))  # 120 words, one paragraph
    chunks = chunk_document(doc(text, title=""), embedder, overlap_tokens=10)
    assert len(chunks) == 2
    assert abs(chunks[0].tokens - chunks[1].tokens) <= 20


def test_overlap_between_consecutive_chunks_starts_at_a_sentence() -> None:
    embedder = FakeEmbedder(max_tokens=60)
    text = " ".join(f"Sentence number {i} is here." for i in range(60))
    chunks = chunk_document(doc(text, title=""), embedder, overlap_tokens=12)
    for a, b in itertools.pairwise(chunks):
        shared = text[b.start : a.end]
        assert b.start < a.end and 1 <= len(WORD.findall(shared)) <= 12
        assert shared.startswith("Sentence number")
    no_overlap = chunk_document(doc(text, title=""), embedder, overlap_tokens=0)
    assert all(a.end <= b.start for a, b in itertools.pairwise(no_overlap))
    assert len(no_overlap) < len(chunks)


def test_overlap_never_crosses_a_section() -> None:
    embedder = FakeEmbedder(max_tokens=30)
    text = "## A\n\n" + words(50) + "\n\n## B\n\n" + words(50, 100)
    chunks = chunk_document(doc(text, title=""), embedder, overlap_tokens=8)
    check_invariants(doc(text, title=""), chunks, embedder, 30)
    for chunk in chunks:
        numbers = [int(w[1:]) for w in WORD.findall(body(chunk))]
        assert all(n < 100 for n in numbers) or all(n >= 100 for n in numbers)


def test_overlap_is_capped_so_chunks_always_advance() -> None:
    embedder = FakeEmbedder(max_tokens=20)
    document = doc(words(300), title="")
    chunks = chunk_document(document, embedder, overlap_tokens=500)
    check_invariants(document, chunks, embedder, 20)


def test_chunks_keep_punctuation_next_to_their_first_and_last_word() -> None:
    embedder = FakeEmbedder(max_tokens=20)
    text = "(Start here) and go on. " * 20
    for chunk in chunk_document(doc(text.strip(), title=""), embedder):
        assert body(chunk)[0] in "(a" or body(chunk).startswith(("Start", "here", "go", "on"))
    assert body(chunk_document(doc("Ends with a stop.", title=""), embedder)[-1]).endswith("stop.")


# --- Edge cases ------------------------------------------------------------------------------------


def test_empty_and_whitespace_documents_have_no_chunks() -> None:
    assert chunk_document(doc(""), FakeEmbedder()) == []
    assert chunk_document(doc(" \n\t\n"), FakeEmbedder()) == []
    assert chunk_document(doc("# Only a heading\n", title="Only a heading"), FakeEmbedder()) == []
    assert chunk_document(doc("... --- !!!"), FakeEmbedder()) == []  # no token at all


def test_a_one_megabyte_single_line_of_words() -> None:
    embedder = FakeEmbedder(max_tokens=256)
    document = doc(" ".join(f"word{i % 997}" for i in range(120_000)))  # ~1 MB, no newline
    started = time.perf_counter()
    chunks = chunk_document(document, embedder)
    assert time.perf_counter() - started < 10
    check_invariants(document, chunks, embedder, 256)


def test_a_one_megabyte_word_is_cut_by_characters() -> None:
    embedder = FakeEmbedder(max_tokens=256)
    document = doc("x" * 1_000_000)  # one "token" to the fake, like one [UNK] to BERT
    chunks = chunk_document(document, embedder, max_chars=4000)
    assert all(len(c.text) <= 4000 and c.tokens <= 256 for c in chunks)
    assert sum(c.end - c.start for c in chunks) >= 1_000_000  # nothing lost
    assert chunks[0].start == 0 and chunks[-1].end == 1_000_000


def test_max_chars_bounds_chunks_of_long_words() -> None:
    embedder = FakeEmbedder(max_tokens=256)
    document = doc(" ".join("y" * 80 for _ in range(200)))
    chunks = chunk_document(document, embedder, max_chars=1000)
    assert all(len(c.text) <= 1000 for c in chunks)
    check_invariants(document, chunks, embedder, 256)


class SplittingEmbedder(FakeEmbedder):
    """Counts words over 6 letters as two tokens, but reports one offset per word: its counts of a
    slice are not what the offsets predict, like a real tokenizer around a word cut in pieces."""

    def count_tokens(self, text: str) -> int:
        return sum(2 if len(w) > 6 else 1 for w in WORD.findall(text))


def test_final_count_shrinks_chunks_the_offsets_underestimated() -> None:
    embedder = SplittingEmbedder(max_tokens=40)
    document = doc(" ".join("longword" if i % 2 else "short" for i in range(500)))
    chunks = chunk_document(document, embedder)
    assert all(embedder.count_tokens(c.text) == c.tokens <= 40 for c in chunks)
    assert chunks[-1].end == len(document.text)


class CharCountingEmbedder(FakeEmbedder):
    """Spends a token per character but reports one offset per word, like a byte-level tokenizer on
    emoji: even a 64-character piece of a long word is over a small budget."""

    def count_tokens(self, text: str) -> int:
        return sum(len(w) for w in WORD.findall(text))


def test_a_piece_over_budget_is_cut_by_characters() -> None:
    embedder = CharCountingEmbedder(max_tokens=20)
    document = doc("z" * 200, title="")
    chunks = chunk_document(document, embedder, overlap_tokens=0)
    assert all(embedder.count_tokens(c.text) == c.tokens <= 20 for c in chunks)
    assert "".join(c.text for c in chunks) == document.text
    assert sum(c.tokens for c in chunks) == 200 and len(chunks) <= 14  # 64-character pieces: 20+20+20+4...


def test_deterministic() -> None:
    embedder = FakeEmbedder(max_tokens=40)
    document = doc(PETS * 20, title="Travelling with Pets")
    first = chunk_document(document, embedder)
    chunk_document(doc(words(999)), embedder)
    assert chunk_document(document, FakeEmbedder(max_tokens=40)) == first == chunk_document(document, embedder)


# --- Property: any text ----------------------------------------------------------------------------

PIECES = st.one_of(
    st.sampled_from(["alpha", "beta", "gamma", "Delta.", "x1", "é", "東京", "naïve", "a-b", "(c)", "42"]),
    st.sampled_from([" ", " ", " ", "\n", "\n\n", ". ", "! ", "\t", "\n- ", "\n## Heading\n", "\n# Top\n"]),
    st.sampled_from(["\n```\n# code\n```\n", "\n| a | b |\n", "supercalifragilisticexpialidocious" * 3]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.lists(PIECES, max_size=400).map("".join),
    budget=st.integers(min_value=16, max_value=80),
    overlap=st.integers(min_value=0, max_value=40),
    title=st.sampled_from(["", "Title", "A rather long title with many words in it"]),
)
def test_any_text_is_chunked_within_budget_covering_every_word_in_order(
    text: str, budget: int, overlap: int, title: str
) -> None:
    embedder = FakeEmbedder(max_tokens=80)
    document = doc(text, title=title)
    chunks = chunk_document(document, embedder, max_tokens=budget, overlap_tokens=overlap)
    check_invariants(document, chunks, embedder, budget)
    assert chunk_document(document, embedder, max_tokens=budget, overlap_tokens=overlap) == chunks
