"""Benchmark the embedding backends on the sample corpus' real chunks (not a test).

    python bench/bench_embedding.py                          # the kept backends, 5 repeats
    python bench/bench_embedding.py --extra                  # + the variants tried and not kept
    python bench/bench_embedding.py --backends torch,onnx-int8 --repeats 3

The corpus (``data/``) is read and chunked as the loader does, then embedded the way the loader calls
``embed()``: ``--batch-size`` chunks at a time, in corpus order. Every figure is a ratio against the
reference, sentence-transformers torch float32 ("torch"), measured in the same run: for each repeat
and each call-sized slice of the corpus, every backend embeds that slice, in an order rotated from
slice to slice, so that a busy machine slows all of them alike. A backend's time for a repeat is the
sum over the slices; ``ratio`` is the median over the repeats of reference time / backend time (wall
clock), ``cpu_ratio`` the same with process CPU time (less sensitive to other processes, but
inflated by threads that spin while waiting).

Quality, against the reference: cosine of each chunk's vector (min, mean); and retrieval on the
question set (default tests/fixtures/questions.json): each question embedded alone (as
``python -m loader query`` does) by the same backend and searched among that backend's corpus
vectors; ``top1`` is the share of questions whose best chunk is the reference's, ``top3`` the mean
overlap of the 3 best chunks with the reference's 3 best. ``source@1`` is the share whose best chunk
comes from the question's expected document (the model's own accuracy, for context).

The CPU default rule (loader.embedding.CPU_DEFAULT_BACKEND): the fastest backend with min cosine
>= 0.98 and top1 == 1.0. The result is written as JSON (default bench/results/embedding.json).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loader.chunking import chunk_document  # noqa: E402
from loader.documents import read_documents  # noqa: E402
from loader.embedding import (  # noqa: E402
    BACKENDS,
    CPU_DEFAULT_BACKEND,
    ModelUnavailableError,
    bundled_model_path,
    load_embedder,
)
from loader.records import Document  # noqa: E402

REFERENCE = "torch"
MIN_COSINE = 0.98


@dataclass
class Variant:
    name: str
    description: str
    make: Callable[[], Any]  # -> an object with .embed(texts)
    kept: bool  # a loader backend (--backend), or a variant tried and not kept
    embedder: Any = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    load_s: float = 0.0


def corpus_chunks(data: Path, embedder: Any) -> tuple[list[str], list[str]]:
    """(texts, sources) of the corpus' chunks, as the loader chunks it."""
    docs = [d for d in read_documents(data) if isinstance(d, Document)]
    chunks = [c for d in docs for c in chunk_document(d, embedder)]
    return [c.text for c in chunks], [c.source for c in chunks]


