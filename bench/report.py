"""The suite's summary: ``bench/results/summary.md`` (the README table) and ``summary.png`` (the chart).

    python -m bench.report                 # from whatever results are in bench/results/
    python -m bench.report --results DIR

Every benchmark result file may carry a ``summary`` list of rows (``bench.common.summary_row``); the
endpoint benchmark (``endpoint.json``) and the embedding benchmark (``embedding.json``) are read by
the extractors below when they have none. Missing files are listed as not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, summary_row

ORDER = ["embedding", "pipeline", "write", "peer", "rerun", "endpoint", "memory"]
PARTS = {"embedding": 1, "pipeline": 2, "write": 3, "peer": 4, "rerun": 5, "endpoint": 6, "memory": 7}


def load_results(folder: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for name in ORDER:
        path = folder / f"{name}.json"
        if path.is_file():
            try:
                out[name] = json.loads(path.read_text())
            except ValueError:
                continue
    return out


def endpoint_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    sizes = data.get("sizes", {})
    rows = []
    mid = sizes.get("100000")
    if mid:
        p50 = mid["query_http"]["p50_ms"]
        rows.append(summary_row(
            6, "QueryVectors p50 at 100k x 384-d, over HTTP", value=mid.get("ratio_http_to_one_pass_p50"),
            measured=f"{p50} ms p50, {mid['query_http']['p99_ms']} ms p99; server RSS {mid.get('server_rss_mb')} MiB",
            reference="one numpy pass over the matrix (x), same run", target="<= 20 ms p50", met=p50 <= 20,
            higher_is_better=False, goal=None))
    big = sizes.get("1000000")
    if big:
        r = big.get("ratio_in_process_to_one_pass_p50")
        rows.append(summary_row(
            6, "QueryVectors at 1M x 384-d vs the memory-bandwidth bound", value=r,
            measured=f"{big['query_in_process']['p50_ms']} ms in process, {big['query_http']['p50_ms']} ms over "
                     f"HTTP (p50); one pass {big['numpy_one_pass']['p50_ms']} ms",
            reference="one numpy pass over the 1.5 GB matrix, same run", target="<= 2x one pass",
            met=r is not None and r <= 2.0, higher_is_better=False, goal=2.0))
    if not rows:
        rows.append(summary_row(6, "QueryVectors latency (100k and 1M not in this run)", value=None,
                                measured="see endpoint.json", reference="one numpy pass, same run",
                                target="<= 20 ms p50 at 100k; 1M <= 2x one pass", met=None))
    return rows


def embedding_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """``bench/bench_embedding.py``'s results: one row per kept backend (ratio against torch float32)."""
    results = data.get("results")
    if isinstance(results, list) and results:
        default = data.get("loader_cpu_default") or data.get("recommended_cpu_default")
        rows = []
        for r in results:
            if not r.get("kept", True) or r.get("backend") == "torch":
                continue
            is_default = r.get("backend") == default
            rows.append(summary_row(
                1, f"Embedding backend {r['backend']}" + (" (loader's CPU default)" if is_default else ""),
                value=r.get("ratio"),
                measured=f"{r.get('chunks_per_s')} chunks/s; CPU-time ratio {r.get('cpu_ratio')}; cosine vs fp32 "
                         f"min {r.get('min_cosine')}, mean {r.get('mean_cosine')}; top-1 agreement "
                         f"{r.get('top1_agreement')}, top-3 overlap {r.get('top3_overlap')}",
                reference="sentence-transformers torch fp32, same run",
                target=">= 2.5x, min cosine >= 0.98, same top-1" if is_default else "min cosine >= 0.98",
                met=(bool((r.get("ratio") or 0) >= 2.5 and r.get("eligible")) if is_default
                     else bool(r.get("eligible"))),
                goal=2.5 if is_default else None))
        if rows:
            return rows
    for key in ("speedup", "speedup_vs_torch_fp32", "best_speedup"):
        if isinstance(data.get(key), int | float):
            value = float(data[key])
            return [summary_row(1, "Embedding backend vs sentence-transformers torch fp32", value=value,
                                measured=f"{value}x", reference="torch fp32, same run", target=">= 2.5x",
                                met=value >= 2.5, goal=2.5)]
    return [summary_row(1, "Embedding backends", value=None, measured="see bench/results/embedding.json",
                        reference="torch fp32, same run", target=">= 2.5x", met=None)]


