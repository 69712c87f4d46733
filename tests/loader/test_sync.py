"""Sync logic against the local endpoint, with an exactly predictable read side (one chunk per paragraph).

Every test talks to a real ``s3vectors_local`` endpoint over HTTP through boto3.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from loader.errors import IndexMismatchError, LoaderError, WriteError
from loader.index import IndexState
from loader.keys import vector_key
from loader.outputs import Target
from loader.retry import RateLimiter, RetryPolicy
from loader.sync import LoadSettings, classify, delete_source, load, settings_fingerprint, stored_hash
from tests.loader.fakes import FakeEmbedder
from tests.loader.support import (
    FailingClient,
    create_index,
    keys_of,
    loader_client,
    paragraphs,
    simple_chunk,
    simple_read,
    stored,
    write_corpus,
)

FAST = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.2)


@pytest.fixture
def env(s3vectors_endpoint: Any, tmp_path: Path) -> dict[str, Any]:
    client = loader_client(s3vectors_endpoint.endpoint_url)
    target = create_index(client)
    root = write_corpus(
        tmp_path / "docs",
        {"pets/cats.md": paragraphs(5, "cats"), "bags/fees.md": paragraphs(3, "fees"), "faq.md": paragraphs(2, "faq")},
    )
    return {"client": client, "target": target, "root": root, "endpoint": s3vectors_endpoint}


def run(env: dict[str, Any], embedder: FakeEmbedder | None = None, client: Any = None, **settings: Any) -> Any:
    return load(
        env["root"],
        client=client or env["client"],
        target=env["target"],
        embedder=embedder or FakeEmbedder(),
        settings=LoadSettings(**settings),
        read_documents=simple_read,
        chunk_document=simple_chunk,
        policy=FAST,
    )


def test_stored_hash_changes_with_document_model_or_chunking_settings() -> None:
    base = settings_fingerprint(FakeEmbedder(), LoadSettings())
    assert stored_hash("doc-v1", base) == stored_hash("doc-v1", base)
    variants = [
        settings_fingerprint(FakeEmbedder(), LoadSettings(overlap_tokens=0)),
        settings_fingerprint(FakeEmbedder(), LoadSettings(chunk_tokens=100)),
        settings_fingerprint(FakeEmbedder(max_tokens=128), LoadSettings()),
        settings_fingerprint(FakeEmbedder(dimension=64), LoadSettings()),
    ]
    hashes = {stored_hash("doc-v1", base), stored_hash("doc-v2", base), *(stored_hash("doc-v1", v) for v in variants)}
    assert len(hashes) == 6

    class Renamed(FakeEmbedder):
        model_name = "another-model"

    assert settings_fingerprint(Renamed(), LoadSettings()) != base
    # Unaffected by settings that do not change vectors (the chunk budget is capped by the model's limit).
    assert settings_fingerprint(FakeEmbedder(max_tokens=128), LoadSettings(chunk_tokens=500)) == variants[2]
    assert settings_fingerprint(FakeEmbedder(), LoadSettings(batch_size=8, max_in_flight=1, prune=False)) == base


def _state(entries: dict[str, tuple[str, int, int, str]]) -> IndexState:
    state = IndexState()
    for key, (source, chunk, chunks, content_hash) in entries.items():
        state.add(key, {"source": source, "chunk": chunk, "chunks": chunks, "content_hash": content_hash})
    return state


def test_classify() -> None:
    k0, k1, k2 = (vector_key("a.md", i) for i in range(3))
    assert classify("a.md", "h", IndexState()) == ("new", 0)
    full = {k0: ("a.md", 0, 2, "h"), k1: ("a.md", 1, 2, "h")}
    assert classify("a.md", "h", _state(full)) == ("unchanged", 2)
    assert classify("a.md", "h2", _state(full)) == ("changed", 0)
    assert classify("a.md", "h", _state({k0: full[k0]})) == ("changed", 0)  # half-written
    assert classify("a.md", "h", _state({**full, k1: ("a.md", 1, 2, "old")})) == ("changed", 0)
    assert classify("a.md", "h", _state({k0: ("a.md", 0, 3, "h"), k1: ("a.md", 1, 3, "h")})) == ("changed", 0)
    assert classify("a.md", "h", _state({k1: ("a.md", 1, 2, "h")})) == ("changed", 0)  # key 0 lost
    # Surplus keys (e.g. a shrink interrupted before its deletes) do not make a document changed.
    assert classify("a.md", "h", _state({**full, k2: ("a.md", 2, 3, "old")})) == ("unchanged", 2)


def test_full_load_writes_one_vector_per_chunk_with_its_metadata(env: dict[str, Any]) -> None:
    report = run(env)
    index = stored(env["client"], env["target"])
    assert sorted(index) == sorted(
        [vector_key("pets/cats.md", i) for i in range(5)]
        + [vector_key("bags/fees.md", i) for i in range(3)]
        + [vector_key("faq.md", i) for i in range(2)]
    )
    meta = index["pets/cats.md#0003"]
    assert meta["source"] == "pets/cats.md" and meta["chunk"] == 3 and meta["chunks"] == 5
    assert meta["category"] == "pets" and meta["title"] == "cats" and meta["section"] == "Part 0"
    assert meta["text"].startswith("Paragraph 3 about cats")
    assert (report.documents_read, report.count("new")) == (3, 3)
    assert (report.chunks_embedded, report.vectors_written) == (10, 10)
    assert report.vectors_deleted == 0 and report.requests == 1


def test_rerun_changes_nothing(env: dict[str, Any]) -> None:
    run(env)
    before = stored(env["client"], env["target"])
    embedder = FakeEmbedder()
    report = run(env, embedder)
    assert embedder.embedded_texts == []
    assert (report.chunks_embedded, report.vectors_written, report.vectors_deleted, report.requests) == (0, 0, 0, 0)
    assert report.count("unchanged") == 3
    assert stored(env["client"], env["target"]) == before


def test_an_edited_document_alone_is_re_embedded(env: dict[str, Any]) -> None:
    run(env)
    (env["root"] / "bags/fees.md").write_text(paragraphs(3, "charges"))
    embedder = FakeEmbedder()
    report = run(env, embedder)
    assert [s for s, _ in report.plan["changed"]] == ["bags/fees.md"]
    assert all("charges" in t for t in embedder.embedded_texts) and len(embedder.embedded_texts) == 3
    assert stored(env["client"], env["target"])["bags/fees.md#0001"]["text"].startswith("Paragraph 1 about charges")


def test_a_shrunk_document_loses_its_surplus_chunks(env: dict[str, Any]) -> None:
    run(env)
    (env["root"] / "pets/cats.md").write_text(paragraphs(2, "cats"))
    report = run(env)
    assert report.vectors_deleted == 3 and report.vectors_written == 2
    index = stored(env["client"], env["target"])
    assert keys_of(index, "pets/cats.md") == ["pets/cats.md#0000", "pets/cats.md#0001"]
    assert {index[k]["chunks"] for k in keys_of(index, "pets/cats.md")} == {2}


def test_a_removed_document_is_pruned_unless_no_prune(env: dict[str, Any]) -> None:
    run(env)
    (env["root"] / "faq.md").unlink()
    kept = run(env, prune=False)
    assert kept.vectors_deleted == 0 and any("kept (--no-prune)" in w for w in kept.warnings)
    assert keys_of(stored(env["client"], env["target"]), "faq.md") == ["faq.md#0000", "faq.md#0001"]
    pruned = run(env)
    assert pruned.plan["deleted"] == [("faq.md", 2)] and pruned.vectors_deleted == 2
    assert keys_of(stored(env["client"], env["target"]), "faq.md") == []


def test_an_empty_folder_does_not_empty_the_index_unless_prune_is_explicit(env: dict[str, Any], tmp_path: Path) -> None:
    run(env)
    empty = tmp_path / "empty"
    empty.mkdir()
    env_empty = {**env, "root": empty}
    report = run(env_empty)
    assert report.vectors_deleted == 0 and any("not pruning" in w for w in report.warnings)
    assert len(stored(env["client"], env["target"])) == 10
    report = run(env_empty, prune_explicit=True)
    assert report.vectors_deleted == 10 and stored(env["client"], env["target"]) == {}


def test_dry_run_reports_the_plan_and_writes_nothing(env: dict[str, Any]) -> None:
    run(env)
    (env["root"] / "bags/fees.md").write_text(paragraphs(1, "fees"))
    (env["root"] / "faq.md").unlink()
    (env["root"] / "new.md").write_text(paragraphs(4, "new"))
    before = stored(env["client"], env["target"])
    embedder = FakeEmbedder()
    report = run(env, embedder, dry_run=True)
    assert report.plan == {
        "new": [("new.md", 4)],
        "changed": [("bags/fees.md", 1)],
        "unchanged": [("pets/cats.md", 5)],
        "deleted": [("faq.md", 2)],
    }
    assert report.vectors_stale == 4  # 2 surplus chunks of fees.md + 2 of faq.md
    assert embedder.embedded_texts == [] and report.vectors_written == report.vectors_deleted == 0
    assert stored(env["client"], env["target"]) == before
    human = report.human()
    assert "Dry run" in human and "new      new.md (4 chunks)" in human and "4 stale to delete" in human


def test_a_load_interrupted_during_writes_is_completed_by_running_it_again(env: dict[str, Any]) -> None:
    big = {f"topic{t}/doc{d}.md": paragraphs(60, f"topic {t} doc {d}") for t in range(3) for d in range(8)}
    write_corpus(env["root"], big)  # 1,440 + 10 chunks: three full PutVectors batches
    failing = FailingClient(env["client"], operation="put_vectors", fail_on=2)
    with pytest.raises(WriteError, match="simulated crash"):
        run(env, client=failing, max_in_flight=1)
    partial = stored(env["client"], env["target"])
    assert 0 < len(partial) < 1450
    report = run(env)
    assert report.count("unchanged") < 27  # some documents were already complete
    final = stored(env["client"], env["target"])
    assert len(final) == 1450
    # Same result as one uninterrupted load into a fresh index.
    fresh_target = create_index(env["client"], bucket="fresh-bucket")
    run({**env, "target": fresh_target})
    assert stored(env["client"], fresh_target) == final


def test_a_load_interrupted_during_deletes_is_completed_by_running_it_again(env: dict[str, Any]) -> None:
    write_corpus(env["root"], {f"old/d{i}.md": paragraphs(100, f"old {i}") for i in range(6)})
    run(env)
    for i in range(6):
        (env["root"] / f"old/d{i}.md").unlink()
    failing = FailingClient(env["client"], operation="delete_vectors", fail_on=2)
    with pytest.raises(WriteError):
        run(env, client=failing, max_in_flight=1)
    assert 10 < len(stored(env["client"], env["target"])) < 610
    report = run(env)
    assert report.vectors_written == 0 and report.vectors_deleted > 0
    assert len(stored(env["client"], env["target"])) == 10


def test_a_half_written_document_is_redone(env: dict[str, Any]) -> None:
    run(env)
    env["client"].delete_vectors(**env["target"].index_ref(), keys=["pets/cats.md#0002"])
    report = run(env)
    assert [s for s, _ in report.plan["changed"]] == ["pets/cats.md"] and report.vectors_written == 5
    assert len(keys_of(stored(env["client"], env["target"]), "pets/cats.md")) == 5


def test_other_settings_rewrite_every_document(env: dict[str, Any]) -> None:
    run(env)
    report = run(env, overlap_tokens=0)
    assert report.count("changed") == 3 and report.vectors_written == 10


def test_vectors_without_the_loaders_metadata_are_left_alone(env: dict[str, Any]) -> None:
    env["client"].put_vectors(
        **env["target"].index_ref(), vectors=[{"key": "foreign-1", "data": {"float32": [1.0] + [0.0] * 383}}]
    )
    report = run(env)
    assert report.foreign_vectors == 1 and "foreign-1" in stored(env["client"], env["target"])


def test_skipped_files_are_reported_and_their_vectors_kept(env: dict[str, Any]) -> None:
    write_corpus(env["root"], {"notes.bin": "x"})
    report = run(env)
    assert report.skipped == [("notes.bin", "unsupported type")]


def test_two_documents_with_the_same_normalized_path_keep_the_first(env: dict[str, Any]) -> None:
    import unicodedata

    from loader.records import Document

    write_corpus(env["root"], {"café.md": paragraphs(2, "coffee")})

    def twice(root: Path, *, strict: bool = False) -> Any:
        docs = [d for d in simple_read(root) if isinstance(d, Document)]
        yield from docs
        cafe = next(d for d in docs if d.source == "café.md")
        yield dataclasses.replace(cafe, source=unicodedata.normalize("NFD", cafe.source), text="other")

    report = load(env["root"], client=env["client"], target=env["target"], embedder=FakeEmbedder(),
                  read_documents=twice, chunk_document=simple_chunk, policy=FAST)
    assert report.documents_read == 4
    nfd = unicodedata.normalize("NFD", "café.md")
    assert report.skipped == [(nfd, "same source path as another document (café.md)")]
    assert keys_of(stored(env["client"], env["target"]), "café.md") == ["café.md#0000", "café.md#0001"]


def test_the_index_is_checked_before_any_write(s3vectors_endpoint: Any, tmp_path: Path) -> None:
    client = loader_client(s3vectors_endpoint.endpoint_url)
    root = write_corpus(tmp_path / "docs", {"a.md": "hello"})
    wrong_dim = create_index(client, dimension=64, bucket="dim-bucket")
    with pytest.raises(IndexMismatchError, match=r"stores 64-dimensional vectors but the model .* produces 384"):
        load(root, client=client, target=wrong_dim, embedder=FakeEmbedder(), read_documents=simple_read,
             chunk_document=simple_chunk)
    filterable = create_index(client, non_filterable=("summary",), bucket="text-bucket")
    with pytest.raises(IndexMismatchError, match=r"'text' .* is filterable .* redeploy"):
        load(root, client=client, target=filterable, embedder=FakeEmbedder(), read_documents=simple_read,
             chunk_document=simple_chunk)
    for target in (wrong_dim, filterable):
        assert stored(client, target) == {}
    with pytest.raises(LoaderError, match="not found"):
        load(root, client=client, target=Target("dim-bucket", "no-such-index"), embedder=FakeEmbedder(),
             read_documents=simple_read, chunk_document=simple_chunk)


def test_euclidean_indexes_are_supported(s3vectors_endpoint: Any, tmp_path: Path) -> None:
    client = loader_client(s3vectors_endpoint.endpoint_url)
    target = create_index(client, metric="euclidean")
    root = write_corpus(tmp_path / "docs", {"a.md": paragraphs(2, "a")})
    report = load(root, client=client, target=target, embedder=FakeEmbedder(), read_documents=simple_read,
                  chunk_document=simple_chunk)
    assert report.vectors_written == 2 and report.index_metric == "euclidean"


def test_delete_source(env: dict[str, Any]) -> None:
    run(env)
    assert delete_source(env["client"], env["target"], "./pets/cats.md") == 5
    assert keys_of(stored(env["client"], env["target"]), "pets/cats.md") == []
    with pytest.raises(LoaderError, match=r"did you mean faq\.md"):
        delete_source(env["client"], env["target"], "faq.mdx")


def _records(n: int) -> list[Any]:
    import numpy as np

    from loader.writer import VectorRecord

    vectors = np.random.default_rng(1).standard_normal((n, 8)).astype(np.float32)
    return [VectorRecord(f"v{i:05d}", vectors[i].tolist(), {"source": "s", "content_hash": "h"}) for i in range(n)]


@pytest.mark.parametrize("client_side_limit", [False, True])
def test_writes_adapt_to_the_index_write_limits(tmp_path: Path, client_side_limit: bool) -> None:
    """Against an endpoint that enforces AWS's 1,000 requests/s and 2,500 vectors/s per index: without
    a client-side limit it answers 429s, which are retried until everything is written; with the
    loader's default limiter, writes are paced to the limit (the first 2,500 vectors are the burst)."""
    import time

    from loader.retry import RetryStats
    from loader.writer import VectorWriter
    from s3vectors_local import LocalEndpoint

    records = _records(6000)
    with LocalEndpoint(data_dir=tmp_path / "ep", throttle=True) as endpoint:
        client = loader_client(endpoint.endpoint_url)
        target = create_index(client, dimension=8)
        stats = RetryStats()
        limiter = RateLimiter() if client_side_limit else RateLimiter(1e6, 1e6)
        started = time.monotonic()
        with VectorWriter(client, target, max_in_flight=8, limiter=limiter, stats=stats,
                          policy=RetryPolicy(max_attempts=20, base_delay=0.05, max_delay=1.0)) as writer:
            writer.put(records)
            writer.flush()
        elapsed = time.monotonic() - started
        assert writer.written == 6000 and len(stored(client, target)) == 6000
        if client_side_limit:
            assert elapsed >= 1.3  # (6,000 - 2,500 burst) / 2,500 per second = 1.4 s
            assert stats.throttled <= 2
        else:
            assert stats.throttled > 0


def test_injected_faults_are_retried(tmp_path: Path) -> None:
    from s3vectors_local import LocalEndpoint

    with LocalEndpoint(data_dir=tmp_path / "ep", fault_rate=0.2, fault_seed=7) as endpoint:
        client = loader_client(endpoint.endpoint_url)
        target = create_index(endpoint.client(max_attempts=10))
        root = write_corpus(tmp_path / "docs", {f"d{i}.md": paragraphs(60, f"doc {i}") for i in range(20)})
        report = load(root, client=client, target=target, embedder=FakeEmbedder(),
                      read_documents=simple_read, chunk_document=simple_chunk, policy=FAST)
        assert report.retries > 0 and report.vectors_written == 1200
        again = load(root, client=client, target=target, embedder=FakeEmbedder(),
                     read_documents=simple_read, chunk_document=simple_chunk, policy=FAST)
        assert again.vectors_written == 0 and again.count("unchanged") == 20
