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


def run(env: dict[str, Any], embedder: Any = None, client: Any = None, **settings: Any) -> Any:
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


def test_a_document_without_text_is_an_empty_skip_until_it_has_text(env: dict[str, Any]) -> None:
    """Nothing to embed and nothing stored: reported as skipped (empty), not as "new" on every run; once
    it has text it is new, and when its text goes again its vectors go too."""
    doc = env["root"] / "blank.md"
    doc.write_text("\n")  # simple_chunk makes no chunk of it
    for _ in range(2):
        report = run(env)
        assert ("blank.md", "empty (no text to embed)") in report.skipped
        assert "blank.md" not in {s for s, _ in report.plan["new"]} and not report.warnings
    doc.write_text(paragraphs(2, "blank"))
    assert ("blank.md", 2) in run(env).plan["new"]
    doc.write_text("\n")
    emptied = run(env)
    assert emptied.plan["changed"] == [("blank.md", 0)] and emptied.vectors_deleted == 2
    assert keys_of(stored(env["client"], env["target"]), "blank.md") == []


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
    loader's default limiter, writes are paced to the limit (the first 1,250 vectors are the burst; the
    other half-second of the index's bucket is the margin that absorbs jitter between client and server)."""
    import time

    from loader.retry import RetryStats
    from loader.writer import VectorWriter, default_limiter
    from s3vectors_local import LocalEndpoint

    records = _records(6000)
    with LocalEndpoint(data_dir=tmp_path / "ep", throttle=True) as endpoint:
        client = loader_client(endpoint.endpoint_url)
        target = create_index(client, dimension=8)
        stats = RetryStats()
        limiter = default_limiter() if client_side_limit else RateLimiter(1e6, 1e6)
        started = time.monotonic()
        with VectorWriter(client, target, max_in_flight=8, limiter=limiter, stats=stats,
                          policy=RetryPolicy(max_attempts=20, base_delay=0.05, max_delay=1.0)) as writer:
            writer.put(records)
            writer.flush()
        elapsed = time.monotonic() - started
        assert writer.written == 6000 and len(stored(client, target)) == 6000
        if client_side_limit:
            assert elapsed >= 1.7  # (6,000 - 1,250 burst) / 2,500 per second = 1.9 s
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


# --- the pipeline: overlap, ordering, bounded memory, lazy model, hash-first reading ---------------------
class RecordingClient:
    """Wraps a client; records when each PutVectors/DeleteVectors call starts and ends."""

    def __init__(self, client: Any) -> None:
        import threading

        self._client = client
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in ("put_vectors", "delete_vectors"):
            return attr

        def wrapped(**kwargs: Any) -> Any:
            with self._lock:
                self.events.append(("start", name))
            try:
                return attr(**kwargs)
            finally:
                with self._lock:
                    self.events.append(("end", name))

        return wrapped


def test_every_write_has_ended_before_the_first_delete_starts(env: dict[str, Any]) -> None:
    write_corpus(env["root"], {f"big/d{i}.md": paragraphs(120, f"big {i}") for i in range(5)})
    run(env)
    write_corpus(env["root"], {f"big/d{i}.md": paragraphs(40, f"big {i} edited") for i in range(5)})  # shrunk
    (env["root"] / "faq.md").unlink()  # pruned
    client = RecordingClient(env["client"])
    report = run(env, client=client, max_in_flight=8)
    assert report.vectors_written == 200 and report.vectors_deleted == 5 * 80 + 2
    first_delete = client.events.index(("start", "delete_vectors"))
    puts_before = [e for e in client.events[:first_delete] if e[1] == "put_vectors"]
    assert puts_before.count(("start", "put_vectors")) == puts_before.count(("end", "put_vectors")) > 0
    assert all(name == "delete_vectors" for _, name in client.events[first_delete:])


