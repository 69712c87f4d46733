"""`loader.plan` and `loader.pricing`: arithmetic checked by hand and against AWS's own worked examples."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from loader import pricing
from loader.chunking import chunk_document
from loader.plan import (
    DEFAULT_CPU_RATE,
    DEFAULT_GPU_RATE,
    MAX_ARRAY_SIZE,
    EmbedRate,
    Plan,
    estimate_chunks,
    format_plan,
    measured_rates,
    plan,
    plan_scan,
    scan_directory,
    scan_documents,
)
from loader.records import Document, Skipped
from tests.loader.fakes import FakeEmbedder

GB, TB = 2**30, 2**40
RATES: dict[str, Any] = {"embed_rate_cpu": 10.0, "embed_rate_gpu": 1_000.0}
# Round numbers for hand computation: 1,536 B of vector (384 x 4) + 40 B key + 1,000 B metadata.
SIZES: dict[str, Any] = {"key_bytes": 40.0, "metadata_bytes": 1_000.0, "filterable_metadata_bytes": 240.0}
PER_VECTOR = 1_536 + 40 + 1_000  # 2,576 B: storage and PUT
QUERY_PER_VECTOR = 1_536 + 40 + 240  # 1,816 B: what a query processes


def _plan(documents: int, avg_words: float = 100, **kwargs: Any) -> Plan:
    return plan(documents, avg_words, **{**RATES, **SIZES, **kwargs})


# --- the price table and AWS's worked examples ---------------------------------------------------------


def test_price_table_has_source_date_and_confirmation() -> None:
    table = pricing.table()
    assert table["region"] == "us-east-1" and table["retrieved"] == "2026-12-01"
    assert table["source"] == "https://aws.amazon.com/s3/pricing/"
    for name, entry in table["prices"].items():
        assert entry["usd"] > 0 and entry["unit"] and entry["source"], name
        assert isinstance(entry["confirmed"], bool)
    assert pricing.price("s3vectors_storage_per_gb_month") == 0.06
    assert pricing.price("s3vectors_put_per_gb") == 0.20
    assert pricing.price("s3vectors_query_per_million") == 2.50
    assert not pricing.PRICES["s3vectors_query_tb_over_10m"].confirmed


def test_aws_pricing_example_1_storage_and_query() -> None:
    # AWS S3 pricing page, Vectors, example 1 (us-east-1): 40 indexes of 250,000 vectors of 6.17 KB
    # (5.17 KB without the non-filterable metadata); "59 GB x $0.06 = $3.54"; per 1M queries on one
    # index "Tier 1 ... = $1.93", "Tier 2 ... = $1.44".
    storage_gb = 6.17 * 1024 * 250_000 * 40 / GB
    assert storage_gb == pytest.approx(58.84, abs=0.01)
    assert round(storage_gb) * pricing.price("s3vectors_storage_per_gb_month") == pytest.approx(3.54)
    _, tier1 = pricing.query_cost_per_query(100_000, 5.17 * 1024)
    _, both = pricing.query_cost_per_query(250_000, 5.17 * 1024)
    assert tier1 * 1_000_000 == pytest.approx(1.93, abs=0.005)
    assert (both - tier1) * 1_000_000 == pytest.approx(1.44, abs=0.005)


def test_aws_pricing_example_2_tier_2() -> None:
    # Example 2: "Tier 2 query processing cost = 9.9 million vectors x 5.17 KB x $0.002/TB x 10 million
    # queries = $953.36" (an index of exactly 10 million vectors, so no vector is in the >10M tier).
    tb, usd = pricing.query_cost_per_query(10_000_000, 5.17 * 1024)
    tier1 = 100_000 * 5.17 * 1024 / TB * 0.004
    assert (usd - tier1) * 10_000_000 == pytest.approx(953.36, abs=0.01)
    assert tb == pytest.approx(10_000_000 * 5.17 * 1024 / TB)


def test_query_tiers_split_at_100k_and_10m() -> None:
    b = 1_000.0
    _, usd = pricing.query_cost_per_query(1_000_000_000, b)
    expected = (100_000 * 0.004 + 9_900_000 * 0.002 + 990_000_000 * 0.0004) * b / TB
    assert usd == pytest.approx(expected)
    assert pricing.query_cost_per_query(0, b) == (0.0, 0.0)


# --- hand-computed plans: 10 thousand, 1 million, 1 billion vectors ----------------------------------


def test_chunk_estimate_by_hand() -> None:
    # 100 words -> 130 tokens, under the 254 - 16 = 238-token body: one chunk of 130 + 16 tokens.
    assert estimate_chunks(100) == (1, pytest.approx(146.0))
    # 500 words -> 650 tokens: 238 in the first chunk, then strides of 238 - 32 = 206: 1 + ceil(412/206) = 3
    # chunks, sharing 2 x 32 overlap tokens: (650 + 64) / 3 + 16 = 254 tokens each.
    assert estimate_chunks(500) == (3, pytest.approx(254.0))
    # 10,000 words -> 13,000 tokens: 1 + ceil(12,762 / 206) = 63 chunks.
    assert estimate_chunks(10_000)[0] == 63
    assert estimate_chunks(0) == (0, 0.0)


def test_ten_thousand_vectors_by_hand() -> None:
    p = _plan(10_000)
    assert (p.corpus.chunks, p.corpus.vectors, p.corpus.tokens_per_chunk) == (10_000, 10_000, pytest.approx(146.0))
    assert p.storage.bytes_per_vector == PER_VECTOR
    assert p.storage.total_gb == pytest.approx(25_760_000 / GB)  # 0.02399 GB
    assert p.storage.monthly_usd == pytest.approx(25_760_000 / GB * 0.06)  # $0.00144
    # 20 full requests of 500 x 2,576 B = 1,288,000 B each (above the 128 KB minimum).
    assert p.put.requests == 20
    assert p.put.usd == pytest.approx(25_760_000 / GB * 0.20)  # $0.0048
    # One query over 10,000 vectors x 1,816 B, all in the first tier, plus the API call.
    assert p.query.index_vectors == 10_000
    assert p.query.tb_per_query == pytest.approx(18_160_000 / TB)
    assert p.query.usd_per_million == pytest.approx((18_160_000 / TB * 0.004 + 2.5e-6) * 1e6)  # $2.566
    assert p.time.cpu_hours == pytest.approx(10_000 / 10 / 3600)  # 16.7 min
    assert p.time.gpu_hours == pytest.approx(10 / 3600)  # 10 s
    assert p.time.write_hours_one_index == pytest.approx(4 / 3600)  # 4 s at 2,500/s


def test_one_million_vectors_by_hand() -> None:
    p = _plan(1_000_000, target_hours=1)
    assert p.corpus.vectors == 1_000_000
    assert p.storage.total_gb == pytest.approx(2_576_000_000 / GB)  # 2.40 GB
    assert p.storage.monthly_usd == pytest.approx(2.576e9 / GB * 0.06)  # $0.144
    assert p.put.requests == 2_000
    assert p.put.usd == pytest.approx(2.576e9 / GB * 0.2)  # $0.48
    per_query = (100_000 * 0.004 + 900_000 * 0.002) * QUERY_PER_VECTOR / TB + 2.5e-6
    assert p.query.usd_per_query == pytest.approx(per_query)
    assert p.query.monthly_usd == pytest.approx(per_query * 1_000_000)  # $6.13 a month at 1M queries
    assert p.time.write_hours_one_index == pytest.approx(400 / 3600)  # 400 s
    assert p.time.gpu_hours == pytest.approx(1_000 / 3600)  # 1,000 s on one GPU
    assert p.time.cpu_hours == pytest.approx(100_000 / 3600)  # 27.8 h on one CPU worker
    s = p.scale
    assert s is not None
    assert (s.indexes, s.gpu_shards, s.cpu_shards) == (1, 1, 28)  # ceil(1e6 / (10 x 3,600)) = 28
    assert s.gpu_hours == pytest.approx(1_000 / 3600) and s.meets_target
    assert s.cpu_hours == pytest.approx(1e6 / (28 * 10) / 3600)
    assert s.gpu_usd == pytest.approx(1_000 / 3600 * 0.8048)
    assert s.cpu_usd == pytest.approx(1e5 / 3600 * (4 * 0.04048 + 8 * 0.004445))


def test_one_billion_vectors_by_hand() -> None:
    p = _plan(1_000_000_000, target_hours=24)
    assert p.storage.total_gb == pytest.approx(2.576e12 / GB)  # 2,399 GB
    assert p.storage.monthly_usd == pytest.approx(2.576e12 / GB * 0.06)  # $143.95 a month
    assert p.put.usd == pytest.approx(2.576e12 / GB * 0.2)  # $479.82 once
    assert p.time.write_hours_one_index == pytest.approx(1e9 / 2_500 / 3600)  # 111.1 h = 4.6 days
    s = p.scale
    assert s is not None
    # Writes: 1e9 / (2,500 x 86,400) = 4.63 -> 5 indexes. GPUs: 1e9 / (1,000 x 86,400) = 11.6 -> 12,
    # rounded up to a multiple of the 5 indexes -> 15 shards, 3 per index.
    assert (s.indexes, s.gpu_shards, s.gpu_shards_per_index) == (5, 15, 3)
    assert s.binding_limit.startswith("index writes")
    assert s.gpu_hours == pytest.approx(1e9 / (5 * 2_500) / 3600)  # 22.2 h: writes bind
    assert s.meets_target
    assert s.gpu_instance_hours == pytest.approx(1e9 / 1_000 / 3600)  # 277.8 GPU-hours
    assert s.gpu_usd == pytest.approx(1e9 / 1_000 / 3600 * 0.8048)  # $223.56
    # Queries over one of the 5 indexes (200 million vectors) and over all of them.
    assert p.query.index_vectors == 200_000_000
    one = (100_000 * 0.004 + 9_900_000 * 0.002 + 190_000_000 * 0.0004) * QUERY_PER_VECTOR / TB + 2.5e-6
    assert p.query.usd_per_query == pytest.approx(one)
    assert p.query.usd_per_million_all_indexes == pytest.approx(5 * one * 1e6)


# --- shards and indexes meet the target ------------------------------------------------------------


@pytest.mark.parametrize("vectors", [10_000, 1_000_000, 100_000_000, 1_000_000_000, 5_000_000_000])
@pytest.mark.parametrize("target_hours", [0.5, 6, 24, 168])
def test_shards_and_indexes_are_the_fewest_that_meet_the_target(vectors: int, target_hours: float) -> None:
    p = _plan(vectors, target_hours=target_hours)
    s = p.scale
    assert s is not None
    seconds = target_hours * 3600
    gpu_rate, cpu_rate = RATES["embed_rate_gpu"], RATES["embed_rate_cpu"]
    write_time = vectors / (s.indexes * 2_500)
    assert write_time <= seconds * (1 + 1e-9)
    assert vectors / (s.gpu_shards * gpu_rate) <= seconds * (1 + 1e-9)
    assert vectors / (s.cpu_shards * cpu_rate) <= seconds * (1 + 1e-9)
    assert s.meets_target and s.gpu_hours <= target_hours * (1 + 1e-9)
    assert s.gpu_shards % s.indexes == 0 and s.cpu_shards % s.indexes == 0
    assert vectors / s.indexes <= 2_000_000_000
    # Fewest: one index less would miss the target on writes (or hold over 2 billion vectors)...
    if s.indexes > 1:
        fewer = s.indexes - 1
        assert vectors / (fewer * 2_500) > seconds or vectors / fewer > 2_000_000_000
    # ... and one shard less per index would miss it on embedding (unless one shard per index is all).
    if s.gpu_shards > s.indexes:
        assert vectors / ((s.gpu_shards - s.indexes) * gpu_rate) > seconds


def test_more_than_two_billion_vectors_need_more_indexes_even_without_a_target() -> None:
    p = _plan(5_000_000_000)
    assert p.scale is None
    assert p.query.indexes == 3 and p.query.index_vectors == math.ceil(5e9 / 3)
    assert any("2 billion" in w for w in p.warnings)


def test_an_extreme_target_is_planned_with_the_limits_it_hits() -> None:
    # 20 million vectors in one second at 1 chunk/s per GPU: 20 million shards (over one array job's
    # 10,000 children) and 20e6 / 2,500 = 8,000 indexes; the plan says so instead of hiding it.
    p = plan(20_000_000, 100, embed_rate_cpu=0.5, embed_rate_gpu=1.0, target_hours=1 / 3600, **SIZES)
    s = p.scale
    assert s is not None and s.gpu_shards == 20_000_000 > MAX_ARRAY_SIZE
    assert s.indexes == 8_000
    assert any("10,000 children" in note for note in s.notes)
    assert any("8000 indexes" in note.replace(",", "") for note in s.notes)


# --- edge cases --------------------------------------------------------------------------------------


def test_zero_documents() -> None:
    p = _plan(0, target_hours=1)
    assert p.corpus.vectors == 0 and p.corpus.tokens_per_chunk == 0
    assert p.storage.total_gb == 0 and p.storage.monthly_usd == 0
    assert p.put.requests == 0 and p.put.usd == 0
    assert p.time.cpu_hours == 0 and p.time.gpu_hours == 0 and p.time.write_hours_one_index == 0
    assert p.query.usd_per_million == pytest.approx(2.50)  # an empty index still costs the API call
    assert p.scale is not None and (p.scale.indexes, p.scale.gpu_shards) == (1, 1)
    assert p.scale.binding_limit == "nothing to load"
    assert "0 h" in format_plan(p)


def test_empty_documents_make_no_vectors() -> None:
    assert _plan(1_000, 0).corpus.vectors == 0


def test_huge_corpus_stays_finite() -> None:
    p = _plan(10**13, 10_000, target_hours=24)
    d = p.to_dict()
    json.dumps(d, allow_nan=False)
    assert p.corpus.vectors == 63 * 10**13
    assert p.scale is not None and p.scale.indexes > 10_000
    assert any("several vector buckets" in n for n in p.scale.notes)


def test_put_minimum_of_128_kb_per_request() -> None:
    # 16 dimensions, no metadata: 64 + 10 = 74 B per vector; a request of 500 is 37,000 B, billed as
    # 131,072 B; 1,001 vectors are 3 requests (500 + 500 + 1), each billed at the minimum.
    p = plan(
        1_001, 100, dimension=16, key_bytes=10, metadata_bytes=0, filterable_metadata_bytes=0, **RATES, chunks=1_001
    )
    assert p.storage.bytes_per_vector == 74
    assert p.put.requests == 3
    assert p.put.billed_gb == pytest.approx(3 * 131_072 / GB)
    assert p.put.usd == pytest.approx(3 * 131_072 / GB * 0.2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"documents": -1},
        {"avg_words": -5},
        {"avg_words": float("nan")},
        {"target_hours": 0},
        {"embed_rate_cpu": 0},
        {"embed_rate_gpu": -1.0},
        {"chunk_tokens": 10},
        {"overlap": 254},
        {"dimension": 0},
        {"metadata_bytes": -1},
        {"chunks": -1},
    ],
)
def test_invalid_inputs_raise_value_error(kwargs: dict[str, Any]) -> None:
    args = {"documents": 10, "avg_words": 100, **RATES, **kwargs}
    with pytest.raises(ValueError):
        plan(args.pop("documents"), args.pop("avg_words"), **args)


# --- rates -------------------------------------------------------------------------------------------


def test_rates_are_scaled_to_the_corpus_chunk_length() -> None:
    rate = EmbedRate(100.0, tokens_per_chunk=126.0, source="test", measured=True)
    assert rate.at(254.0) == pytest.approx(100 * 128 / 256)  # special tokens included: half the rate
    p = plan(1_000, 500, embed_rate_cpu=rate, embed_rate_gpu=rate)
    assert p.time.cpu_rate == pytest.approx(50.0)
    assert p.rates["cpu"]["source"] == "test" and p.rates["cpu"]["tokens_per_chunk"] == pytest.approx(254.0)


def test_defaults_without_bench_results(tmp_path: Path) -> None:
    assert measured_rates(tmp_path / "missing") == (DEFAULT_CPU_RATE, DEFAULT_GPU_RATE)
    assert DEFAULT_CPU_RATE.measured and not DEFAULT_GPU_RATE.measured
    assert "estimate" in DEFAULT_GPU_RATE.source


def _write(directory: Path, name: str, body: dict[str, Any]) -> None:
    (directory / name).write_text(json.dumps(body))


def test_measured_rates_from_bench_results(tmp_path: Path) -> None:
    _write(tmp_path, "endpoint.json", {"sizes": {"10000": {"put_http": {"vectors_per_s": 1723.2}}}})
    _write(
        tmp_path,
        "pipeline.json",
        {
            "embedder": "SentenceTransformerEmbedder('all-MiniLM-L6-v2', device='cpu', dimension=384)",
            "reference_pure_embedding": {"best_chunks_per_s": 30.0},
            "load": {"best_chunks_per_s": 27.5},
        },
    )
    _write(tmp_path, "pipeline-quick.json", {"quick": True, "load": {"best_chunks_per_s": 999.0}})
    _write(tmp_path, "fake.json", {"embedder": "FastFakeEmbedder()", "load": {"best_chunks_per_s": 5000.0}})
    _write(
        tmp_path,
        "embedding.json",
        {
            "backends": {
                "onnx-int8": {"device": "cpu", "chunks_per_s": 90.0, "min_cosine": 0.95},  # below the bar
                "int8-variant": {"device": "cpu", "load": {"chunks_per_s": 95.0}, "kept": False},  # not run
                "torch-fp16": {"device": "cuda", "chunks_per_s": 2400.0, "tokens_per_chunk": 254},
            }
        },
    )
    (tmp_path / "broken.json").write_text("{not json")
    cpu, gpu = measured_rates(tmp_path)
    assert cpu.chunks_per_s == 27.5 and cpu.measured  # the end-to-end load beats pure embedding
    assert cpu.source == "measured: bench/results/pipeline.json: load.best_chunks_per_s"
    assert cpu.tokens_per_chunk == pytest.approx(127.0)
    assert gpu.chunks_per_s == 2400.0 and gpu.tokens_per_chunk == 254.0
    assert "embedding.json: backends.torch-fp16.chunks_per_s" in gpu.source


def test_repository_bench_results_are_readable() -> None:
    cpu, gpu = measured_rates()  # this checkout's bench/results
    assert cpu.chunks_per_s > 0 and gpu.chunks_per_s > 0


# --- scanning a folder -------------------------------------------------------------------------------


def _document(source: str, text: str) -> Document:
    return Document(source=source, title=source, text=text, content_hash="0" * 64)


def test_scan_counts_exactly_what_the_chunker_makes() -> None:
    embedder = FakeEmbedder(max_tokens=64)
    text = "# Title\n\n" + "\n\n".join(f"## Part {i}\n\n" + "word " * (40 + 7 * i) for i in range(6))
    docs = [_document("a.md", text), _document("b/c.md", "one two three"), _document("empty.md", "  ")]
    scan = scan_documents([*docs, Skipped("x.bin", "binary")], chunk_tokens=64, overlap=8, embedder=embedder)
    expected = [chunk_document(d, embedder, max_tokens=64, overlap_tokens=8) for d in docs]
    assert scan.documents == 3 and scan.skipped == 1
    assert scan.chunks == sum(len(c) for c in expected)
    assert scan.words == sum(len(d.text.split()) for d in docs)
    assert scan.text_bytes == sum(len(c.text.encode()) for cs in expected for c in cs)
    assert scan.key_bytes > 0 and scan.filterable_metadata_bytes > 0
    p = plan_scan(scan, **RATES)
    assert p.corpus.chunks_measured and p.corpus.vectors == scan.chunks
    assert p.scan == scan and not scan.sampled and scan.objects_listed is None  # a folder: read in full
    assert "(counted by the chunker)" in format_plan(p)
    assert p.storage.key_bytes == pytest.approx(scan.key_bytes / scan.chunks)
    assert p.storage.metadata_bytes == pytest.approx(
        (scan.filterable_metadata_bytes + scan.text_bytes) / scan.chunks + 10
    )


def test_scan_directory_uses_the_real_tokenizer_without_the_model(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text("# Guide\n\n" + "Travellers may bring one small bag. " * 120)
    (tmp_path / "notes.txt").write_text("Short note.")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    scan = scan_directory(tmp_path)
    assert (scan.documents, scan.skipped) == (2, 1)
    assert scan.chunks >= 4  # ~960 tokens of body in chunks of at most 254
    assert scan.chunk_tokens / scan.chunks <= 254
    assert scan.tokens / scan.words == pytest.approx(1.3, abs=0.35)  # WordPiece on plain English


# --- output ------------------------------------------------------------------------------------------


def test_json_shape() -> None:
    d = _plan(1_000_000, target_hours=2).to_dict()
    assert set(d) == {
        "corpus",
        "storage",
        "put",
        "query",
        "time",
        "scale",
        "rates",
        "assumptions",
        "prices",
        "warnings",
        "scan",
    }
    assert d["scan"] is None  # nothing was measured: --docs and --avg-words
    assert set(d["corpus"]) == {
        "documents",
        "avg_words",
        "words",
        "tokens",
        "chunks",
        "vectors",
        "tokens_per_chunk",
        "chunks_measured",
    }
    assert {"total_gb", "monthly_usd", "bytes_per_vector", "query_bytes_per_vector"} <= set(d["storage"])
    assert {"requests", "billed_gb", "usd"} <= set(d["put"])
    assert {"usd_per_query", "usd_per_million", "monthly_usd", "indexes"} <= set(d["query"])
    assert {"cpu_hours", "gpu_hours", "write_hours_one_index"} <= set(d["time"])
    assert {"indexes", "gpu_shards", "cpu_shards", "gpu_hours", "gpu_usd", "meets_target", "binding_limit"} <= set(
        d["scale"]
    )
    assert set(d["rates"]) == {"cpu", "gpu"} and {"chunks_per_s", "source", "measured"} <= set(d["rates"]["cpu"])
    assert d["prices"]["source"] == pricing.S3_PRICING_URL
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert _plan(10).to_dict()["scale"] is None


def test_human_output_names_the_figures_and_their_sources() -> None:
    text = format_plan(
        plan(333_333_334, 500, embed_rate_cpu=DEFAULT_CPU_RATE, embed_rate_gpu=DEFAULT_GPU_RATE, target_hours=24)
    )
    for fragment in (
        "chunks = vectors       1,000,000,002",
        "per month",
        "per million queries",
        "1 GPU worker",
        "writing into one index     111.1 h (4.6 days)",
        "indexes                5",
        "--array-properties size=15",
        "GPU rate: estimate, not measured",
        "https://aws.amazon.com/s3/pricing/",
        "warning: GPU embedding rate is an estimate",
    ):
        assert fragment in text, fragment


def test_long_shards_are_told_to_raise_the_batch_job_timeout() -> None:
    # 1 billion vectors over 5 days: one index (111.1 h of writes) and 3 GPU shards of ~111 h each.
    p = _plan(1_000_000_000, target_hours=120)
    assert p.scale is not None and (p.scale.indexes, p.scale.gpu_shards) == (1, 3)
    assert any("batchJobTimeoutHours=139" in note for note in p.scale.notes)
    small = _plan(1_000_000, target_hours=1).scale
    assert small is not None and not any("batchJobTimeoutHours" in note for note in small.notes)
