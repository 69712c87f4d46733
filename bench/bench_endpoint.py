"""Benchmark the local S3 Vectors endpoint (not a test): query latency, put throughput, memory.

    python bench/bench_endpoint.py                      # 10k, 100k and 1M 384-d vectors
    python bench/bench_endpoint.py --sizes 10k,100k     # pick sizes
    python bench/bench_endpoint.py --queries 300 --dim 384 --out bench/results/endpoint.json

For each size the server runs as its own process (`python -m s3vectors_local serve`), as the loader's
--local mode runs it, so the boto3 client and the server do not share a GIL. Vectors are put over
HTTP with PutVectors for the smallest size (that is the put-throughput figure); larger sizes are
written straight into the server's SQLite store before it starts, to save time. Queries always go
over HTTP through boto3 (topK 10, random query vectors, after one cold query that loads the index
into memory). Also measured in this process: the same search on an IndexMatrix, and one numpy pass
over the whole matrix (``vectors @ q``), the memory-bandwidth reference for the perf targets
(<= 20 ms p50 at 100k on 2 cores; 1M within 2x of one pass).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# As the server does (s3vectors_local/__main__.py): one BLAS thread for a memory-bound product.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 - after the BLAS thread setting

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s3vectors_local.endpoint import make_client  # noqa: E402
from s3vectors_local.matrix import IndexMatrix  # noqa: E402
from s3vectors_local.process import ensure_running, read_endpoint, stop_server  # noqa: E402
from s3vectors_local.service import Service  # noqa: E402
from s3vectors_local.store import Store, dumps  # noqa: E402

NAMES = {"vectorBucketName": "bench", "indexName": "vectors"}
TOP_K = 10


def _size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if text[-1] in "km" else text) * mult)


def _pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _ms(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(_pct(samples, 50) * 1e3, 3), "p99_ms": round(_pct(samples, 99) * 1e3, 3),
            "mean_ms": round(statistics.fmean(samples) * 1e3, 3), "n": len(samples)}


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _metadata(i: int) -> dict[str, Any]:
    return {"cat": i % 10, "src": f"doc-{i // 100}"}


def _direct_insert(data_dir: Path, vecs: np.ndarray) -> float:
    """Write the vectors straight into the store (one transaction per 50k rows); return seconds."""
    svc = Service(data_dir)
    try:
        index = svc.call("GetIndex", dict(NAMES))["index"]
        with svc.store.read() as conn:
            index_id = Store.index(conn, index["vectorBucketName"], index["indexName"])["id"]
        start = time.perf_counter()
        for lo in range(0, len(vecs), 50_000):
            rows = [(f"v{i:08d}", vecs[i].astype("<f4").tobytes(), dumps(_metadata(i)))
                    for i in range(lo, min(lo + 50_000, len(vecs)))]
            with svc.store.write() as conn:
                Store.put_vectors(conn, index_id, rows)
        return time.perf_counter() - start
    finally:
        svc.close()


def _create(data_dir: Path, dim: int) -> None:
    svc = Service(data_dir)
    try:
        svc.call("CreateVectorBucket", {"vectorBucketName": NAMES["vectorBucketName"]})
        svc.call("CreateIndex", {**NAMES, "dataType": "float32", "dimension": dim, "distanceMetric": "cosine"})
    finally:
        svc.close()


def _http_puts(client: Any, vecs: np.ndarray) -> dict[str, float]:
    batches = []
    for lo in range(0, len(vecs), 500):
        batches.append([{"key": f"v{i:08d}", "data": {"float32": vecs[i].tolist()}, "metadata": _metadata(i)}
                        for i in range(lo, min(lo + 500, len(vecs)))])
    start = time.perf_counter()
    for b in batches:
        client.put_vectors(**NAMES, vectors=b)
    secs = time.perf_counter() - start
    return {"vectors": len(vecs), "seconds": round(secs, 3), "vectors_per_s": round(len(vecs) / secs, 1),
            "requests_per_s": round(len(batches) / secs, 2), "batch": 500}


def _in_process_puts(base: Path, vecs: np.ndarray) -> dict[str, float]:
    """The server's own cost of PutVectors (validation, SQLite commit, matrix update), without HTTP."""
    data_dir = base / "put-in-process"
    _create(data_dir, vecs.shape[1])
    svc = Service(data_dir)
    try:
        batches = [[{"key": f"v{i:08d}", "data": {"float32": vecs[i].tolist()}, "metadata": _metadata(i)}
                    for i in range(lo, min(lo + 500, len(vecs)))] for lo in range(0, len(vecs), 500)]
        start = time.perf_counter()
        for b in batches:
            svc.call("PutVectors", {**NAMES, "vectors": b})
        secs = time.perf_counter() - start
    finally:
        svc.close()
    return {"vectors": len(vecs), "seconds": round(secs, 3), "vectors_per_s": round(len(vecs) / secs, 1)}