def rows_of(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in ORDER:
        data = results.get(name)
        if data is None:
            rows.append(summary_row(PARTS[name], f"{name} (not run)", value=None, measured="-", reference="-",
                                    target="-", met=None))
        elif isinstance(data.get("summary"), list) and data["summary"]:
            rows.extend(data["summary"])
        elif name == "endpoint":
            rows.extend(endpoint_rows(data))
        elif name == "embedding":
            rows.extend(embedding_rows(data))
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def markdown(rows: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> str:
    machines = {json.dumps(r.get("machine", {}).get("cpu_model") or r.get("machine", {}).get("cpu")
                           or r.get("machine", {}).get("cpus")) for r in results.values()}
    quick = any(r.get("quick") for r in results.values())
    lines = [
        "| # | Benchmark | Ratio | Measured (same run) | Reference | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "-"}[row.get("met")]
        lines.append(f"| {row['part']} | {row['benchmark']} | {_fmt(row.get('value'))} | {row['measured']} | "
                     f"{row['reference']} | {row['target']} | {met} |")
    started = sorted(r.get("started") or r.get("created") or "" for r in results.values()
                     if r.get("started") or r.get("created"))
    lines.append("")
    lines.append(f"Ratios are against a reference measured in the same run on the same machine "
                 f"({', '.join(sorted(m for m in machines if m != 'null')) or 'unknown CPU'}; "
                 f"runs {started[0] if started else '?'} to {started[-1] if started else '?'})."
                 + (" Some results are from --quick runs." if quick else ""))
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], results: dict[str, dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)", file=sys.stderr)
        return False
    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    _targets_panel(axes[0][0], rows)
    _stages_panel(axes[0][1], results.get("pipeline"))
    _latency_panel(axes[1][0], results.get("write"))
    _memory_panel(axes[1][1], results.get("memory"))
    fig.suptitle("s3vectors-docsearch performance (ratios against same-run references)", fontsize=13)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _targets_panel(ax: Any, rows: list[dict[str, Any]]) -> None:
    scored = [r for r in rows if isinstance(r.get("value"), int | float) and isinstance(r.get("goal"), int | float)]
    if not scored:
        ax.text(0.5, 0.5, "no results", ha="center")
        return
    import textwrap

    labels, values, colors = [], [], []
    for r in scored:
        score = r["value"] / r["goal"] if r.get("higher_is_better", True) else r["goal"] / r["value"]
        labels.append(textwrap.fill(f"{r['part']}. {r['benchmark']}", 44, max_lines=3, placeholder=" ..."))
        values.append(score)
        colors.append("#2e7d32" if r.get("met") else "#c62828")
    y = range(len(values))
    ax.barh(list(y), values, color=colors)
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("achieved / target (>= 1: target met; log scale)")
    ax.set_title("Targets")
    for i, (v, r) in enumerate(zip(values, scored, strict=True)):
        ax.text(v, i, f" {_fmt(r['value'])}", va="center", fontsize=8)


def _stages_panel(ax: Any, data: dict[str, Any] | None) -> None:
    if not data:
        ax.text(0.5, 0.5, "pipeline: not run", ha="center")
        return
    stages = data["stages"]
    names = ["index", "read", "hash", "chunk", "embed", "build", "write", "delete"]
    values = [stages.get(n, 0.0) for n in names]
    y = list(range(len(names)))
    ax.barh(y, values, color=["#1565c0" if n == "embed" else "#90caf9" for n in names])
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.2f} s", va="center", fontsize=8)
    ref = min(data["reference_pure_embedding"]["seconds"])
    ax.axvline(stages["wall"], color="black", linestyle="--", linewidth=1,
               label=f"load wall time {stages['wall']:.2f} s")
    ax.axvline(ref, color="#2e7d32", linestyle=":", linewidth=1.5, label=f"pure embedding (best) {ref:.2f} s")
    ax.set_xlabel("seconds per stage, summed per thread")
    ax.set_xlim(right=max(max(values), stages["wall"], ref) * 1.25)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"2. Load stages ({data['chunks']} chunks): ratio {data['ratio_to_pure_embedding']}, "
                 f"{stages['hidden_by_overlap']:.2f} s hidden by overlap", fontsize=10)


