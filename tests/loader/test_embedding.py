"""The embedding model: cheap import, model resolution, and (slow) the real all-MiniLM-L6-v2 offline."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.chunking import chunk_document
from loader.documents import read_documents
from loader.embedding import (
    DEFAULT_MODEL,
    ModelUnavailableError,
    SentenceTransformerEmbedder,
    bundled_model_path,
    load_embedder,
    resolve_model,
)
from loader.records import Document, Embedder
from tests.loader.test_chunking import PIECES, check_invariants

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
FIXTURES = Path(__file__).parent / "docs_fixtures"


def test_importing_the_module_loads_no_model_library() -> None:
    code = (
        "import sys, loader.embedding, loader.chunking, loader.documents; "
        "print([m for m in ('torch', 'transformers', 'sentence_transformers', 'tokenizers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_resolve_model(tmp_path: Path) -> None:
    bundled = str(bundled_model_path())
    assert (bundled_model_path() / "config.json").is_file()
    assert resolve_model(None) == (bundled, DEFAULT_MODEL)
    assert resolve_model("all-MiniLM-L6-v2") == (bundled, DEFAULT_MODEL)
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == (bundled, DEFAULT_MODEL)
    assert resolve_model(bundled) == (bundled, DEFAULT_MODEL)  # wherever it lies, the same model
    assert resolve_model(str(tmp_path)) == (str(tmp_path), str(tmp_path))
    assert resolve_model("org/other-model") == ("org/other-model", "org/other-model")


# --- The real model (slow: loaded once for this module) --------------------------------------------


@pytest.fixture(scope="module")
def embedder() -> Iterator[SentenceTransformerEmbedder]:
    # The torch backend, the reference (the ONNX backends: tests/loader/test_onnx_backend.py).
    loaded = load_embedder(backend="torch")
    assert isinstance(loaded, SentenceTransformerEmbedder)
    yield loaded


@pytest.fixture(scope="module")
def hf_tokenizer() -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bundled_model_path()), local_files_only=True)


@pytest.mark.slow
def test_model_properties(embedder: SentenceTransformerEmbedder) -> None:
    as_protocol: Embedder = embedder  # mypy checks that the class implements the protocol
    assert as_protocol.dimension == 384
    assert embedder.max_tokens == 254  # max_seq_length 256 minus [CLS] and [SEP]
    assert embedder.model_name == DEFAULT_MODEL
    assert embedder.backend == "torch"
    import torch

    assert embedder.device.startswith("cuda" if torch.cuda.is_available() else ("mps", "cpu"))


@pytest.mark.slow
def test_embeddings_are_unit_float32_and_similar_texts_are_closer(embedder: SentenceTransformerEmbedder) -> None:
    texts = [
        "Can I bring my cat in the cabin?",
        "Small cats and dogs may travel in the cabin in a carrier under the seat.",
        "Refunds are paid to the original form of payment within seven days.",
    ]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2
    assert embedder.embed([]).shape == (0, 384)
    # The same text gives the same vector, alone or in a batch.
    assert np.allclose(embedder.embed([texts[1]])[0], vectors[1], atol=1e-5)


@pytest.mark.slow
def test_token_counts_and_offsets_are_the_models(embedder: SentenceTransformerEmbedder, hf_tokenizer: object) -> None:
    text = "Northwind Air: pets (cats & dogs) fly for €55 — naïve café 東京 unaffordable\u200b"
    ids = hf_tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    assert embedder.count_tokens(text) == len(ids) == len(embedder.token_offsets(text))
    probe = "Hello, world"
    assert [probe[a:b] for a, b in embedder.token_offsets(probe)] == ["Hello", ",", "world"]
    long_text = "word " * 1000  # no truncation when counting, whatever the tokenizer file configures
    assert embedder.count_tokens(long_text) == 1000


@pytest.mark.slow
def test_max_tokens_is_exactly_what_the_model_reads(embedder: SentenceTransformerEmbedder) -> None:
    text = " ".join(f"topic{i % 50} detail" for i in range(400))
    offsets = embedder.token_offsets(text)

    def first(n: int) -> str:
        return text[: offsets[n - 1][1]]

    limit = embedder.max_tokens
    below, at, above = embedder.embed([first(limit - 1), first(limit), first(limit + 20)])
    assert not np.allclose(below, at, atol=1e-4)  # the last token within max_tokens is read...
    assert np.allclose(at, above, atol=1e-5)  # ...and anything past it would be silently cut off


@pytest.mark.slow
def test_an_unavailable_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="not available offline: pass the path of a local model"):
        load_embedder("no-such-org/no-such-model")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailableError, match="cannot load the model in"):
        load_embedder(str(tmp_path))


def _corpus() -> list[Document]:
    """Every document of data/ (when the sample corpus is there) and of the fixtures, plus hard cases."""
    docs = [d for root in (DATA, FIXTURES) if root.is_dir() for d in read_documents(root) if isinstance(d, Document)]
    hard = {
        "one-line.txt": " ".join(f"token{i} and more, words" for i in range(20_000)),
        "no-spaces.txt": "abcdefghij0123456789" * 5_000,
        "cjk.txt": "東京は日本の首都です。大阪は関西にあります。" * 500,
        "emoji.md": "# Faces\n\n" + "😀 🙂 " * 2_000,
        "code.md": "# Code\n\n```python\n" + "def f(x):\n    return x ** 2  # square\n" * 300 + "```\n",
    }
    return docs + [Document(source=s, title=s, text=t, content_hash="0" * 64) for s, t in hard.items()]


@pytest.mark.slow
@pytest.mark.parametrize("max_tokens", [None, 128])
def test_no_chunk_is_ever_truncated(
    embedder: SentenceTransformerEmbedder, hf_tokenizer: object, max_tokens: int | None
) -> None:
    docs = _corpus()
    assert len(docs) >= 6
    budget = max_tokens or embedder.max_tokens
    count = 0
    for document in docs:
        for chunk in chunk_document(document, embedder, max_tokens=max_tokens):
            # Checked with the model's tokenizer itself, [CLS] and [SEP] included.
            with_specials = len(hf_tokenizer(chunk.text)["input_ids"])  # type: ignore[operator]
            assert with_specials == chunk.tokens + 2 <= budget + 2 <= 256, (document.source, chunk.ordinal)
            assert document.text[chunk.start : chunk.end] in chunk.text
            count += 1
    assert count > len(docs)


@pytest.mark.slow
def test_retrieval_on_the_sample_corpus(embedder: SentenceTransformerEmbedder) -> None:
    pets = DATA / "travel" / "pets.md"
    if not pets.is_file():
        pytest.skip("the sample corpus has no travel/pets.md")
    wanted = {"travel/pets.md", "booking/refunds.md", "baggage/checked-baggage.md", "family/pregnancy.md"}
    docs = [d for d in read_documents(DATA) if isinstance(d, Document) and d.source in wanted]
    chunks = [c for d in docs for c in chunk_document(d, embedder)]
    vectors = embedder.embed([c.text for c in chunks])
    query = embedder.embed(["Can my dog travel with me in the cabin?"])[0]
    best = chunks[int(np.argmax(vectors @ query))]
    assert best.source == "travel/pets.md", best


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(text=st.lists(PIECES, max_size=300).map("".join), budget=st.sampled_from([16, 50, 254]))
def test_any_text_chunked_with_the_real_tokenizer(
    embedder: SentenceTransformerEmbedder, text: str, budget: int
) -> None:
    document = Document(source="any.md", title="Any", text=text, content_hash="0" * 64)
    check_invariants(document, chunk_document(document, embedder, max_tokens=budget), embedder, budget)