def test_the_reader_runs_ahead_of_the_embedder_by_a_bounded_amount(env: dict[str, Any], tmp_path: Path) -> None:
    """However large the corpus, at most the queue (64 documents) and the pool (sort_window chunks) wait."""
    from loader.pipeline import QUEUE_DOCUMENTS

    root = write_corpus(tmp_path / "many", {f"d{i:04d}.md": f"only paragraph of document {i}" for i in range(400)})
    read = [0]

    def counting_read(root: Path, *, strict: bool = False) -> Any:
        for item in simple_read(root, strict=strict):
            read[0] += 1
            yield item

    class SlowEmbedder(FakeEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.ahead: list[int] = []

        def embed(self, texts: Any) -> Any:
            import time

            time.sleep(0.002)  # the reader gets time to run as far ahead as it can
            self.ahead.append(read[0] - len(self.embedded_texts))
            return super().embed(texts)

    embedder = SlowEmbedder()
    report = load(
        root,
        client=env["client"],
        target=env["target"],
        embedder=embedder,
        settings=LoadSettings(batch_size=4, sort_window=16),
        read_documents=counting_read,
        chunk_document=simple_chunk,
        policy=FAST,
    )
    assert report.chunks_embedded == 400 and len(embedder.ahead) == 100
    # One chunk per document: read - embedded <= queue + pool + the item in the reader's hands + one batch.
    assert max(embedder.ahead) <= QUEUE_DOCUMENTS + 16 + 2 + 4


def test_batches_are_the_longest_pending_chunks(env: dict[str, Any], tmp_path: Path) -> None:
    # 12 chunks of varied lengths: the embedder waits for 2 batches' worth (or the end) before the first batch.
    docs = {f"d{i}.md": "\n\n".join(" ".join(["word"] * (1 + (7 * j + i) % 23)) for j in range(6)) for i in range(2)}
    root = write_corpus(tmp_path / "lengths", docs)
    batches: list[list[int]] = []

    class Recording(FakeEmbedder):
        def embed(self, texts: Any) -> Any:
            batches.append([len(t.split()) for t in texts])
            return super().embed(texts)

    load(
        root,
        client=env["client"],
        target=env["target"],
        embedder=Recording(),
        settings=LoadSettings(batch_size=6, sort_window=1000),
        read_documents=simple_read,
        chunk_document=simple_chunk,
        policy=FAST,
    )
    lengths = [n for batch in batches for n in batch]
    assert len(lengths) == 12 and lengths == sorted(lengths, reverse=True)  # the whole corpus fit in the pool


def test_stage_times_are_reported(env: dict[str, Any]) -> None:
    from loader.pipeline import StageTimes

    times = StageTimes()
    load(
        env["root"],
        client=env["client"],
        target=env["target"],
        embedder=FakeEmbedder(),
        read_documents=simple_read,
        chunk_document=simple_chunk,
        policy=FAST,
        times=times,
    )
    out = times.to_dict()
    assert out["wall"] > 0 and out["embed"] > 0 and out["write"] > 0 and out["index"] > 0
    assert out["hidden_by_overlap"] == pytest.approx(max(0.0, out["busy"] - out["wall"]), abs=1e-3)


def test_chunk_pool_takes_the_longest_first_oldest_first_on_ties() -> None:
    from loader.pipeline import ChunkPool

    pool: ChunkPool[str] = ChunkPool(len)
    pool.add(["bb", "a", "cccc", "dd", "eee"])
    assert pool.take(2) == ["cccc", "eee"]
    pool.add(["ffff"])
    assert pool.take(3) == ["ffff", "bb", "dd"] and len(pool) == 1


class CountingFactory:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> FakeEmbedder:
        self.calls += 1
        return FakeEmbedder()


def test_an_unchanged_rerun_never_loads_a_lazy_model(env: dict[str, Any], tmp_path: Path) -> None:
    from loader.lazy import LazyEmbedder

    cache = tmp_path / "cache.json"
    first = CountingFactory()
    lazy = LazyEmbedder(first, key={"model": "fake"}, cache=cache)
    assert run(env, lazy).chunks_embedded == 10 and first.calls == 1  # no cached identity: loaded at once
    again = CountingFactory()
    lazy = LazyEmbedder(again, key={"model": "fake"}, cache=cache)
    report = run(env, lazy)
    assert report.count("unchanged") == 3 and report.chunks_embedded == 0
    assert again.calls == 0 and not lazy.loaded  # the identity came from the cache
    (env["root"] / "faq.md").write_text(paragraphs(3, "faq edited"), encoding="utf-8")
    lazy = LazyEmbedder(again, key={"model": "fake"}, cache=cache)
    report = run(env, lazy)
    assert report.count("changed") == 1 and report.chunks_embedded == 3 and again.calls == 1


def test_a_lazy_model_with_another_identity_stops_the_run_before_any_write(env: dict[str, Any], tmp_path: Path) -> None:
    from loader.lazy import LazyEmbedder

    cache = tmp_path / "cache.json"
    LazyEmbedder(lambda: FakeEmbedder(dimension=384), key={"m": 1}, cache=cache).dimension  # noqa: B018
    (env["root"] / "new.md").write_text(paragraphs(2, "new"), encoding="utf-8")
    lazy = LazyEmbedder(lambda: FakeEmbedder(max_tokens=128), key={"m": 1}, cache=cache)  # same key, other model
    with pytest.raises(LoaderError, match="cached identity"):
        run(env, lazy)
    assert stored(env["client"], env["target"]) == {}
    assert LazyEmbedder(CountingFactory(), key={"m": 1}, cache=cache).max_tokens == 128  # the cache was corrected


def test_unchanged_files_are_not_parsed_on_a_rerun(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from loader import documents

    def real_read(**kwargs: Any) -> Any:
        return load(
            env["root"], client=env["client"], target=env["target"], embedder=FakeEmbedder(), policy=FAST, **kwargs
        )

    first = real_read()
    assert first.count("new") == 3
    parsed: list[str] = []
    original = documents.document_from_bytes

    def counting(source: str, data: bytes, **options: Any) -> Any:
        parsed.append(source)
        return original(source, data, **options)

    monkeypatch.setattr(documents, "document_from_bytes", counting)
    report = real_read()
    assert report.count("unchanged") == 3 and parsed == []
    (env["root"] / "bags/fees.md").write_text(paragraphs(4, "fees edited"), encoding="utf-8")
    report = real_read()
    assert parsed == ["bags/fees.md"] and report.count("changed") == 1 and report.count("unchanged") == 2


def test_hash_first_reading_yields_what_read_documents_yields() -> None:
    from loader.documents import read_documents
    from loader.records import Document
    from loader.sync import _hash_first

    data = Path(__file__).resolve().parents[2] / "data"
    assert list(_hash_first(data, strict=False, unchanged=lambda source, digest: False)) == list(read_documents(data))
    unparsed = _hash_first(data, strict=False, unchanged=lambda source, digest: True)
    light = [d for d in unparsed if isinstance(d, Document)]
    full = [d for d in read_documents(data) if isinstance(d, Document)]
    assert [(d.source, d.content_hash) for d in light] == [(d.source, d.content_hash) for d in full]
    assert len(light) == 28 and all(d.text == "" for d in light)  # not parsed


def test_current_keys_answer_like_the_set_of_every_key() -> None:
    from loader.sync import CurrentKeys

    long_source = "deep/" + "x" * 1100 + ".md"  # its keys carry a hash of the path
    docs = {"a.md": 3, "b#1.md": 2, "c.md": 0, long_source: 2}
    kept = CurrentKeys()
    for source, count in docs.items():
        kept.add(source, count)
    every = {vector_key(source, i) for source, count in docs.items() for i in range(count)}
    probes = every | {vector_key("a.md", 3), vector_key("c.md", 0), vector_key("z.md", 0), vector_key(long_source, 2),
                      "a.md", "a.md#3", "a.md#00001", "b#1.md#0001", "b#0001"}
    assert {key for key in probes if key in kept} == every