def _torch_variant(threads: int | None = None, quantize: str | None = None, batch_size: int = 64) -> Any:
    """A torch embedder with a setting the loader does not offer (threads, torch int8 quantization)."""
    import torch

    embedder = load_embedder(device="cpu", backend="torch", batch_size=batch_size)
    if quantize:
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

        qconfig = per_channel_dynamic_qconfig if quantize == "per-channel" else default_dynamic_qconfig
        with _no_warnings():
            embedder._model = quantize_dynamic(embedder._model, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
    if threads:
        inner = embedder.embed

        def embed(texts: Sequence[str]) -> Any:
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                return inner(texts)
            finally:
                torch.set_num_threads(before)

        embedder.embed = embed
    return embedder


@contextlib.contextmanager
def _no_warnings() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _onnx_variant(backend: str, cache_dir: Path, **kwargs: Any) -> Any:
    from loader.onnx_backend import load_onnx_embedder

    quant = kwargs.pop("quant", None)
    return load_onnx_embedder(
        bundled_model_path(), model_name="all-MiniLM-L6-v2", backend=backend, cache_dir=cache_dir, quant=quant, **kwargs
    )


def variants(args: argparse.Namespace, cache_dir: Path, extra_cache: Path) -> list[Variant]:
    from loader import onnx_backend
    from loader.onnx_backend import QuantOptions

    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"unknown backend(s) {unknown}: choose from {', '.join(BACKENDS)}")
    if REFERENCE not in chosen:
        chosen.insert(0, REFERENCE)
    bs = args.batch_size
    descriptions = {
        "torch": "sentence-transformers, torch float32 (reference)",
        "torch-bf16": "sentence-transformers, model cast to bfloat16",
        "onnx": "ONNX Runtime float32 (transformer fusions)",
        "onnx-int8": "ONNX Runtime, int8 weights (dynamic quantization, this CPU's recipe)",
    }
    out = [
        Variant(
            b,
            descriptions[b],
            (lambda b=b: load_embedder(device="cpu", backend=b, batch_size=bs, cache_dir=cache_dir)),
            kept=True,
        )
        for b in chosen
    ]
    if args.extra:
        base = QuantOptions.for_this_cpu()
        everything = onnx_backend.MATMUL_GROUPS
        recipes: list[tuple[str, str, QuantOptions]] = [
            (
                "dynamic",
                "int8 dynamic everywhere (fused graph, QAttention), no outlier split",
                replace(base, blockwise=(), dynamic=everything, outliers=0, fuse=True),
            ),
            (
                "dynamic-unfused",
                "int8 dynamic everywhere, unfused graph, no outlier split",
                replace(base, blockwise=(), dynamic=everything, outliers=0),
            ),
            (
                "dynamic-per-tensor",
                "int8 dynamic everywhere, one scale per weight tensor",
                replace(base, blockwise=(), dynamic=everything, outliers=0, fuse=True, per_channel=False),
            ),
            (
                "dynamic+outliers",
                "int8 dynamic everywhere (fused), outlier channels in float",
                replace(base, blockwise=(), dynamic=everything, fuse=True),
            ),
            ("blockwise", "8-bit blockwise (MatMulNBits) everywhere", replace(base, blockwise=everything, dynamic=())),
            (
                "blockwise-qkv-only",
                "blockwise QKV, dynamic + outliers for the rest",
                replace(base, blockwise=("qkv", "other"), dynamic=("attn_out", "ffn1", "ffn2")),
            ),
            ("no-outliers", "the default mix without the outlier split", replace(base, outliers=0)),
            (
                "reduce-range" if not base.reduce_range else "full-range",
                "the default mix, the other weight range",
                replace(base, reduce_range=not base.reduce_range),
            ),
            ("block-32", "the default mix, blocks of 32", replace(base, block_size=32)),
        ]
        int8: list[tuple[str, str, dict[str, Any]]] = [
            (f"onnx-int8/{name}", description, dict(quant=quant)) for name, description, quant in recipes
        ]
        int8 += [
            ("onnx-int8/spinning", "int8, ORT threads spin-wait between ops (ORT's default)", dict(spinning=True)),
            ("onnx-int8/1-thread", "int8, one intra-op thread", dict(threads=1)),
        ]
        batching = (
            (1, "one text per run (no padding)"),
            (512, "<= 512 padded tokens per run"),
            (2048, "<= 2048 padded tokens per run"),
            (0, f"up to {bs} texts per run (no token budget)"),
        )
        onnx_variants: list[tuple[str, str, str, dict[str, Any]]] = [("onnx-int8", *v) for v in int8]
        for backend in ("onnx", "onnx-int8"):
            for tokens, what in batching:
                if tokens != onnx_backend.DEFAULT_MAX_BATCH_TOKENS[backend]:
                    name = f"{backend}/batch-{tokens or 'rows'}"
                    onnx_variants.append((backend, name, f"{backend}, {what}", dict(max_batch_tokens=tokens)))
        for backend, name, description, kwargs in onnx_variants:
            out.append(
                Variant(name, description, (lambda b=backend, kw=kwargs: _onnx_variant(b, extra_cache, **kw)), False)
            )
        torch_variants: list[tuple[str, str, dict[str, Any]]] = [
            ("torch/batch-16", "torch float32, batch_size 16", dict(batch_size=16)),
            ("torch/batch-128", "torch float32, batch_size 128", dict(batch_size=128)),
            ("torch/1-thread", "torch float32, torch.set_num_threads(1)", dict(threads=1)),
            (
                "torch-int8/per-tensor",
                "torch.ao dynamic quantization of Linear, per tensor",
                dict(quantize="per-tensor"),
            ),
            (
                "torch-int8/per-channel",
                "torch.ao dynamic quantization of Linear, per channel",
                dict(quantize="per-channel"),
            ),
        ]
        for name, description, kwargs in torch_variants:
            out.append(Variant(name, description, (lambda kw=kwargs: _torch_variant(**kw)), kept=False))
        if args.extra != "all":
            wanted = {name.strip() for name in args.extra.split(",") if name.strip()}
            unknown = wanted - {v.name for v in out}
            if unknown:
                raise SystemExit(f"unknown variant(s) {sorted(unknown)}: see --extra's output for the names")
            out = [v for v in out if v.kept or v.name in wanted]
    return out


