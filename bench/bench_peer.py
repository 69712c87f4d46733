"""The loader against a peer (issue 5, part 4): langchain-aws ``AmazonS3Vectors.add_texts``, unmodified.

    python -m bench.bench_peer            # ~2-3 min on 2 cores
    python -m bench.bench_peer --quick    # 6 documents, write path on 2,000 vectors

Both write to the same local endpoint (its own process) with the same injected latency (default 50 ms
per request) and AWS's per-index write throttling on, each into its own fresh index. Two comparisons:

A. **End to end, same model, same embedder**: ``loader.sync.load`` of the corpus vs ``add_texts`` of the
   very chunks the loader makes (texts, loader metadata, loader keys as ids), with the loader's embedder
   wrapped as a LangChain ``Embeddings`` for the peer. The peer is not charged for reading and chunking;
   the loader is. Rounds alternate who goes first; the best time of each is kept. Ratio: peer seconds /
   loader seconds.
C. **End to end, each as usually set up** (only when the loader's default embedder is not the
   sentence-transformers torch model, i.e. after issue 5 part 1): the loader with its default backend vs
   the peer with the same model through sentence-transformers in float32 (what langchain-huggingface's
   ``HuggingFaceEmbeddings`` runs; batch 32, its default).
B. **Write path, embeddings precomputed** (the part a loader controls; what the load costs once
   embedding is fast, e.g. on a GPU or with a cached model): the same N vectors with metadata through
   the loader's ``VectorWriter`` vs through ``add_texts`` with an ``Embeddings`` that returns the
   precomputed vectors. Ratio: peer seconds / loader seconds; target >= 3x.

The peer's defaults, as langchain-aws 1.9.1 ships them: 200 vectors per PutVectors, one request at a
time (embed a batch, send it, wait, next batch), vectors converted by botocore's serializer,
page text stored in metadata under ``_page_content`` (filterable unless listed in
``non_filterable_metadata_keys``: here it is, or chunks over 2 KB would be refused), random UUID keys
unless ``ids`` are given (so re-running duplicates everything), botocore's default retries, no
client-side rate limiting, no sync (unchanged documents are re-embedded and re-written).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_pipeline import subset
from bench.common import (
    DATA,
    FastFakeEmbedder,
    chunk_metadata,
    corpus_chunks,
    create_index,
    list_keys,
    load_real_embedder,
    loader_client,
    local_server,
    plain_client,
    random_vectors,
    ratio,
    summary_row,
    write_result,
)

PEER_DEFAULTS = {
    "package": "langchain-aws",
    "class": "langchain_aws.vectorstores.AmazonS3Vectors",
    "add_texts_batch_size": 200,
    "requests_in_flight": 1,
    "serialization": "botocore (parameter validation + per-float rest-json serializer)",
    "text_stored_as": "_page_content metadata (filterable by default)",
    "keys": "uuid4 unless ids are passed",
    "retries": "botocore default (legacy mode, 5 attempts)",
    "client_rate_limit": None,
    "incremental_sync": False,
}


def embeddings_for(embedder: Any) -> Any:
    from langchain_core.embeddings import Embeddings

    class LoaderEmbeddings(Embeddings):
        """The loader's embedder as a LangChain ``Embeddings`` (same model, same batches, same vectors)."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()

    return LoaderEmbeddings()


