"""Plan a load before paying for it: vectors, storage, dollars, hours, shards and indexes.

``plan(documents, avg_words, ...)`` is pure arithmetic on a corpus' size; :func:`scan_directory` measures
a local folder first (document count, words, and the exact chunk count and metadata sizes the loader
would produce, using the model's tokenizer only: no torch, no embedding). Results are dataclasses
with ``to_dict()`` (for ``--json``), and :func:`format_plan` renders them for people.

How the estimate is made, and what it assumes (each figure is in the output's ``assumptions``):

* Tokens: all-MiniLM-L6-v2's WordPiece tokenizer makes about 1.3 tokens per whitespace-separated
  English word (``TOKENS_PER_WORD``; data/ measures 1.25). Non-English text and code make more.
* Chunks: each chunk holds at most ``chunk_tokens`` tokens (254 = the model's 256 minus [CLS]/[SEP]),
  of which about ``CONTEXT_TOKENS`` go to the "Title — Section" line the chunker puts first;
  consecutive chunks of a document share ``overlap`` tokens. Chunks are assumed full: documents with
  many short sections make more, smaller chunks (data/ makes 337 chunks of 127 tokens on average,
  1.7x the full-chunk estimate), which the folder scan counts exactly.
* One vector per chunk. Its logical size: 4 bytes per dimension + key (~40 bytes, measured on data/)
  + metadata: ~240 bytes of filterable fields (source, title, section, chunk, chunks, content_hash;
  measured on data/) + the chunk's text (``BYTES_PER_WORD`` bytes of UTF-8 per word, 5.7 on data/).
* Writes: PutVectors batches of 500 vectors; one index accepts at most 2,500 vectors/s (AWS limits
  page), so one index cannot be filled faster than vectors / 2,500 seconds. Embedding and writing
  overlap, so a load takes the longer of the two.
* Shards are Batch array children (at most 10,000 per array job); each embeds at one worker's rate.
  More indexes are suggested only when one index's write limit cannot meet the target (or when the
  vectors exceed 2 billion per index); spreading vectors over indexes means queries name an index
  (e.g. one per tenant) or fan out over all of them.

Embedding rates: measured figures from ``bench/results/*.json`` when present (see :func:`measured_rates`
for the fields read), else the defaults below with their source. A rate is in chunks per second at a
given chunk length and is scaled linearly to the corpus' chunk length (the model's cost is dominated by
per-token work at these lengths).
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from loader import contract, pricing
from loader.records import Document, Skipped

if TYPE_CHECKING:
    from loader.s3_source import S3Location

# --- assumptions -----------------------------------------------------------------------------------
TOKENS_PER_WORD = 1.3
BYTES_PER_WORD = 5.7  # UTF-8 bytes of text per whitespace-separated word, the space included
CONTEXT_TOKENS = 16  # the "Title — Section" line at the top of each chunk
DEFAULT_CHUNK_TOKENS = 254
DEFAULT_OVERLAP = 32
DEFAULT_KEY_BYTES = 40.0
DEFAULT_FILTERABLE_METADATA_BYTES = 240.0
TEXT_KEY_OVERHEAD_BYTES = 10  # "text" key and JSON punctuation around the chunk text
SPECIAL_TOKENS = 2  # [CLS] and [SEP], embedded with every chunk

VECTORS_PER_REQUEST = 500  # PutVectors maximum (limits page); the loader fills batches to it
WRITE_VECTORS_PER_SECOND_PER_INDEX = 2_500.0  # "Combined vectors inserted and deleted per second per vector index"
MAX_VECTORS_PER_INDEX = 2_000_000_000
MAX_INDEXES_PER_BUCKET = 10_000
MAX_ARRAY_SIZE = 10_000  # AWS Batch array jobs: size 2-10,000
BATCH_DEFAULT_TIMEOUT_HOURS = 24  # the Batch stack's job timeout per attempt (context batchJobTimeoutHours)
DEFAULT_QUERIES_PER_MONTH = 1_000_000

# The benchmarks' results in a checkout of this repository (absent in the loader image: defaults apply).
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parents[1] / "bench" / "results"

# Reference chunk length of the sample corpus data/ (mean tokens per chunk, special tokens excluded),
# the corpus the benchmarks embed; rates measured without a stated chunk length are taken at it.
SAMPLE_CORPUS_TOKENS_PER_CHUNK = 127.0


@dataclass(frozen=True)
class EmbedRate:
    """Chunks per second of one worker, measured (or estimated) at ``tokens_per_chunk`` tokens a chunk."""

    chunks_per_s: float
    tokens_per_chunk: float
    source: str
    measured: bool

    def at(self, tokens_per_chunk: float) -> float:
        """The rate at another chunk length (cost ~ tokens, special tokens included)."""
        if tokens_per_chunk <= 0:
            return self.chunks_per_s
        return self.chunks_per_s * (self.tokens_per_chunk + SPECIAL_TOKENS) / (tokens_per_chunk + SPECIAL_TOKENS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Defaults when bench/results holds no figure.
DEFAULT_CPU_RATE = EmbedRate(
    chunks_per_s=41.0,
    tokens_per_chunk=SAMPLE_CORPUS_TOKENS_PER_CHUNK,
    source=(
        "measured 2026-12-02 on this project's 2-vCPU development machine: a whole `python -m loader` load "
        "of data/'s 337 chunks with the CPU default backend (onnx-int8), median of 3 runs (8.2 s; best "
        "49.8 chunks/s), bench/results/pipeline.json. torch fp32 measured 8.5 chunks/s on the same machine"
    ),
    measured=True,
)
DEFAULT_GPU_RATE = EmbedRate(
    chunks_per_s=1_000.0,
    tokens_per_chunk=254.0,
    source=(
        "estimate, not measured: all-MiniLM-L6-v2 costs ~6.0 GFLOP per 256-token chunk (6 layers, hidden "
        "384, FFN 1,536); one NVIDIA L4 (g6.xlarge) at 20% of its 30 TFLOPS fp32 peak gives ~1,000 "
        "chunks/s. Replace with a measured figure (bench/results, GPU benchmark of issue 5)"
    ),
    measured=False,
)


# --- results ---------------------------------------------------------------------------------------
def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.10g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        return dict(_rounded(asdict(self)))  # type: ignore[call-overload]


@dataclass(frozen=True)
class CorpusEstimate(_Dict):
    documents: int
    avg_words: float
    words: float
    tokens: float
    chunks: int
    vectors: int
    tokens_per_chunk: float
    chunks_measured: bool  # counted by the chunker (folder or S3 scan, maybe a sample) rather than estimated


@dataclass(frozen=True)
class StorageEstimate(_Dict):
    vector_bytes: int
    key_bytes: float
    filterable_metadata_bytes: float
    metadata_bytes: float  # all metadata, the chunk text included
    bytes_per_vector: float  # logical: what storage and PUT are charged on
    query_bytes_per_vector: float  # vector + key + filterable metadata: what a query processes
    total_gb: float
    monthly_usd: float


@dataclass(frozen=True)
class PutEstimate(_Dict):
    requests: int
    vectors_per_request: int
    billed_gb: float
    usd: float


@dataclass(frozen=True)
class QueryEstimate(_Dict):
    index_vectors: int  # vectors in one queried index (all of them, or one index's share)
    tb_per_query: float
    usd_per_query: float  # data processed + API call
    usd_per_million: float
    queries_per_month: int
    monthly_usd: float
    indexes: int
    usd_per_million_all_indexes: float  # a query that fans out over every index


@dataclass(frozen=True)
class TimeEstimate(_Dict):
    cpu_rate: float  # chunks/s of one worker at this corpus' chunk length
    gpu_rate: float
    cpu_hours: float  # one worker
    gpu_hours: float  # one GPU worker
    write_hours_one_index: float  # every vector into one index at 2,500 vectors/s
    write_vectors_per_s_per_index: float


@dataclass(frozen=True)
class ScalePlan(_Dict):
    """Shards (workers) and indexes that finish within ``target_hours``, for GPU and for CPU workers."""

    target_hours: float
    indexes: int
    gpu_shards: int
    gpu_shards_per_index: int
    gpu_hours: float  # expected wall-clock hours with that many GPU shards and indexes
    gpu_instance_hours: float
    gpu_usd: float  # on-demand g6.xlarge
    cpu_shards: int
    cpu_hours: float
    cpu_usd: float  # Fargate 4 vCPU / 8 GB per worker
    meets_target: bool
    binding_limit: str  # what sets the time: embedding, index writes, or a hard limit
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan(_Dict):
    corpus: CorpusEstimate
    storage: StorageEstimate
    put: PutEstimate
    query: QueryEstimate
    time: TimeEstimate
    scale: ScalePlan | None
    rates: dict[str, dict[str, Any]]
    assumptions: dict[str, Any]
    prices: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    scan: CorpusScan | None = None  # what was measured (a folder, an S3 prefix or a sample of it), if anything


# --- the arithmetic --------------------------------------------------------------------------------
def estimate_chunks(
    avg_words: float, *, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_OVERLAP
) -> tuple[int, float]:
    """(chunks, tokens per chunk) of a document of ``avg_words`` words, chunks packed full."""
    tokens = avg_words * TOKENS_PER_WORD
    if tokens <= 0:
        return 0, 0.0
    body = chunk_tokens - CONTEXT_TOKENS
    stride = body - min(overlap, body // 2)
    chunks = 1 if tokens <= body else 1 + math.ceil((tokens - body) / stride)
    per_chunk = min(chunk_tokens, (tokens + (chunks - 1) * (body - stride)) / chunks + CONTEXT_TOKENS)
    return chunks, per_chunk


def plan(
    documents: int,
    avg_words: float,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
    dimension: int = contract.DEFAULT_DIMENSION,
    metadata_bytes: float | None = None,
    key_bytes: float | None = None,
    filterable_metadata_bytes: float | None = None,
    chunks: int | None = None,
    tokens_per_chunk: float | None = None,
    target_hours: float | None = None,
    embed_rate_cpu: float | EmbedRate,
    embed_rate_gpu: float | EmbedRate,
    queries_per_month: int = DEFAULT_QUERIES_PER_MONTH,
) -> Plan:
    """Estimate a load of ``documents`` documents of ``avg_words`` words on average.

    ``metadata_bytes`` (all metadata per vector, the chunk text included), ``key_bytes`` and
    ``filterable_metadata_bytes`` default to estimates; ``chunks``/``tokens_per_chunk`` replace the chunk
    estimate with counted figures. Rates are chunks/s of one worker: a float is taken as measured at
    this corpus' chunk length, an :class:`EmbedRate` is scaled to it.
    """
    _check(documents >= 0, f"documents must be 0 or more, not {documents}")
    _check(math.isfinite(avg_words) and avg_words >= 0, f"avg_words must be 0 or more, not {avg_words}")
    _check(dimension >= 1, f"dimension must be at least 1, not {dimension}")
    _check(chunk_tokens > CONTEXT_TOKENS + 1, f"chunk_tokens must be more than {CONTEXT_TOKENS + 1}")
    _check(0 <= overlap < chunk_tokens, f"overlap must be from 0 to chunk_tokens - 1, not {overlap}")
    _check(queries_per_month >= 0, f"queries_per_month must be 0 or more, not {queries_per_month}")
    _check(target_hours is None or target_hours > 0, f"target_hours must be more than 0, not {target_hours}")
    for name, value in (
        ("metadata_bytes", metadata_bytes),
        ("key_bytes", key_bytes),
        ("filterable_metadata_bytes", filterable_metadata_bytes),
        ("tokens_per_chunk", tokens_per_chunk),
    ):
        _check(value is None or value >= 0, f"{name} must be 0 or more, not {value}")
    _check(chunks is None or chunks >= 0, f"chunks must be 0 or more, not {chunks}")

    # Corpus -> chunks -> vectors.
    words = documents * avg_words
    per_doc_chunks, estimated_tokens_per_chunk = estimate_chunks(avg_words, chunk_tokens=chunk_tokens, overlap=overlap)
    measured = chunks is not None
    n_chunks = chunks if chunks is not None else documents * per_doc_chunks
    per_chunk = tokens_per_chunk if tokens_per_chunk is not None else estimated_tokens_per_chunk
    if n_chunks == 0:
        per_chunk = 0.0
    corpus = CorpusEstimate(
        documents=documents,
        avg_words=float(avg_words),
        words=float(words),
        tokens=float(words * TOKENS_PER_WORD),
        chunks=n_chunks,
        vectors=n_chunks,
        tokens_per_chunk=float(per_chunk),
        chunks_measured=measured,
    )
    vectors = n_chunks

    # Bytes per vector -> storage, PUT.
    key = DEFAULT_KEY_BYTES if key_bytes is None else float(key_bytes)
    filterable = (
        DEFAULT_FILTERABLE_METADATA_BYTES if filterable_metadata_bytes is None else float(filterable_metadata_bytes)
    )
    text_bytes = per_chunk / TOKENS_PER_WORD * BYTES_PER_WORD
    metadata = filterable + text_bytes + TEXT_KEY_OVERHEAD_BYTES if metadata_bytes is None else float(metadata_bytes)
    vector_bytes = 4 * dimension
    per_vector = vector_bytes + key + metadata
    total_bytes = vectors * per_vector
    storage = StorageEstimate(
        vector_bytes=vector_bytes,
        key_bytes=key,
        filterable_metadata_bytes=filterable,
        metadata_bytes=metadata,
        bytes_per_vector=per_vector,
        query_bytes_per_vector=vector_bytes + key + filterable,
        total_gb=total_bytes / pricing.GB,
        monthly_usd=total_bytes / pricing.GB * pricing.price("s3vectors_storage_per_gb_month"),
    )
    full, rest = divmod(vectors, VECTORS_PER_REQUEST)
    billed = full * max(VECTORS_PER_REQUEST * per_vector, pricing.PUT_MINIMUM_BYTES) + (
        max(rest * per_vector, pricing.PUT_MINIMUM_BYTES) if rest else 0
    )
    put = PutEstimate(
        requests=full + (1 if rest else 0),
        vectors_per_request=VECTORS_PER_REQUEST,
        billed_gb=billed / pricing.GB,
        usd=billed / pricing.GB * pricing.price("s3vectors_put_per_gb"),
    )

    # Time on one worker, and one index's write limit.
    cpu = _rate(embed_rate_cpu, per_chunk, "embed_rate_cpu")
    gpu = _rate(embed_rate_gpu, per_chunk, "embed_rate_gpu")
    times = TimeEstimate(
        cpu_rate=cpu.chunks_per_s,
        gpu_rate=gpu.chunks_per_s,
        cpu_hours=vectors / cpu.chunks_per_s / 3600,
        gpu_hours=vectors / gpu.chunks_per_s / 3600,
        write_hours_one_index=vectors / WRITE_VECTORS_PER_SECOND_PER_INDEX / 3600,
        write_vectors_per_s_per_index=WRITE_VECTORS_PER_SECOND_PER_INDEX,
    )

    warnings: list[str] = []
    scale = _scale(vectors, target_hours, cpu.chunks_per_s, gpu.chunks_per_s) if target_hours is not None else None
    indexes = scale.indexes if scale is not None else max(1, math.ceil(vectors / MAX_VECTORS_PER_INDEX))
    if vectors > MAX_VECTORS_PER_INDEX:
        warnings.append(f"{vectors:,} vectors exceed one index's 2 billion: at least {indexes} indexes are needed")
    query = _query(vectors, indexes, storage.query_bytes_per_vector, queries_per_month)
    if (
        not pricing.PRICES["s3vectors_query_tb_over_10m"].confirmed
        and query.index_vectors > pricing.QUERY_TIER_2_VECTORS
    ):
        warnings.append(
            "query data above 10 million vectors per index is priced at the unconfirmed 2026-06 tier "
            "(0.0004 USD/TB); at the confirmed 0.002 USD/TB it would cost up to 5x more"
        )
    if not cpu.measured or not gpu.measured:
        unmeasured = [name for name, rate in (("CPU", cpu), ("GPU", gpu)) if not rate.measured]
        warnings.append(f"{' and '.join(unmeasured)} embedding rate is an estimate, not a measurement")

    return Plan(
        corpus=corpus,
        storage=storage,
        put=put,
        query=query,
        time=times,
        scale=scale,
        rates={"cpu": cpu.to_dict(), "gpu": gpu.to_dict()},
        assumptions={
            "tokens_per_word": TOKENS_PER_WORD,
            "bytes_per_word": BYTES_PER_WORD,
            "context_tokens_per_chunk": CONTEXT_TOKENS,
            "chunk_tokens": chunk_tokens,
            "overlap_tokens": overlap,
            "dimension": dimension,
            "vectors_per_put_request": VECTORS_PER_REQUEST,
            "write_vectors_per_s_per_index": WRITE_VECTORS_PER_SECOND_PER_INDEX,
            "max_vectors_per_index": MAX_VECTORS_PER_INDEX,
            "max_array_size": MAX_ARRAY_SIZE,
            "embedding_and_writing_overlap": True,
        },
        prices=pricing.table(),
        warnings=warnings,
    )


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _rate(rate: float | EmbedRate, tokens_per_chunk: float, name: str) -> EmbedRate:
    if isinstance(rate, EmbedRate):
        _check(rate.chunks_per_s > 0, f"{name} must be more than 0 chunks/s, not {rate.chunks_per_s}")
        return replace(rate, chunks_per_s=rate.at(tokens_per_chunk), tokens_per_chunk=tokens_per_chunk)
    _check(
        isinstance(rate, int | float) and math.isfinite(rate) and rate > 0,
        f"{name} must be more than 0 chunks/s, not {rate}",
    )
    return EmbedRate(float(rate), tokens_per_chunk, "given", measured=True)


def _query(vectors: int, indexes: int, bytes_per_vector: float, queries_per_month: int) -> QueryEstimate:
    per_index = math.ceil(vectors / indexes) if indexes else vectors
    tb, data_usd = pricing.query_cost_per_query(per_index, bytes_per_vector)
    api = pricing.price("s3vectors_query_per_million") / 1_000_000
    per_query = data_usd + api
    return QueryEstimate(
        index_vectors=per_index,
        tb_per_query=tb,
        usd_per_query=per_query,
        usd_per_million=per_query * 1_000_000,
        queries_per_month=queries_per_month,
        monthly_usd=per_query * queries_per_month,
        indexes=indexes,
        usd_per_million_all_indexes=per_query * indexes * 1_000_000,
    )


def _scale(vectors: int, target_hours: float, cpu_rate: float, gpu_rate: float) -> ScalePlan:
    seconds = target_hours * 3600
    notes: list[str] = []
    write_indexes = math.ceil(vectors / (WRITE_VECTORS_PER_SECOND_PER_INDEX * seconds))
    size_indexes = math.ceil(vectors / MAX_VECTORS_PER_INDEX)
    indexes = max(1, write_indexes, size_indexes)
    if indexes > 1:
        notes.append(
            f"{indexes} indexes: "
            + (
                f"one index takes {vectors / WRITE_VECTORS_PER_SECOND_PER_INDEX / 3600:,.1f} h at 2,500 vectors/s"
                if write_indexes >= size_indexes
                else "one index holds at most 2 billion vectors"
            )
            + "; split the corpus by index (e.g. one per tenant or collection) and give each shard group its "
            "own LOADER_INDEX"
        )
    if indexes > MAX_INDEXES_PER_BUCKET:
        notes.append(f"more than {MAX_INDEXES_PER_BUCKET:,} indexes: use several vector buckets")

    def shards_for(rate: float) -> int:
        needed = max(1, math.ceil(vectors / (rate * seconds)))
        return math.ceil(needed / indexes) * indexes  # the same number of shards for every index

    gpu_shards, cpu_shards = shards_for(gpu_rate), shards_for(cpu_rate)
    write_hours = vectors / (indexes * WRITE_VECTORS_PER_SECOND_PER_INDEX) / 3600
    gpu_hours = max(vectors / (gpu_shards * gpu_rate) / 3600, write_hours)
    cpu_hours = max(vectors / (cpu_shards * cpu_rate) / 3600, write_hours)
    gpu_instance_hours = vectors / gpu_rate / 3600  # the same total however it is split
    cpu_worker_hours = vectors / cpu_rate / 3600
    fargate_hour = 4 * pricing.price("fargate_per_vcpu_hour") + 8 * pricing.price("fargate_per_gb_hour")
    for kind, shards in (("GPU", gpu_shards), ("CPU", cpu_shards)):
        if shards > MAX_ARRAY_SIZE:
            notes.append(
                f"{shards:,} {kind} shards exceed one Batch array job's 10,000 children: submit "
                f"{math.ceil(shards / MAX_ARRAY_SIZE)} array jobs (SHARD_INDEX/SHARD_COUNT) or use faster workers"
            )
    if gpu_hours > BATCH_DEFAULT_TIMEOUT_HOURS:
        notes.append(
            f"each shard runs ~{gpu_hours:,.0f} h: deploy the Batch stack with -c batchJobTimeoutHours="
            f"{min(336, math.ceil(gpu_hours * 1.25))} (by default an attempt stops after "
            f"{BATCH_DEFAULT_TIMEOUT_HOURS} h)"
        )
    embed_gpu_hours = vectors / (gpu_shards * gpu_rate) / 3600 if vectors else 0.0
    binding = "index writes (2,500 vectors/s per index)" if write_hours >= embed_gpu_hours else "embedding"
    if vectors == 0:
        binding = "nothing to load"
    return ScalePlan(
        target_hours=target_hours,
        indexes=indexes,
        gpu_shards=gpu_shards,
        gpu_shards_per_index=gpu_shards // indexes,
        gpu_hours=gpu_hours,
        gpu_instance_hours=gpu_instance_hours,
        gpu_usd=gpu_instance_hours * pricing.price("ec2_g6_xlarge_per_hour"),
        cpu_shards=cpu_shards,
        cpu_hours=cpu_hours,
        cpu_usd=cpu_worker_hours * fargate_hour,
        meets_target=gpu_hours <= target_hours * (1 + 1e-9),
        binding_limit=binding,
        notes=notes,
    )


# --- measured rates --------------------------------------------------------------------------------
_RATE_KEYS = ("chunks_per_s", "best_chunks_per_s", "chunks_per_second")
_LENGTH_KEYS = ("tokens_per_chunk", "mean_tokens_per_chunk", "mean_chunk_tokens")
MIN_COSINE = 0.98  # issue 5's quality bar for a backend to count


def measured_rates(results_dir: Path = DEFAULT_RESULTS_DIR) -> tuple[EmbedRate, EmbedRate]:
    """(CPU, GPU) embedding rates from ``results_dir/*.json``, else :data:`DEFAULT_CPU_RATE`/``GPU``.

    Read from each JSON file: every object with a numeric ``chunks_per_s`` (or ``best_chunks_per_s``,
    ``chunks_per_second``). Its device is the nearest ``device`` value (or an ``embedder`` description)
    on the way to it, or a key on the path naming ``gpu``/``cuda``; CPU otherwise. Its chunk length is
    the nearest ``tokens_per_chunk`` (or ``mean_tokens_per_chunk``/``mean_chunk_tokens``), else data/'s.
    Skipped: figures of fake embedders (``fake`` in the file's embedder or the path), of quick runs
    (``"quick": true``), of backends below the quality bar (``min_cosine`` < 0.98) and of variants the
    loader does not run (``"kept": false``). A CPU figure under
    a ``load`` key (an end-to-end load) is preferred to a pure embedding one; then the highest wins.
    """
    cpu: list[tuple[bool, float, EmbedRate]] = []
    gpu: list[tuple[bool, float, EmbedRate]] = []
    for path in sorted(Path(results_dir).glob("*.json")) if Path(results_dir).is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("quick") is True or "fake" in str(data.get("embedder", "")).lower():
            continue
        for keys, obj, context in _walk(data, (), {}):
            rate = next((obj[k] for k in _RATE_KEYS if isinstance(obj.get(k), int | float)), None)
            if rate is None or isinstance(rate, bool) or not rate > 0:
                continue
            if isinstance(context.get("min_cosine"), int | float) and context["min_cosine"] < MIN_COSINE:
                continue
            if context.get("kept") is False:  # a variant benchmarked and rejected, not what the loader runs
                continue
            lowered = [k.lower() for k in keys]
            if any("fake" in k for k in lowered):
                continue
            device = str(context.get("device") or context.get("embedder") or "").lower()
            on_gpu = "cuda" in device or "gpu" in device or any(("gpu" in k or "cuda" in k) for k in lowered)
            length = next((context[k] for k in _LENGTH_KEYS if isinstance(context.get(k), int | float)), None)
            where = f"{path.name}: {'.'.join(keys)}.{next(k for k in _RATE_KEYS if k in obj)}"
            measured = EmbedRate(
                chunks_per_s=float(rate),
                tokens_per_chunk=float(length) if length else SAMPLE_CORPUS_TOKENS_PER_CHUNK,
                source=f"measured: bench/results/{where}",
                measured=True,
            )
            (gpu if on_gpu else cpu).append(("load" in lowered, float(rate), measured))
    best_cpu = max(cpu, key=lambda c: (c[0], c[1]))[2] if cpu else DEFAULT_CPU_RATE
    best_gpu = max(gpu, key=lambda c: c[1])[2] if gpu else DEFAULT_GPU_RATE
    return best_cpu, best_gpu


def _walk(
    obj: Any, keys: tuple[str, ...], context: Mapping[str, Any]
) -> Iterator[tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]]:
    if isinstance(obj, dict):
        here = {**context, **{k: v for k, v in obj.items() if not isinstance(v, dict | list)}}
        yield keys, obj, here
        for key, value in obj.items():
            if isinstance(value, dict | list):
                yield from _walk(value, (*keys, str(key)), here)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _walk(value, (*keys, str(i)), context)


# --- scanning a folder -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusScan(_Dict):
    """A folder (or S3 prefix) as the loader would see it: documents, words, and the chunks it would make.

    An S3 scan also says how much was listed and how much read; when only a sample was read
    (``sampled``), the counts above are extrapolated from it (see :func:`scan_s3`).
    """

    documents: int
    skipped: int
    words: int
    tokens: int
    chunks: int
    chunk_tokens: int  # total tokens of all chunks (context lines and overlaps included)
    text_bytes: int  # total UTF-8 bytes of the chunk texts
    filterable_metadata_bytes: int  # total, compact JSON of the filterable metadata
    key_bytes: int  # total
    objects_listed: int | None = None  # S3: objects under the prefix (folder markers and hidden keys excluded)
    bytes_listed: int | None = None
    objects_read: int | None = None  # S3: objects downloaded and scanned
    bytes_read: int | None = None
    sampled: bool = False  # objects_read is a sample of the readable objects: the figures are extrapolated

    @property
    def avg_words(self) -> float:
        return self.words / self.documents if self.documents else 0.0

    def per_vector(self, total: int) -> float | None:
        return total / self.chunks if self.chunks else None


class _TokenizerOnly:
    """The chunker's view of the embedder: the model's own tokenizer, no model weights, no torch."""

    dimension = contract.DEFAULT_DIMENSION

    def __init__(self, max_tokens: int = DEFAULT_CHUNK_TOKENS) -> None:
        from tokenizers import Tokenizer

        from loader.embedding import bundled_model_path

        self._tokenizer = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.max_tokens = max_tokens

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def embed(self, texts: Any) -> Any:
        raise NotImplementedError("planning never embeds")


def scan_documents(
    items: Iterable[Document | Skipped],
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
    embedder: Any | None = None,
) -> CorpusScan:
    """Count what the loader would make of ``items`` (e.g. ``read_documents(root)``, or an S3 reader's)."""
    from loader.chunking import chunk_document
    from loader.keys import vector_key
    from loader.metadata import build_metadata, json_size

    tokenizer = embedder if embedder is not None else _TokenizerOnly()
    documents = skipped = words = tokens = chunks = chunk_tokens_total = text_bytes = filterable = keys = 0
    for item in items:
        if isinstance(item, Skipped):
            skipped += 1
            continue
        documents += 1
        words += len(item.text.split())
        tokens += tokenizer.count_tokens(item.text)
        doc_chunks = chunk_document(item, tokenizer, max_tokens=chunk_tokens, overlap_tokens=overlap)
        for chunk in doc_chunks:
            built = build_metadata(item, chunk, chunk_count=len(doc_chunks), content_hash="0" * 32).metadata
            text = str(built.pop(contract.TEXT_METADATA_KEY, ""))
            text_bytes += len(text.encode("utf-8"))
            filterable += json_size(built)
            keys += len(vector_key(item.source, chunk.ordinal).encode("utf-8"))
            chunk_tokens_total += chunk.tokens or tokenizer.count_tokens(chunk.text)
        chunks += len(doc_chunks)
    return CorpusScan(
        documents=documents,
        skipped=skipped,
        words=words,
        tokens=tokens,
        chunks=chunks,
        chunk_tokens=chunk_tokens_total,
        text_bytes=text_bytes,
        filterable_metadata_bytes=filterable,
        key_bytes=keys,
    )


def scan_directory(
    root: Path, *, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_OVERLAP
) -> CorpusScan:
    """:func:`scan_documents` over a local folder, read exactly as ``python -m loader load`` reads it."""
    from loader.documents import read_documents

    return scan_documents(read_documents(Path(root)), chunk_tokens=chunk_tokens, overlap=overlap)


# --- scanning an S3 prefix -----------------------------------------------------------------------
DEFAULT_SAMPLE = 1_000  # objects of an S3 prefix read by default; the rest are only listed
READ_AHEAD = 8  # concurrent GetObject requests (under botocore's default pool of 10 connections)
# Extrapolated by the bytes of the readable objects (a 10 MB document holds more words than a 1 KB one);
# documents and skipped are extrapolated by the number of objects.
_SIZE_FIELDS = ("words", "tokens", "chunks", "chunk_tokens", "text_bytes", "filterable_metadata_bytes", "key_bytes")
# A sample that fails on every object with one of these is a permissions problem, not a corpus property.
_DENIED = frozenset({"AccessDenied", "Forbidden", "403"})

_T = TypeVar("_T")
_R = TypeVar("_R")


class _S3Object(NamedTuple):
    key: str
    source: str
    size: int


@dataclass
class _Listing:
    """Running totals of a listing, and of the objects chosen for reading."""

    max_file_size: int
    objects: int = 0
    object_bytes: int = 0
    readable: int = 0
    readable_bytes: int = 0
    unread_skipped: int = 0  # skipped on name or size alone, as _read_object would skip them
    read: int = 0
    read_bytes: int = 0

    def add(self, obj: _S3Object) -> bool:
        """Count ``obj``; True if it must be downloaded to know what the loader would make of it."""
        from loader.s3_source import is_readable

        self.objects += 1
        self.object_bytes += obj.size
        if not is_readable(obj.source, obj.size, self.max_file_size):
            self.unread_skipped += 1
            return False
        self.readable += 1
        self.readable_bytes += obj.size
        return True

    def chosen(self, objects: Iterable[_S3Object]) -> Iterator[_S3Object]:
        for obj in objects:
            self.read += 1
            self.read_bytes += obj.size
            yield obj


def scan_s3(
    location: S3Location,
    s3: Any,
    *,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
    max_file_size: int | None = None,
    embedder: Any | None = None,
) -> CorpusScan:
    """:func:`scan_documents` over an S3 prefix (``loader.s3_source.S3Location``), as ``load s3://...`` reads it.

    Every object is listed and counted; of those the loader would download, a uniform random sample of
    ``sample`` (seeded: the same listing gives the same sample) is read and scanned, and the figures are
    extrapolated to the whole prefix. ``sample=0`` reads every object; so does a prefix of ``sample``
    objects or fewer, and then the figures are exact. Memory holds the sample's keys, never the listing.
    """
    from loader.documents import DEFAULT_MAX_FILE_SIZE
    from loader.s3_source import _read_object

    listing = _Listing(DEFAULT_MAX_FILE_SIZE if max_file_size is None else max_file_size)
    readable: Iterable[_S3Object] = (obj for obj in _listed(location, s3) if listing.add(obj))
    if sample > 0:
        readable = sorted(_reservoir(readable, sample, random.Random(seed)))  # read in key order, as a load does

    def read(obj: _S3Object) -> Document | Skipped:
        return _read_object(location, s3, obj.key, obj.source, obj.size, listing.max_file_size)

    items = _read_ahead(read, listing.chosen(readable), READ_AHEAD)
    scan = scan_documents(
        _refuse_if_denied(items, location), chunk_tokens=chunk_tokens, overlap=overlap, embedder=embedder
    )
    return _extrapolate(scan, listing)


def _listed(location: S3Location, s3: Any) -> Iterator[_S3Object]:
    """The objects ``read_s3_documents`` would consider: no folder markers, no hidden files or folders."""
    from loader.s3_source import _list, is_listed_document

    for key, size in _list(location, s3):
        source = key[len(location.prefix) :]
        if not is_listed_document(source):
            continue
        yield _S3Object(key, source, size)


def _reservoir(items: Iterable[_T], size: int, rng: random.Random) -> list[_T]:
    """A uniform sample of ``size`` items (all of them if fewer) in one pass (Algorithm R)."""
    sample: list[_T] = []
    for seen, item in enumerate(items, 1):
        if len(sample) < size:
            sample.append(item)
        else:
            slot = rng.randrange(seen)
            if slot < size:
                sample[slot] = item
    return sample


def _read_ahead(read: Callable[[_T], _R], items: Iterable[_T], workers: int) -> Iterator[_R]:
    """``map(read, items)`` in order, ``workers`` at a time: GetObject latency, not bandwidth, bounds a
    sample's reading. At most 2 x ``workers`` results wait, so memory stays bounded however many are read."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan-read") as pool:
        pending: deque[Future[_R]] = deque()
        for item in items:
            pending.append(pool.submit(read, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _refuse_if_denied(items: Iterable[Document | Skipped], location: S3Location) -> Iterator[Document | Skipped]:
    """Pass ``items`` through, but fail if every object read was denied: a plan of "0 documents" would
    hide that the credentials may list the prefix but not read it."""
    from loader.documents import UNREADABLE
    from loader.errors import LoaderError

    read = denied = 0
    for item in items:
        read += 1
        if isinstance(item, Skipped) and item.reason.removeprefix(f"{UNREADABLE}: ") in _DENIED:
            denied += 1
        yield item
    if read and denied == read:
        raise LoaderError(
            f"cannot read the objects under {location}: access denied on all {read} read; the credentials "
            "in use need s3:GetObject there (and kms:Decrypt for SSE-KMS objects); choose others with --profile"
        )


def _extrapolate(scan: CorpusScan, listing: _Listing) -> CorpusScan:
    sampled = listing.read < listing.readable
    by_objects = listing.readable / listing.read if sampled else 1.0
    by_bytes = listing.readable_bytes / listing.read_bytes if sampled and listing.read_bytes else by_objects
    return replace(
        scan,
        documents=round(scan.documents * by_objects),
        skipped=round(scan.skipped * by_objects) + listing.unread_skipped,
        **{name: round(getattr(scan, name) * by_bytes) for name in _SIZE_FIELDS},
        objects_listed=listing.objects,
        bytes_listed=listing.object_bytes,
        objects_read=listing.read,
        bytes_read=listing.read_bytes,
        sampled=sampled,
    )


def plan_scan(scan: CorpusScan, **kwargs: Any) -> Plan:
    """:func:`plan` with the counted chunks and measured metadata sizes of a scan."""
    per_chunk_text = scan.per_vector(scan.text_bytes)
    filterable = scan.per_vector(scan.filterable_metadata_bytes)
    result = plan(
        scan.documents,
        scan.avg_words,
        chunks=scan.chunks,
        tokens_per_chunk=scan.chunk_tokens / scan.chunks if scan.chunks else 0.0,
        key_bytes=scan.per_vector(scan.key_bytes),
        filterable_metadata_bytes=filterable,
        metadata_bytes=(filterable + per_chunk_text + TEXT_KEY_OVERHEAD_BYTES)
        if filterable is not None and per_chunk_text is not None
        else None,
        **kwargs,
    )
    return replace(result, scan=scan)


# --- for people ------------------------------------------------------------------------------------
def _n(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.2g}"


def _hours(value: float) -> str:
    if value == 0:
        return "0 h"
    if value < 1 / 60:
        return f"{value * 3600:,.1f} s"
    if value < 1:
        return f"{value * 60:,.1f} min"
    if value >= 48:
        return f"{value:,.1f} h ({value / 24:,.1f} days)"
    return f"{value:,.1f} h"


def _bytes(value: float) -> str:
    for unit, scale in (("TB", pricing.TB), ("GB", pricing.GB), ("MB", 2**20), ("KB", 2**10)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value:,.0f} B"


def _chunks_origin(result: Plan) -> str:
    if not result.corpus.chunks_measured:
        return f"estimated, {TOKENS_PER_WORD} tokens/word"
    if result.scan is not None and result.scan.sampled:
        return "counted in a sample, extrapolated"
    return "counted by the chunker"


def _scan_lines(scan: CorpusScan | None) -> list[str]:
    if scan is None or scan.objects_listed is None:
        return []  # a folder, read in full
    listed, read = f"{scan.objects_listed:,} objects ({_bytes(scan.bytes_listed or 0)})", scan.objects_read or 0
    if scan.sampled:
        return [f"  estimated from a sample of {read:,} of {listed}; {_bytes(scan.bytes_read or 0)} read"]
    unread = scan.objects_listed - read
    return [
        f"  read in full           {listed}: {read:,} downloaded"
        + (f", {unread:,} skipped by type or size" if unread else "")
    ]


def format_plan(result: Plan) -> str:
    """A human-readable plan (what ``python -m loader plan`` prints without ``--json``)."""
    c, s, p, q, t = result.corpus, result.storage, result.put, result.query, result.time
    lines = [
        "Corpus",
        f"  documents              {c.documents:,} x {_n(c.avg_words)} words",
        f"  chunks = vectors       {c.vectors:,} ({_chunks_origin(result)}), {_n(c.tokens_per_chunk)} tokens each",
        *_scan_lines(result.scan),
        "Storage (S3 Vectors, logical)",
        f"  per vector             {_n(s.bytes_per_vector)} B = {s.vector_bytes} vector + {_n(s.key_bytes)} key"
        f" + {_n(s.metadata_bytes)} metadata ({_n(s.filterable_metadata_bytes)} filterable + text)",
        f"  total                  {s.total_gb:,.3f} GB  ->  {_usd(s.monthly_usd)} per month",
        f"  PUT (one full load)    {p.requests:,} request(s) of up to {p.vectors_per_request} vectors,"
        f" {p.billed_gb:,.3f} GB billed  ->  {_usd(p.usd)}",
        "Queries",
        f"  per query              {_usd(q.usd_per_query)} ({q.tb_per_query * 1024:,.4f} GB processed in an index of"
        f" {q.index_vectors:,} vectors + the API call)",
        f"  per million queries    {_usd(q.usd_per_million)}"
        + (
            f"  (fanned out over all {q.indexes} indexes: {_usd(q.usd_per_million_all_indexes)})"
            if q.indexes > 1
            else ""
        ),
        f"  {q.queries_per_month:,} queries/month  ->  {_usd(q.monthly_usd)}",
        "Time",
        f"  embedding, 1 CPU worker    {_hours(t.cpu_hours)} at {_n(t.cpu_rate)} chunks/s"
        + ("" if result.rates["cpu"]["measured"] else " (estimate)"),
        f"  embedding, 1 GPU worker    {_hours(t.gpu_hours)} at {_n(t.gpu_rate)} chunks/s"
        + ("" if result.rates["gpu"]["measured"] else " (estimate)"),
        f"  writing into one index     {_hours(t.write_hours_one_index)}"
        f" at {_n(t.write_vectors_per_s_per_index)} vectors/s",
    ]
    if result.scale is not None:
        sc = result.scale
        lines += [
            f"Target: {_hours(sc.target_hours)}",
            f"  indexes                {sc.indexes:,}",
            f"  GPU shards             {sc.gpu_shards:,} ({sc.gpu_shards_per_index:,} per index)"
            f"  ->  {_hours(sc.gpu_hours)}, {_n(sc.gpu_instance_hours)} instance-hours,"
            f" ~{_usd(sc.gpu_usd)} on-demand g6.xlarge",
            f"  or CPU shards          {sc.cpu_shards:,}  ->  {_hours(sc.cpu_hours)},"
            f" ~{_usd(sc.cpu_usd)} on Fargate (4 vCPU, 8 GB each)",
            f"  bound by               {sc.binding_limit}" + ("" if sc.meets_target else "  (target NOT met)"),
            *(f"  note: {note}" for note in sc.notes),
            f"  submit                 aws batch submit-job ... --array-properties size={sc.gpu_shards}"
            if sc.gpu_shards >= 2
            else "  submit                 aws batch submit-job ... (one job, no array)",
        ]
    lines.append("Sources")
    for kind in ("cpu", "gpu"):
        lines.append(f"  {kind.upper()} rate: {result.rates[kind]['source']}")
    lines.append(
        f"  prices: {pricing.S3_PRICING_URL} ({pricing.REGION}, read {pricing.RETRIEVED}); see loader/pricing.py"
    )
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)
