"""Peak memory while loading a large corpus (issue 5, part 7): bounded, i.e. not the corpus in memory.

    python -m bench.bench_memory            # 10k, 30k and 100k chunks (~2-3 min on 2 cores)
    python -m bench.bench_memory --quick    # 10k and 30k chunks (~1 min)

A synthetic corpus is generated in a temporary folder: variants of the sample corpus' documents
(their extracted text as Markdown, each copy with its own title line, so every file is a distinct
document), as many copies as it takes to reach the number of chunks. Each size is loaded into an
empty index of the local endpoint (its own process) by ``loader.sync.load`` in a child process —
the real reader, chunker, sync and writer with the loader's default rate limiting (2,500 vectors/s),
and a fast deterministic fake embedder (the model's own memory is a constant, not what is measured).
The child's RSS is sampled every 0.2 s from outside. Reported per size: RSS after start-up (imports,
client), peak RSS (VmHWM), peak minus start-up, and the corpus' own size (text + float32 vectors,
what a load that kept everything would hold). Bounded: from the smallest to the largest corpus the peak
grows by less than a quarter of what the extra chunks' text and vectors alone would take (a load that
held the corpus would grow by all of it); the plain peak ratio is reported too. The peak of a longer run
also includes more of the allocator's high-water marks (glibc keeps per-thread arenas), which is why
the middle size shows where the curve flattens.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    DATA,
    ROOT,
    FastFakeEmbedder,
    RssSampler,
    corpus_chunks,
    create_index,
    loader_client,
    local_server,
    ratio,
    rss_mb,
    summary_row,
    write_result,
)

TARGET_GROWTH_SHARE = 0.25  # peak growth / growth of the corpus' own text + vectors


def make_corpus(dest: Path, chunks: int, source: Path = DATA) -> dict[str, Any]:
    """Copies of ``source``'s documents as Markdown until about ``chunks`` chunks; returns its shape."""
    from loader.documents import read_documents
    from loader.records import Document

    docs = [d for d in read_documents(source) if isinstance(d, Document)]
    probe = dest.parent / f".probe-{dest.name}"
    per_copy = len(corpus_chunks(_write_copy(probe, docs, 0), FastFakeEmbedder()))
    copies = max(1, math.ceil(chunks / per_copy))
    text_bytes = 0
    for c in range(copies):
        text_bytes += _write_copy(dest / f"copy-{c:04d}", docs, c, count_bytes=True)
    return {"copies": copies, "files": copies * len(docs), "chunks_per_copy": per_copy,
            "expected_chunks": copies * per_copy, "text_mb": round(text_bytes / 2**20, 1)}


def _write_copy(folder: Path, docs: list[Any], copy: int, count_bytes: bool = False) -> Any:
    total = 0
    for doc in docs:
        path = folder / (doc.source.rsplit(".", 1)[0] + ".md")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"# {doc.title} (copy {copy})\n\n{doc.text}\n"
        path.write_text(text, encoding="utf-8")
        total += len(text.encode())
    return total if count_bytes else folder


def worker(args: argparse.Namespace) -> int:
    """The measured process: load ``--root`` into ``--index`` and print the report with its own peak RSS."""
    from loader.outputs import Target
    from loader.pipeline import StageTimes
    from loader.sync import load

    client = loader_client(args.url)
    target = Target(bucket=args.bucket, index=args.index, region="us-east-1")
    client.get_index(**target.index_ref())
    baseline = rss_mb()
    print(json.dumps({"event": "ready", "rss_mb": baseline}), flush=True)
    times = StageTimes()
    report = load(Path(args.root), client=client, target=target, embedder=FastFakeEmbedder(), times=times)
    peak = rss_mb(field="VmHWM")
    print(json.dumps({"event": "done", "baseline_rss_mb": round(baseline, 1), "peak_rss_mb": round(peak, 1),
                      "chunks_embedded": report.chunks_embedded, "vectors_written": report.vectors_written,
                      "documents": report.documents_read, "seconds": round(report.seconds, 2),
                      "stages": times.to_dict()}), flush=True)
    return 0