def sentence_transformers_embeddings() -> Any:
    """The same model as a LangChain user runs it: sentence-transformers, torch, float32, batch 32."""
    from langchain_core.embeddings import Embeddings
    from sentence_transformers import SentenceTransformer

    from loader.embedding import bundled_model_path

    model = SentenceTransformer(str(bundled_model_path()), device="cpu", local_files_only=True)

    class HuggingFaceLike(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return model.encode(texts, batch_size=32, normalize_embeddings=True).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return HuggingFaceLike()


def precomputed_embeddings(vectors: dict[str, Any]) -> Any:
    from langchain_core.embeddings import Embeddings

    class Precomputed(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [vectors[t].tolist() for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return vectors[text].tolist()

    return Precomputed()


def peer_store(url: str, index: str, embeddings: Any) -> Any:
    import contextlib

    from langchain_aws.vectorstores import AmazonS3Vectors

    client = plain_client(url)  # what a LangChain user gets: botocore defaults
    with contextlib.suppress(client.exceptions.ConflictException):
        client.create_vector_bucket(vectorBucketName="peer-bucket")
    return client, AmazonS3Vectors(vector_bucket_name="peer-bucket", index_name=index, embedding=embeddings,
                                   non_filterable_metadata_keys=["_page_content"], client=client)


def end_to_end(embedder: Any, root: Path, url: str, rounds: int, peer_embeddings: Any = None,
               tag: str = "e2e") -> dict[str, Any]:
    """Loader and peer alternately (loader, peer, peer, loader, ...), each into a fresh index; best of each."""
    from loader.keys import normalize_source, vector_key
    from loader.metadata import build_metadata
    from loader.outputs import Target
    from loader.sync import load

    pairs = corpus_chunks(root, embedder)
    counts: dict[str, int] = {}
    for doc, _ in pairs:
        counts[doc.source] = counts.get(doc.source, 0) + 1
    texts, metadatas, ids = [], [], []
    for doc, chunk in pairs:
        source = normalize_source(doc.source)
        built = build_metadata(doc, chunk, chunk_count=counts[doc.source], content_hash="0" * 32, source=source,
                               non_filterable=frozenset({"text"}))
        metadata = {k: v for k, v in built.metadata.items() if k != "text"}  # the peer stores the text itself
        texts.append(chunk.text)
        metadatas.append(metadata)
        ids.append(vector_key(source, chunk.ordinal))
    embedder.embed(texts[:8])  # warm-up, so that neither side pays the first call's allocations

    loader = loader_client(url)
    ours: list[float] = []
    peer: list[float] = []
    written: list[int] = []
    stored_peer: list[int] = []

    def run_loader(i: int) -> None:
        target = create_index(loader, index=f"{tag}-loader-{i}", dimension=embedder.dimension)
        started = time.perf_counter()
        report = load(root, client=loader, target=target, embedder=embedder)
        ours.append(time.perf_counter() - started)
        written.append(report.vectors_written)

    def run_peer(i: int) -> None:
        client, store = peer_store(url, f"{tag}-peer-{i}", peer_embeddings or embeddings_for(embedder))
        started = time.perf_counter()
        store.add_texts(texts, metadatas, ids=ids)
        peer.append(time.perf_counter() - started)
        stored_peer.append(len(list_keys(client, Target(bucket="peer-bucket", index=f"{tag}-peer-{i}"))))

    for i in range(rounds):
        first, second = (run_loader, run_peer) if i % 2 == 0 else (run_peer, run_loader)
        first(i)
        second(i)
        print(f"  round {i + 1}: loader {ours[-1]:.2f} s, peer {peer[-1]:.2f} s", flush=True)
    return {
        "chunks": len(texts),
        "rounds": rounds,
        "loader_seconds": round(min(ours), 3),
        "peer_seconds": round(min(peer), 3),
        "loader_seconds_all": [round(x, 3) for x in ours],
        "peer_seconds_all": [round(x, 3) for x in peer],
        "loader_vectors": min(written),
        "peer_vectors": min(stored_peer),
        "speedup": ratio(min(peer), min(ours), 2),
    }


def write_path(url: str, n: int, dimension: int) -> dict[str, Any]:
    from loader.writer import VectorRecord, VectorWriter

    vectors = random_vectors(n, dimension, seed=3)
    texts = [f"chunk {i}: " + chunk_metadata(i)["text"] for i in range(n)]
    metadatas = [{k: v for k, v in chunk_metadata(i).items() if k != "text"} for i in range(n)]
    ids = [f"docs/doc-{i // 12:05d}.md#{i % 12}" for i in range(n)]

    loader = loader_client(url)
    target = create_index(loader, index="write-loader", dimension=dimension)
    records = [VectorRecord(ids[i], vectors[i], {**metadatas[i], "text": texts[i]}) for i in range(n)]
    started = time.perf_counter()
    with VectorWriter(loader, target) as writer:
        for lo in range(0, n, 64):  # as the loader hands them over: one embedding batch at a time
            writer.put(records[lo: lo + 64])
        writer.flush()
    ours = time.perf_counter() - started

    client, store = peer_store(url, "write-peer", precomputed_embeddings(dict(zip(texts, vectors, strict=True))))
    started = time.perf_counter()
    store.add_texts(texts, metadatas, ids=ids)
    peer = time.perf_counter() - started
    from loader.outputs import Target

    return {
        "vectors": n,
        "loader_seconds": round(ours, 3),
        "peer_seconds": round(peer, 3),
        "loader_vectors_per_s": round(n / ours, 1),
        "peer_vectors_per_s": round(n / peer, 1),
        "loader_stored": len(list_keys(loader, target)),
        "peer_stored": len(list_keys(client, Target(bucket="peer-bucket", index="write-peer"))),
        "speedup": ratio(peer, ours, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="6 documents; 2,000 vectors for the write path")
    ap.add_argument("--docs", type=int, help="use only the first N files of the corpus")
    ap.add_argument("--corpus", type=Path, default=DATA)
    ap.add_argument("--vectors", type=int, help="vectors for the write-path comparison (default 10,000)")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--no-throttle", action="store_true", help="turn AWS's write limits off on the endpoint")
    ap.add_argument("--fake", action="store_true", help="a fast fake embedder instead of the model (tests)")
    ap.add_argument("--skip-end-to-end", action="store_true")
    ap.add_argument("--rounds", type=int, help="end-to-end rounds, alternating who goes first (default 2; quick 1)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    docs = args.docs or (6 if args.quick else None)
    n = args.vectors or (2_000 if args.quick else 10_000)
    import langchain_aws

    result: dict[str, Any] = {"quick": args.quick, "latency_ms": args.latency_ms, "throttle": not args.no_throttle,
                              "peer": {**PEER_DEFAULTS, "version": getattr(langchain_aws, "__version__", "?")}}
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        root = subset(args.corpus, docs, Path(tmp) / "corpus") if docs else args.corpus
        with local_server(throttle=not args.no_throttle, latency_ms=args.latency_ms) as server:
            print(f"B. write path, {n:,} precomputed vectors", flush=True)
            result["write_path"] = write_path(server.url, n, 384)
            wp = result["write_path"]
            print(f"  loader {wp['loader_seconds']} s, peer {wp['peer_seconds']} s: {wp['speedup']}x", flush=True)
            if not args.skip_end_to_end:
                embedder = FastFakeEmbedder() if args.fake else load_real_embedder()
                result["embedder"] = repr(embedder)
                print("A. end to end, same embedder", flush=True)
                rounds = args.rounds or (1 if args.quick else 2)
                result["end_to_end"] = e2e = end_to_end(embedder, root, server.url, rounds)
                print(f"  loader {e2e['loader_seconds']} s, peer {e2e['peer_seconds']} s: {e2e['speedup']}x",
                      flush=True)
                if not args.fake and type(embedder).__name__ != "SentenceTransformerEmbedder":
                    print("C. end to end, each as usually set up (peer: sentence-transformers torch fp32)",
                          flush=True)
                    result["as_usually_set_up"] = c = end_to_end(
                        embedder, root, server.url, rounds, sentence_transformers_embeddings(), tag="usual")
                    c["peer_embedder"] = "sentence-transformers torch fp32, batch 32 (HuggingFaceEmbeddings-like)"
                    c["loader_embedder"] = repr(embedder)
                    print(f"  loader {c['loader_seconds']} s, peer {c['peer_seconds']} s: {c['speedup']}x",
                          flush=True)
    result["target_speedup"] = 3.0
    result["target_met_write_path"] = bool((result["write_path"]["speedup"] or 0) >= 3.0)
    if "end_to_end" in result:
        result["target_met_end_to_end"] = bool((result["end_to_end"]["speedup"] or 0) >= 3.0)
    wp = result["write_path"]
    result["summary"] = [summary_row(
        4, f"vs langchain-aws add_texts: write path, {wp['vectors']:,} precomputed vectors",
        value=wp["speedup"], measured=f"{wp['loader_vectors_per_s']:,} vs {wp['peer_vectors_per_s']:,} vectors/s",
        reference=f"AmazonS3Vectors.add_texts, same endpoint, {args.latency_ms:g} ms latency, same run",
        target=">= 3x", met=result["target_met_write_path"], goal=3.0)]
    if "end_to_end" in result:
        e2e = result["end_to_end"]
        result["summary"].append(summary_row(
            4, "vs langchain-aws add_texts: end to end, same chunks, same embedder", value=e2e["speedup"],
            measured=f"{e2e['loader_seconds']} s vs {e2e['peer_seconds']} s for {e2e['chunks']} chunks",
            reference="AmazonS3Vectors.add_texts with the loader's embedder, same run", target=">= 3x",
            met=result["target_met_end_to_end"], goal=3.0))
    if "as_usually_set_up" in result:
        c = result["as_usually_set_up"]
        result["target_met_as_usually_set_up"] = bool((c["speedup"] or 0) >= 3.0)
        result["summary"].append(summary_row(
            4, "vs langchain-aws add_texts: end to end, each with its usual embedder (same model)",
            value=c["speedup"], measured=f"{c['loader_seconds']} s vs {c['peer_seconds']} s for {c['chunks']} chunks",
            reference="add_texts with sentence-transformers torch fp32, same run", target=">= 3x",
            met=result["target_met_as_usually_set_up"], goal=3.0))
    write_result("peer", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