def run_size(n: int, dim: int, queries: int, rng: np.random.Generator, base: Path, http_put: bool) -> dict[str, Any]:
    print(f"== {n:,} vectors x {dim} dims", flush=True)
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    qs = rng.standard_normal((queries, dim), dtype=np.float32)
    data_dir = base / f"n{n}"
    _create(data_dir, dim)
    out: dict[str, Any] = {"vectors": n, "dimension": dim, "metric": "cosine", "top_k": TOP_K}
    if not http_put:
        out["direct_insert_s"] = round(_direct_insert(data_dir, vecs), 2)
    url = ensure_running(data_dir)
    pid = int(read_endpoint(data_dir)["pid"])  # type: ignore[index]
    try:
        client = make_client(url, max_attempts=1)
        if http_put:
            out["put_http"] = _http_puts(client, vecs)
            out["put_in_process"] = _in_process_puts(base, vecs)
            print(f"   put over HTTP: {out['put_http']['vectors_per_s']:,} vectors/s; server side alone "
                  f"{out['put_in_process']['vectors_per_s']:,} vectors/s", flush=True)
        start = time.perf_counter()
        client.query_vectors(**NAMES, topK=TOP_K, queryVector={"float32": qs[0].tolist()})
        out["first_query_s"] = round(time.perf_counter() - start, 3)  # loads the index into memory
        payloads = [{"float32": q.tolist()} for q in qs]
        for p in payloads[:5]:
            client.query_vectors(**NAMES, topK=TOP_K, queryVector=p)
        lat = []
        for p in payloads:
            t = time.perf_counter()
            client.query_vectors(**NAMES, topK=TOP_K, queryVector=p, returnDistance=True)
            lat.append(time.perf_counter() - t)
        out["query_http"] = _ms(lat)
        if n <= 100_000:
            flat = []
            for p in payloads[: max(20, queries // 4)]:
                t = time.perf_counter()
                client.query_vectors(**NAMES, topK=TOP_K, queryVector=p, filter={"cat": {"$in": [3, 7]}})
                flat.append(time.perf_counter() - t)
            out["query_http_filtered_20pct"] = _ms(flat)
        out["server_rss_mb"] = _rss_mb(pid)
    finally:
        stop_server(data_dir)
    print(f"   HTTP query p50 {out['query_http']['p50_ms']} ms, p99 {out['query_http']['p99_ms']} ms", flush=True)

    # In-process: the same search without HTTP, and the one-pass bandwidth reference.
    m = IndexMatrix(dim, "cosine")
    m.upsert([f"v{i:08d}" for i in range(n)], vecs)
    lat, ref, stream = [], [], []
    for q in qs[: 50 if n >= 1_000_000 else len(qs)]:
        t = time.perf_counter()
        m.search(q, TOP_K)
        lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        _ = m.rows() @ q
        ref.append(time.perf_counter() - t)
        t = time.perf_counter()
        _ = m.rows().sum()
        stream.append(time.perf_counter() - t)
    out["query_in_process"] = _ms(lat)
    out["numpy_one_pass"] = _ms(ref)
    out["numpy_one_pass"]["matrix_mb"] = round(m.rows().nbytes / 2**20, 1)
    out["numpy_one_pass"]["gb_per_s"] = round(m.rows().nbytes / _pct(ref, 50) / 1e9, 2)
    out["numpy_sum_pass"] = _ms(stream)  # a pure streaming read of the matrix, for comparison
    out["ratio_in_process_to_one_pass_p50"] = round(_pct(lat, 50) / _pct(ref, 50), 2)
    out["ratio_http_to_one_pass_p50"] = round(out["query_http"]["p50_ms"] / 1e3 / _pct(ref, 50), 2)
    print(f"   in-process p50 {out['query_in_process']['p50_ms']} ms; one numpy pass "
          f"{out['numpy_one_pass']['p50_ms']} ms ({out['numpy_one_pass']['gb_per_s']} GB/s)", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10k,100k,1m", help="comma-separated index sizes (default 10k,100k,1m)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200, help="timed queries per size")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "endpoint.json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sizes = [_size(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(args.seed)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="s3vl-bench-") as tmp:
        for i, n in enumerate(sizes):
            results["sizes"][str(n)] = run_size(n, args.dim, args.queries, rng, Path(tmp), http_put=i == 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