def measure(root: Path, url: str, index: str) -> dict[str, Any]:
    from bench.common import BUCKET

    create_index(loader_client(url), index=index)
    cmd = [sys.executable, "-m", "bench.bench_memory", "--worker", "--root", str(root), "--url", url,
           "--bucket", BUCKET, "--index", index]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    sampler = RssSampler(proc.pid, interval=0.2)
    sampler.start()
    done: dict[str, Any] = {}
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "done":
            done = event
    samples = sampler.stop()
    if proc.wait() != 0 or not done:
        raise RuntimeError(f"the load worker failed ({proc.returncode})")
    done.pop("event")
    done["rss_samples"] = _thin(samples, 200)
    done["peak_minus_baseline_mb"] = round(done["peak_rss_mb"] - done["baseline_rss_mb"], 1)
    return done


def _thin(samples: list[tuple[float, float]], n: int) -> list[tuple[float, float]]:
    step = max(1, len(samples) // n)
    return samples[::step]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10k and 30k chunks")
    ap.add_argument("--sizes", help="comma-separated chunk counts (default 10000,30000,100000; quick 10000,30000)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--bucket", help=argparse.SUPPRESS)
    ap.add_argument("--index", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    sizes = [int(s) for s in (args.sizes or ("10000,30000" if args.quick else "10000,30000,100000")).split(",")]
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, local_server() as server:
        for size in sizes:
            started = time.perf_counter()
            corpus = make_corpus(Path(tmp) / f"corpus-{size}", size)
            print(f"{size:,} chunks: {corpus['files']:,} files, {corpus['text_mb']} MiB of text "
                  f"(generated in {time.perf_counter() - started:.1f} s)", flush=True)
            run = measure(Path(tmp) / f"corpus-{size}", server.url, f"memory-{size}")
            run["corpus"] = corpus
            # What a load holding the whole corpus would need on top: its text and its float32 vectors.
            run["whole_corpus_mb"] = round(corpus["text_mb"] + run["chunks_embedded"] * 384 * 4 / 2**20, 1)
            runs[str(size)] = run
            print(f"  loaded {run['chunks_embedded']:,} chunks in {run['seconds']} s; RSS {run['baseline_rss_mb']} MiB "
                  f"at start, peak {run['peak_rss_mb']} MiB (corpus text + vectors: {run['whole_corpus_mb']} MiB)",
                  flush=True)
    small, large = runs[str(min(sizes))], runs[str(max(sizes))]
    data_growth = large["whole_corpus_mb"] - small["whole_corpus_mb"]
    peak_growth = large["peak_rss_mb"] - small["peak_rss_mb"]
    result: dict[str, Any] = {
        "quick": args.quick,
        "sizes": runs,
        "chunks_ratio": ratio(large["chunks_embedded"], small["chunks_embedded"], 1),
        "peak_rss_ratio": ratio(large["peak_rss_mb"], small["peak_rss_mb"]),
        "peak_growth_mb": round(peak_growth, 1),
        "corpus_data_growth_mb": round(data_growth, 1),
        "peak_growth_share_of_data_growth": ratio(peak_growth, data_growth),
        "target_growth_share": TARGET_GROWTH_SHARE,
    }
    result["target_met"] = bool(result["peak_growth_share_of_data_growth"] is not None
                                and result["peak_growth_share_of_data_growth"] <= TARGET_GROWTH_SHARE)
    result["summary"] = [summary_row(
        7, f"Peak RSS loading {large['chunks_embedded']:,} vs {small['chunks_embedded']:,} chunks",
        value=result["peak_rss_ratio"],
        measured=f"{large['peak_rss_mb']} vs {small['peak_rss_mb']} MiB (" + ", ".join(
            f"{r['chunks_embedded']:,}: {r['peak_rss_mb']}" for r in runs.values()) + f"); +{peak_growth:.0f} MiB "
            f"= {result['peak_growth_share_of_data_growth']} of the +{data_growth:.0f} MiB of text + vectors added",
        reference=f"the {small['chunks_embedded']:,}-chunk load, same run",
        target=f"growth <= {TARGET_GROWTH_SHARE:.0%} of the added text + vectors", met=result["target_met"],
        higher_is_better=False, goal=None)]
    print(f"peak RSS {large['peak_rss_mb']} MiB for {large['chunks_embedded']:,} chunks vs "
          f"{small['peak_rss_mb']} MiB for {small['chunks_embedded']:,}: ratio {result['peak_rss_ratio']}; growth "
          f"{peak_growth:.1f} MiB vs {data_growth:.1f} MiB of corpus data", flush=True)
    write_result("memory", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
