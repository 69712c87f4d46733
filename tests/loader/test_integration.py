"""End to end over HTTP: the real read side (documents + chunking) on a copy of data/, real boto3, the
local endpoint; the fake embedder by default, the real bundled model in the ``slow`` tests."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loader.chunking import chunk_document
from loader.documents import read_documents
from loader.errors import WriteError
from loader.outputs import Target
from loader.query import search
from loader.records import Document, Embedder
from loader.retry import RetryPolicy
from loader.sync import LoadSettings, load
from tests.loader.fakes import FakeEmbedder
from tests.loader.support import FailingClient, create_index, keys_of, loader_client, stored

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
QUESTIONS = REPO / "tests" / "fixtures" / "questions.json"
FAST = RetryPolicy(max_attempts=10, base_delay=0.01, max_delay=0.2)
RealIndex = tuple[Any, Target, Embedder, Any, Path]  # client, target, model, first load's report, corpus


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA, tmp_path / "data"))


@pytest.fixture
def index(s3vectors_endpoint: Any) -> tuple[Any, Target]:
    client = loader_client(s3vectors_endpoint.endpoint_url)
    return client, create_index(client)


def _load(root: Path, client: Any, target: Target, embedder: Embedder | None = None, **settings: Any) -> Any:
    return load(root, client=client, target=target, embedder=embedder or FakeEmbedder(),
                settings=LoadSettings(**settings), policy=FAST)


def _chunk_counts(root: Path, **kwargs: Any) -> dict[str, int]:
    """source -> number of chunks, as the real read side makes them (with the fake model's tokens)."""
    return {
        d.source: len(chunk_document(d, FakeEmbedder(), **kwargs))
        for d in read_documents(root)
        if isinstance(d, Document)
    }


def test_sync_lifecycle_of_the_sample_corpus(corpus: Path, index: tuple[Any, Target]) -> None:
    client, target = index
    counts = _chunk_counts(corpus)
    first = _load(corpus, client, target)
    assert first.documents_read == len(counts) >= 5 and first.count("new") == len(counts)
    index_now = stored(client, target)
    assert first.vectors_written == first.chunks_embedded == len(index_now) == sum(counts.values())
    for source, n in counts.items():  # keys 0..n-1 for every document, nothing else
        assert keys_of(index_now, source) == [f"{source}#{i:04d}" for i in range(n)]

    embedder = FakeEmbedder()
    rerun = _load(corpus, client, target, embedder)
    assert (rerun.chunks_embedded, rerun.vectors_written, rerun.vectors_deleted) == (0, 0, 0)
    assert embedder.embedded_texts == [] and rerun.count("unchanged") == len(counts)

    # Edit one document: only its chunks are embedded again.
    pets = corpus / "travel" / "pets.md"
    pets.write_text(pets.read_text().replace("8 kg", "10 kg"))
    embedder = FakeEmbedder()
    edited = _load(corpus, client, target, embedder)
    n_pets = _chunk_counts(corpus)["travel/pets.md"]
    assert [s for s, _ in edited.plan["changed"]] == ["travel/pets.md"]
    assert edited.chunks_embedded == len(embedder.embedded_texts) == n_pets
    assert all(t.startswith("Travelling with Pets") for t in embedder.embedded_texts)
    assert any("10 kg" in m["text"] for m in stored(client, target).values() if m["source"] == "travel/pets.md")

    # Shrink it: the chunks past its new length are deleted.
    pets.write_text(pets.read_text()[:1500])
    shrunk = _load(corpus, client, target)
    n_small = _chunk_counts(corpus)["travel/pets.md"]
    assert n_small < n_pets and shrunk.vectors_deleted == n_pets - n_small
    assert keys_of(stored(client, target), "travel/pets.md") == [f"travel/pets.md#{i:04d}" for i in range(n_small)]

    # Remove it: pruned.
    pets.unlink()
    pruned = _load(corpus, client, target)
    assert pruned.plan["deleted"] == [("travel/pets.md", n_small)]
    assert keys_of(stored(client, target), "travel/pets.md") == []

    # Change a chunking setting: everything is rewritten, and the index holds exactly the new chunks.
    resized = _load(corpus, client, target, chunk_tokens=96)
    assert resized.count("changed") == len(counts) - 1
    assert len(stored(client, target)) == sum(_chunk_counts(corpus, max_tokens=96).values())


def test_an_interrupted_load_completes_on_rerun(corpus: Path, index: tuple[Any, Target]) -> None:
    client, target = index
    failing = FailingClient(client, operation="put_vectors", fail_on=2)
    with pytest.raises(WriteError):
        # Small chunks make several PutVectors batches; the second one "crashes".
        _load(corpus, failing, target, chunk_tokens=64, max_in_flight=1)
    assert len(stored(client, target)) > 0
    report = _load(corpus, client, target, chunk_tokens=64)
    assert report.vectors_written > 0
    final = stored(client, target)
    fresh = create_index(client, bucket="fresh-bucket")
    _load(corpus, client, fresh, chunk_tokens=64)
    assert stored(client, fresh) == final


def test_throttling_and_faults_are_recovered(corpus: Path, tmp_path: Path) -> None:
    from s3vectors_local import LocalEndpoint

    with LocalEndpoint(data_dir=tmp_path / "ep", throttle=True, fault_rate=0.2, fault_seed=3) as endpoint:
        client = loader_client(endpoint.endpoint_url)
        checker = endpoint.client(max_attempts=10)  # botocore's own retries, for the test's own reads
        target = create_index(checker)
        report = _load(corpus, client, target, chunk_tokens=64, max_in_flight=4)
        assert report.retries > 0
        assert report.vectors_written == report.chunks_embedded == len(stored(checker, target))
        again = _load(corpus, client, target, chunk_tokens=64)
        assert again.vectors_written == 0 and again.vectors_deleted == 0


# --- the real model (slow) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealIndex]:
    from loader.embedding import load_embedder
    from s3vectors_local import LocalEndpoint

    embedder = load_embedder()
    work = tmp_path_factory.mktemp("real-model")
    root = Path(shutil.copytree(DATA, work / "data"))  # a snapshot: the reload test must see the same files
    with LocalEndpoint(data_dir=work / "endpoint") as endpoint:
        client = loader_client(endpoint.endpoint_url)
        target = create_index(client)
        report = _load(root, client, target, embedder)
        yield client, target, embedder, report, root


@pytest.mark.slow
def test_real_model_pets_question_finds_the_pets_policy_first(real_index: RealIndex) -> None:
    client, target, embedder, report, _ = real_index
    assert report.vectors_written > 0 and report.warnings == []
    hits = search(client, target, embedder, "Can I bring my cat in the cabin?", top_k=5)
    assert hits[0].source == "travel/pets.md"
    filtered = search(client, target, embedder, "Can I bring my cat in the cabin?", top_k=5,
                      metadata_filter={"category": "pets"})
    assert filtered and {h.source for h in filtered} == {"travel/pets.md"}


@pytest.mark.slow
def test_real_model_finds_each_questions_document_in_the_top_3(real_index: RealIndex) -> None:
    client, target, embedder, _, _ = real_index
    questions = json.loads(QUESTIONS.read_text())
    misses = []
    for case in questions:
        hits = search(client, target, embedder, case["question"], top_k=3)
        if case["source"] not in [h.source for h in hits]:
            misses.append((case["question"], case["source"], [h.source for h in hits]))
    assert misses == []


@pytest.mark.slow
def test_real_model_reload_is_a_no_op(real_index: RealIndex) -> None:
    client, target, embedder, _, root = real_index
    again = _load(root, client, target, embedder)
    assert (again.chunks_embedded, again.vectors_written, again.vectors_deleted) == (0, 0, 0)