def _latency_panel(ax: Any, data: dict[str, Any] | None) -> None:
    if not data:
        ax.text(0.5, 0.5, "write: not run", ha="center")
        return
    runs = data["latency"]["runs"]

    def rate(r: dict[str, Any], which: str) -> float:
        if r["throttle"]:  # the sustained rate (after the start-up burst), comparable with the limit
            sustained = r.get(f"sustained_vectors_per_s_{which}")
            if sustained:
                return float(sustained)
            if which == "with_latency" and r.get("sustained_ratio_to_aws_limit"):
                return float(r["sustained_ratio_to_aws_limit"]) * 2500
        return float(r[f"vectors_per_s_{which}"])

    for throttle, style in ((False, "o-"), (True, "s--")):
        sel = [r for r in runs if r["throttle"] == throttle]
        if not sel:
            continue
        ks = [r["in_flight"] for r in sel]
        suffix = ", AWS throttling (sustained)" if throttle else ""
        ax.plot(ks, [rate(r, "with_latency") for r in sel], style,
                label=f"{data['latency']['latency_ms']:g} ms latency{suffix}")
        if not throttle or any(r.get("sustained_vectors_per_s_no_latency") for r in sel):
            ax.plot(ks, [rate(r, "no_latency") for r in sel], style, alpha=0.35, label=f"no latency{suffix}")
    ax.axhline(2500, color="black", linestyle=":", linewidth=1)
    ax.text(1, 2500, " AWS limit 2,500 vectors/s", va="bottom", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("PutVectors requests in flight")
    ax.set_ylabel("vectors/s")
    cost = data.get("client_cost", {}).get("variants", {})
    subtitle = ""
    if cost:
        subtitle = (f"; client CPU per request: boto3 {cost['boto3_defaults']['client_cpu_s_per_request'] * 1e3:.0f}"
                    f" ms -> loader {cost['loader_encoded_body']['client_cpu_s_per_request'] * 1e3:.0f} ms")
    ax.set_title("3. Write path, 500-vector requests" + subtitle, fontsize=10)
    ax.legend(fontsize=8)


def _memory_panel(ax: Any, data: dict[str, Any] | None) -> None:
    if not data:
        ax.text(0.5, 0.5, "memory: not run", ha="center")
        return
    for _, run in sorted(data["sizes"].items(), key=lambda kv: int(kv[0])):
        samples = run.get("rss_samples") or []
        if samples:
            ax.plot([t for t, _ in samples], [m for _, m in samples],
                    label=f"{run['chunks_embedded']:,} chunks (peak {run['peak_rss_mb']} MiB)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("loader RSS, MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(f"7. Memory while loading: peak ratio {data['peak_rss_ratio']} for "
                 f"{data['chunks_ratio']}x the chunks", fontsize=10)
    ax.legend(fontsize=8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, help="folder for summary.md and summary.png (default: --results)")
    args = ap.parse_args(argv)
    out = args.out or args.results
    results = load_results(args.results)
    rows = rows_of(results)
    text = markdown(rows, results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text)
    print(text)
    print(f"wrote {out / 'summary.md'}")
    if chart(rows, results, out / "summary.png"):
        print(f"wrote {out / 'summary.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