def retrieval(corpus: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Indices of the 3 best chunks per query, best first."""
    scores = queries @ corpus.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :3]


def machine_info() -> dict[str, Any]:
    from loader.onnx_backend import QuantOptions, cpu_flags, cpu_model, has_int8_dot_product, physical_cores

    flags = cpu_flags()
    interesting = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"]
    versions = {}
    for package in ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime", "numpy", "tokenizers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "physical_cores": physical_cores(),
        "cpu_flags": [f for f in interesting if f in flags],
        "int8_dot_product": has_int8_dot_product(),
        "int8_recipe": QuantOptions.for_this_cpu().__dict__,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        if hasattr(os, "sysconf")
        else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the embedding backends on the sample corpus (ratios against torch float32).",
        epilog=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated loader backends (default: all: {','.join(BACKENDS)}); torch is "
        "always included, as the reference",
    )
    parser.add_argument(
        "--extra",
        nargs="?",
        const="all",
        default="",
        metavar="NAMES",
        help="also the variants tried and not kept (a slow run), or only those named "
        "(comma-separated, e.g. onnx-int8/batch-512,onnx-int8/spinning)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the corpus (default 5)")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="chunks per embed() call, as --batch-size of the loader (default 64)"
    )
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="the corpus (default data/)")
    parser.add_argument(
        "--queries",
        type=Path,
        default=ROOT / "tests" / "fixtures" / "questions.json",
        help="JSON list of {question, source, section}",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="ONNX cache for the loader backends (default: the loader's per-machine cache)",
    )
    parser.add_argument("--limit", type=int, default=0, help="embed only the first N chunks (quick check)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "results" / "embedding.json",
        help="where the JSON goes (default bench/results/embedding.json)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch_size < 1:
        parser.error("--repeats and --batch-size must be at least 1")

    with tempfile.TemporaryDirectory(prefix="bench-embedding-") as tmp:
        extra_cache = Path(tmp)
        cache_dir = args.cache_dir
        runs = variants(args, cache_dir, extra_cache)
        failed: list[dict[str, Any]] = []
        for v in list(runs):
            started = time.perf_counter()
            try:
                v.embedder = v.make()
            except ModelUnavailableError as error:  # e.g. an int8 recipe the export self-check rejects
                if v.kept:
                    raise
                print(f"skipped {v.name}: {error}", file=sys.stderr, flush=True)
                failed.append({"backend": v.name, "kept": False, "description": v.description, "error": str(error)})
                runs.remove(v)
                continue
            v.load_s = time.perf_counter() - started
            print(f"loaded {v.name:28s} in {v.load_s:6.1f} s", file=sys.stderr, flush=True)
        reference = runs[0]
        chunks, chunk_sources = corpus_chunks(args.data, reference.embedder)
        if args.limit:
            chunks, chunk_sources = chunks[: args.limit], chunk_sources[: args.limit]
        questions = json.loads(args.queries.read_text(encoding="utf-8"))
        slices = [chunks[i : i + args.batch_size] for i in range(0, len(chunks), args.batch_size)]
        print(
            f"{len(chunks)} chunks in {len(slices)} calls of <= {args.batch_size}; {len(questions)} questions; "
            f"{len(runs)} backends x {args.repeats} repeats",
            file=sys.stderr,
            flush=True,
        )

        # Quality (also the warm-up): the corpus and the questions, one call at a time as the loader does.
        vectors: dict[str, np.ndarray] = {}
        top3: dict[str, np.ndarray] = {}
        for v in runs:
            corpus = np.concatenate([v.embedder.embed(s) for s in slices])
            queries = np.stack([v.embedder.embed([q["question"]])[0] for q in questions])
            vectors[v.name] = corpus
            top3[v.name] = retrieval(corpus, queries)
        ref_vectors, ref_top3 = vectors[reference.name], top3[reference.name]

        # Speed: every slice by every backend, rotating the order, summed per repeat.
        load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
        for repeat in range(args.repeats):
            wall = dict.fromkeys((v.name for v in runs), 0.0)
            cpu = dict.fromkeys((v.name for v in runs), 0.0)
            for i, piece in enumerate(slices):
                shift = (repeat * len(slices) + i) % len(runs)
                for v in runs[shift:] + runs[:shift]:
                    gc.collect()
                    time.sleep(0.02)  # let the previous backend's worker threads park
                    c0, t0 = time.process_time(), time.perf_counter()
                    v.embedder.embed(piece)
                    wall[v.name] += time.perf_counter() - t0
                    cpu[v.name] += time.process_time() - c0
            for v in runs:
                v.wall.append(wall[v.name])
                v.cpu.append(cpu[v.name])
            print(
                f"repeat {repeat + 1}/{args.repeats}: "
                + ", ".join(f"{v.name} {len(chunks) / v.wall[-1]:.1f}/s" for v in runs),
                file=sys.stderr,
                flush=True,
            )
        load_after = os.getloadavg() if hasattr(os, "getloadavg") else None

    results = []
    for v in runs:
        cos = np.sum(vectors[v.name] * ref_vectors, axis=1)
        top1 = float(np.mean(top3[v.name][:, 0] == ref_top3[:, 0]))
        overlap = float(np.mean([len(set(a) & set(b)) / 3 for a, b in zip(top3[v.name], ref_top3, strict=True)]))
        source_at_1 = float(
            np.mean([chunk_sources[t[0]] == q["source"] for t, q in zip(top3[v.name], questions, strict=True)])
        )
        ratios = [r / w for r, w in zip(reference.wall, v.wall, strict=True)]
        cpu_ratios = [r / c for r, c in zip(reference.cpu, v.cpu, strict=True)]
        norms = np.linalg.norm(vectors[v.name], axis=1)
        results.append(
            {
                "backend": v.name,
                "kept": v.kept,
                "description": v.description,
                "chunks_per_s": round(len(chunks) / statistics.median(v.wall), 2),
                "ratio": round(statistics.median(ratios), 3),
                "ratio_min": round(min(ratios), 3),
                "ratio_max": round(max(ratios), 3),
                "cpu_ratio": round(statistics.median(cpu_ratios), 3),
                "wall_s": [round(x, 3) for x in v.wall],
                "cpu_s": [round(x, 3) for x in v.cpu],
                "min_cosine": round(float(cos.min()), 5),
                "mean_cosine": round(float(cos.mean()), 5),
                "max_norm_error": float(f"{float(np.max(np.abs(norms - 1))):.2e}"),
                "top1_agreement": round(top1, 4),
                "top3_overlap": round(overlap, 4),
                "source_at_1": round(source_at_1, 4),
                "load_s": round(v.load_s, 2),
                "eligible": bool(cos.min() >= MIN_COSINE and top1 == 1.0),
            }
        )
    kept = [r for r in results if r["kept"] and r["eligible"]]
    winner = max(kept, key=lambda r: r["ratio"])["backend"] if kept else REFERENCE
    report = {
        "benchmark": "embedding backends on the sample corpus (ratios against torch float32, same run)",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "load_average": {"before": load_before, "after": load_after},
        "corpus": {
            "data": os.path.relpath(args.data, ROOT),
            "chunks": len(chunks),
            "calls": len(slices),
            "batch_size": args.batch_size,
            "questions": len(questions),
            "tokens_mean": None,
        },
        "repeats": args.repeats,
        "rule": f"fastest kept backend with min_cosine >= {MIN_COSINE} and top1_agreement == 1.0",
        "recommended_cpu_default": winner,
        "loader_cpu_default": CPU_DEFAULT_BACKEND,
        "results": results,
        "rejected": failed,
    }
    report["corpus"]["tokens_mean"] = round(float(np.mean([reference.embedder.count_tokens(c) for c in chunks])), 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    header = (
        f"{'backend':28s} {'chunks/s':>9s} {'ratio':>6s} {'cpu':>6s} {'min cos':>8s} {'mean cos':>8s} "
        f"{'top1':>5s} {'top3':>5s} {'src@1':>5s}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        mark = "" if r["kept"] else "  (not kept)"
        print(
            f"{r['backend']:28s} {r['chunks_per_s']:9.1f} {r['ratio']:5.2f}x {r['cpu_ratio']:5.2f}x "
            f"{r['min_cosine']:8.4f} {r['mean_cosine']:8.4f} {r['top1_agreement']:5.2f} {r['top3_overlap']:5.2f} "
            f"{r['source_at_1']:5.2f}{mark}"
        )
    print(
        f"\nrule: {report['rule']} -> {winner} (loader CPU default: {CPU_DEFAULT_BACKEND}); "
        f"load average {load_before} -> {load_after}; written to {os.path.relpath(args.out, ROOT)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
