"""Write path with precomputed vectors (issue 5, part 3): PutVectors against the local endpoint.

    python -m bench.bench_write            # ~2 minutes
    python -m bench.bench_write --quick    # ~30 s

The endpoint runs in its own process (``python -m s3vectors_local serve``) on the same machine, so its
CPU is measured too (it shares the 2 cores with the client). Three parts:

1. **Client cost per request**, 500 x 384-d vectors with loader-shaped metadata, one request at a time,
   endpoint without throttling: boto3 as usually called (``[float(x) for x in row]``, validation on),
   then each step of the fix: ``ndarray.tolist()`` once per batch; ``Config(parameter_validation=False)``;
   the loader's encoded body (``loader.wire``: orjson float32, botocore's serializer skipped). Reported:
   client CPU and endpoint CPU per request, and the one-client-thread ceiling 500 / client CPU, each as a
   ratio to the first (boto3 defaults) measured in this run.
2. **Sustained rate under AWS throttling** (``--throttle``: 1,000 requests/s, 2,500 vectors/s per
   index): ``loader.writer.VectorWriter`` as the loader uses it (client-side limiter, 8 in flight).
   The sustained rate is the rate of completed writes after the start-up burst (from 2 s into the run,
   or a third of it if shorter, to its end); target >= 95% of 2,500 vectors/s. Then
   ListVectors must return exactly the keys written: none lost, none extra.
3. **Hiding 50 ms of latency**: the same writer with 1, 2, 4, 8, 16 requests in flight and 50 ms added
   to every request, with and without throttling; each rate as a ratio to the same in-flight count
   without latency (1.0 = latency fully hidden) and, throttled, to the 2,500 vectors/s limit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    chunk_metadata,
    create_index,
    list_keys,
    loader_client,
    local_server,
    plain_client,
    random_vectors,
    ratio,
    summary_row,
    write_result,
)

AWS_VECTORS_PER_S = 2500.0
BATCH = 500
SETTLE_S = 2.0  # seconds after which a run is in its steady state


def _keys(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:07d}" for i in range(n)]


# --- 1. client cost per request -----------------------------------------------------------------
def client_cost(url: str, server_pid_cpu: Any, *, batches: int, dimension: int) -> dict[str, Any]:
    from loader import wire

    vectors = random_vectors(BATCH, dimension)
    metadata = [chunk_metadata(i) for i in range(BATCH)]
    loader = loader_client(url)
    target = create_index(loader, index="cost-index", dimension=dimension)
    ref = target.index_ref()
    variants: dict[str, tuple[Any, Any]] = {}

    def naive(keys: list[str]) -> Any:
        return [{"key": k, "data": {"float32": [float(x) for x in vectors[j]]}, "metadata": metadata[j]}
                for j, k in enumerate(keys)]

    def tolist(keys: list[str]) -> Any:
        rows = vectors.tolist()
        return [{"key": k, "data": {"float32": rows[j]}, "metadata": metadata[j]} for j, k in enumerate(keys)]

    def encoded(keys: list[str]) -> Any:
        return wire.encode_vectors((k, vectors[j], metadata[j]) for j, k in enumerate(keys))

    default = plain_client(url, retries={"total_max_attempts": 1, "mode": "standard"})
    no_validation = plain_client(url, retries={"total_max_attempts": 1, "mode": "standard"},
                                 parameter_validation=False)
    variants["boto3_defaults"] = (default, naive)
    variants["tolist_once"] = (default, tolist)
    variants["tolist_no_validation"] = (no_validation, tolist)
    wire.install(loader)
    variants["loader_encoded_body"] = (loader, encoded)
    out: dict[str, Any] = {"batch_vectors": BATCH, "dimension": dimension, "requests": batches,
                           "encoder": wire.encoder_name(), "variants": {}}
    for name, (client, build) in variants.items():
        build(_keys("warm", BATCH))
        client.put_vectors(**ref, vectors=build(_keys(f"warm-{name}", BATCH)))  # connection, caches
        cpu0, srv0, t0 = time.process_time(), server_pid_cpu(), time.perf_counter()
        for b in range(batches):
            client.put_vectors(**ref, vectors=build(_keys(f"{name}-{b}", BATCH)))
        wall = time.perf_counter() - t0
        client_cpu = (time.process_time() - cpu0) / batches
        server_cpu = (server_pid_cpu() - srv0) / batches
        out["variants"][name] = {
            "client_cpu_s_per_request": round(client_cpu, 4),
            "server_cpu_s_per_request": round(server_cpu, 4),
            "wall_s_per_request": round(wall / batches, 4),
            "one_thread_ceiling_vectors_per_s": round(BATCH / client_cpu) if client_cpu else None,
            "sequential_vectors_per_s": round(BATCH * batches / wall),
        }
        print(f"  {name:22s} client {client_cpu * 1e3:7.1f} ms  endpoint {server_cpu * 1e3:6.1f} ms  "
              f"per request of {BATCH}", flush=True)
    base = out["variants"]["boto3_defaults"]
    for v in out["variants"].values():
        v["client_cpu_speedup"] = ratio(base["client_cpu_s_per_request"], v["client_cpu_s_per_request"], 2)
        v["sequential_rate_ratio"] = ratio(v["sequential_vectors_per_s"], base["sequential_vectors_per_s"], 2)
    return out


# --- 2. and 3. the loader's writer --------------------------------------------------------------
def run_writer(url: str, server: Any, *, n: int, dimension: int, in_flight: int, index: str,
               unlimited: bool = False) -> dict[str, Any]:
    """Write ``n`` vectors with VectorWriter; return rates, retries, CPU shares and the key check."""
    from loader.retry import RateLimiter, RetryPolicy, RetryStats
    from loader.writer import VectorRecord, VectorWriter

    client = loader_client(url, max_in_flight=in_flight)
    target = create_index(client, index=index, dimension=dimension)
    vectors = random_vectors(n, dimension, seed=1)
    keys = _keys(index, n)
    records = [VectorRecord(keys[i], vectors[i], chunk_metadata(i)) for i in range(n)]
    stats = RetryStats()
    limiter = RateLimiter(1e9, 1e9) if unlimited else None  # None: the writer's default, as in the loader
    done: list[tuple[float, int]] = [(0.0, 0)]

    def on_written(count: int) -> None:
        done.append((time.perf_counter() - started, done[-1][1] + count))

    policy = RetryPolicy(max_attempts=30, base_delay=0.05, max_delay=2.0)
    cpu0, srv0 = time.process_time(), server.cpu()
    started = time.perf_counter()
    with VectorWriter(client, target, max_in_flight=in_flight, limiter=limiter, policy=policy, stats=stats,
                      on_written=on_written) as writer:
        for lo in range(0, n, BATCH):
            writer.put(records[lo: lo + BATCH])
        writer.flush()
    elapsed = time.perf_counter() - started
    client_cpu, server_cpu = time.process_time() - cpu0, server.cpu() - srv0
    stored = list_keys(client, target)
    # Sustained rate: after the start-up burst (the index's token bucket starts with a second's worth),
    # from the first request completed at or after SETTLE_S (a third of the run if shorter) to the last.
    settle = next(((t, c) for t, c in done if t >= min(SETTLE_S, elapsed / 3)), None)
    sustained = None
    if settle is not None and done[-1][0] - settle[0] >= 0.5:
        sustained = (done[-1][1] - settle[1]) / (done[-1][0] - settle[0])
    return {
        "vectors": n,
        "in_flight": in_flight,
        "seconds": round(elapsed, 3),
        "vectors_per_s": round(n / elapsed, 1),
        "sustained_vectors_per_s": round(sustained, 1) if sustained else None,
        "requests": writer.requests,
        "retries": stats.retries,
        "throttled_429": stats.throttled,
        "limiter_wait_s": round(writer.limiter.waited_seconds, 3),
        "client_cpu_share": round(client_cpu / elapsed, 3),  # 1.0 = one core busy the whole time
        "endpoint_cpu_share": round(server_cpu / elapsed, 3),
        "stored_vectors": len(stored),
        "lost_vectors": len(set(keys) - set(stored)),
        "unexpected_vectors": len(set(stored) - set(keys)),
        "duplicate_keys_listed": len(stored) - len(set(stored)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests and in-flight settings (~30 s)")
    ap.add_argument("--vectors", type=int, help="vectors per throttled run (default 25,000; quick 7,500)")
    ap.add_argument("--sweep-vectors", type=int, help="vectors per latency-sweep run (default 10,000; quick 2,500)")
    ap.add_argument("--in-flight", help="comma-separated in-flight counts (default 1,2,4,8,16; quick 1,4)")
    ap.add_argument("--requests", type=int, help="requests per client-cost variant (default 10; quick 3)")
    ap.add_argument("--dimension", type=int, default=384)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    n = args.vectors or (7_500 if args.quick else 25_000)
    sweep_n = args.sweep_vectors or (2_500 if args.quick else 10_000)
    in_flights = [int(k) for k in (args.in_flight or ("1,4" if args.quick else "1,2,4,8,16")).split(",")]
    result: dict[str, Any] = {"quick": args.quick, "aws_vectors_per_s": AWS_VECTORS_PER_S}

    print("1. client cost per PutVectors request (no throttling)", flush=True)
    with local_server() as server:
        result["client_cost"] = client_cost(server.url, server.cpu, batches=args.requests or (3 if args.quick else 10),
                                            dimension=args.dimension)

    print(f"2. sustained rate with AWS throttling on, {n:,} vectors", flush=True)
    with local_server(throttle=True) as server:
        run = run_writer(server.url, server, n=n, dimension=args.dimension, in_flight=8, index="throttled")
    run["sustained_ratio_to_aws_limit"] = ratio(run["sustained_vectors_per_s"] or 0, AWS_VECTORS_PER_S)
    run["target_ratio"] = 0.95
    run["target_met"] = bool(run["sustained_ratio_to_aws_limit"] and run["sustained_ratio_to_aws_limit"] >= 0.95
                             and run["lost_vectors"] == 0 and run["unexpected_vectors"] == 0)
    result["throttled"] = run
    print(f"  sustained {run['sustained_vectors_per_s']} vectors/s = {run['sustained_ratio_to_aws_limit']} x 2,500; "
          f"429s {run['throttled_429']}; lost {run['lost_vectors']}; endpoint CPU {run['endpoint_cpu_share']}, "
          f"client CPU {run['client_cpu_share']}", flush=True)

    print(f"3. {args.latency_ms:g} ms latency, {sweep_n:,} vectors per run", flush=True)
    sweep: dict[str, Any] = {"latency_ms": args.latency_ms, "vectors": sweep_n, "runs": []}
    for throttle in (False, True):
        rates: dict[tuple[float, int], dict[str, Any]] = {}
        for latency in (0.0, args.latency_ms):
            with local_server(throttle=throttle, latency_ms=latency) as server:
                for k in in_flights:
                    r = run_writer(server.url, server, n=sweep_n, dimension=args.dimension, in_flight=k,
                                   index=f"lat{int(latency)}-k{k}", unlimited=not throttle)
                    rates[(latency, k)] = r
                    print(f"  throttle={throttle!s:5} latency={latency:4g} ms in_flight={k:2d}: "
                          f"{r['vectors_per_s']:8.1f} vectors/s", flush=True)
        for k in in_flights:
            with_latency, without = rates[(args.latency_ms, k)], rates[(0.0, k)]
            sweep["runs"].append({
                "throttle": throttle,
                "in_flight": k,
                "vectors_per_s_no_latency": without["vectors_per_s"],
                "vectors_per_s_with_latency": with_latency["vectors_per_s"],
                "sustained_vectors_per_s_no_latency": without["sustained_vectors_per_s"],
                "sustained_vectors_per_s_with_latency": with_latency["sustained_vectors_per_s"],
                "latency_hidden_ratio": ratio(with_latency["vectors_per_s"], without["vectors_per_s"]),
                "ratio_to_one_in_flight": ratio(with_latency["vectors_per_s"],
                                                rates[(args.latency_ms, in_flights[0])]["vectors_per_s"]),
                "sustained_ratio_to_aws_limit": ratio(with_latency["sustained_vectors_per_s"] or 0, AWS_VECTORS_PER_S)
                if throttle and with_latency["sustained_vectors_per_s"] else None,
                "lost_vectors": with_latency["lost_vectors"] + without["lost_vectors"],
                "throttled_429": with_latency["throttled_429"],
                "endpoint_cpu_share": with_latency["endpoint_cpu_share"],
            })
    result["latency"] = sweep
    cost = result["client_cost"]["variants"]
    base, ours = cost["boto3_defaults"], cost["loader_encoded_body"]
    unthrottled = [r for r in sweep["runs"] if not r["throttle"]]
    shown = next((r for r in unthrottled if r["in_flight"] >= 4), unthrottled[-1] if unthrottled else None)
    result["summary"] = [
        summary_row(3, "Write path under AWS throttling (precomputed vectors)",
                    value=run["sustained_ratio_to_aws_limit"],
                    measured=f"{run['sustained_vectors_per_s']} vectors/s sustained, {run['lost_vectors']} lost, "
                             f"{run['throttled_429']} x 429; endpoint CPU {run['endpoint_cpu_share']:.0%} of a core",
                    reference="AWS limit 2,500 vectors/s per index", target=">= 0.95, 0 lost",
                    met=run["target_met"], goal=0.95),
        summary_row(3, "Client CPU per PutVectors of 500 x 384-d (loader.wire vs boto3 as usually called)",
                    value=ours["client_cpu_speedup"],
                    measured=f"{ours['client_cpu_s_per_request'] * 1e3:.0f} ms vs "
                             f"{base['client_cpu_s_per_request'] * 1e3:.0f} ms; one-thread ceiling "
                             f"{ours['one_thread_ceiling_vectors_per_s']:,} vs "
                             f"{base['one_thread_ceiling_vectors_per_s']:,}"
                             " vectors/s",
                    reference="boto3 defaults, same run", target="ceiling > 2,500 vectors/s",
                    met=(ours["one_thread_ceiling_vectors_per_s"] or 0) > AWS_VECTORS_PER_S, goal=None),
    ]
    if shown:
        result["summary"].append(summary_row(
            3, f"{args.latency_ms:g} ms latency hidden by requests in flight (no throttling)",
            value=shown["latency_hidden_ratio"],
            measured=f"{shown['in_flight']} in flight: {shown['vectors_per_s_with_latency']:,} vs "
                     f"{shown['vectors_per_s_no_latency']:,} vectors/s without latency; share kept by in-flight "
                     "count: " + ", ".join(f"{r['in_flight']}: {r['latency_hidden_ratio']}" for r in unthrottled),
            reference="same in-flight count without latency, same run", target="shown (no target)", met=None))
    write_result("write", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
