"""Re-running an unchanged corpus vs the first load (issue 5, part 5): target >= 50x faster, 0 embedded.

    python -m bench.bench_rerun            # the sample corpus, and 10 copies of it (~3-5 min)
    python -m bench.bench_rerun --quick    # 6 documents

Each run is a fresh ``python -m loader load DIR --json`` process against the local endpoint (its own
process), timed from process start to exit, as a user or CI job sees it:

1. first load into an empty index (model loaded, every chunk embedded and written), through
   ``bench.lazy_cli`` — identical to ``python -m loader`` except that the embedder is a
   ``loader.lazy.LazyEmbedder``; with an empty identity cache it loads the model at once, like the
   plain command, and records the model's identity for later runs;
2. re-run with the lazy embedder: the sync decides from the index and the file hashes, nothing to
   embed, so the model is never loaded;
3. re-run with ``python -m loader`` as ``loader/cli.py`` builds its embedder today (eagerly loaded).

Ratios: first load wall time / re-run wall time, for 2 and 3. Each re-run must embed and write 0 chunks.
A re-run's time is mostly the interpreter starting and importing numpy, boto3 and the loader (~0.3-0.5 s)
while a first load grows with the corpus, so the ratio is also given for 10 copies of the corpus and
inside ``load()`` alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
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
    ROOT,
    create_index,
    loader_client,
    local_server,
    ratio,
    summary_row,
    write_result,
)


def run_cli(module: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=1800)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    return {
        "wall_seconds": round(wall, 3),
        "load_seconds": report["seconds"],  # inside load(): after imports, model and client setup
        "documents": report["documents"],
        "chunks": report["chunks"],
        "requests": report["requests"],
    }


def copies_of(corpus: Path, copies: int, dest: Path) -> Path:
    """``copies`` copies of ``corpus`` (its files as they are: md, txt, html, pdf) under ``dest/copy-NN/``."""
    for c in range(copies):
        shutil.copytree(corpus, dest / f"copy-{c:02d}")
    return dest


def measure(root: Path, url: str, index: str, env: dict[str, str], reruns: int, fake: bool) -> dict[str, Any]:
    target = create_index(loader_client(url), index=index)
    cli_args = ["load", str(root), "--endpoint-url", url, "--bucket", target.bucket, "--index", target.index,
                "--region", "us-east-1", "--json", "--quiet"]
    first = run_cli("bench.lazy_cli", cli_args, env)
    print(f"  first load {first['wall_seconds']} s, {first['chunks']['embedded']} chunks embedded", flush=True)
    lazy_runs, eager_runs = [], []
    for _ in range(reruns):
        lazy_runs.append(run_cli("bench.lazy_cli", cli_args, env))
        if fake:  # the eager stand-in: the same fake embedder, built eagerly
            eager_runs.append(run_cli("bench.lazy_cli", cli_args, {**env, "BENCH_EAGER": "1"}))
        else:
            eager_runs.append(run_cli("loader", cli_args, env))
        print(f"  re-run: lazy model {lazy_runs[-1]['wall_seconds']} s; loader/cli.py as is "
              f"{eager_runs[-1]['wall_seconds']} s", flush=True)

    def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return sorted(runs, key=lambda r: r["wall_seconds"])[len(runs) // 2]

    lazy, eager = median(lazy_runs), median(eager_runs)
    zero = all(r["chunks"]["embedded"] == 0 and r["chunks"]["written"] == 0 and r["chunks"]["deleted"] == 0
               for r in lazy_runs + eager_runs)
    out: dict[str, Any] = {
        "first_load": first,
        "rerun_lazy_model": lazy,
        "rerun_cli_as_is": eager,
        "rerun_wall_seconds": {"lazy_model": [r["wall_seconds"] for r in lazy_runs],
                               "cli_as_is": [r["wall_seconds"] for r in eager_runs]},
        "speedup_lazy_model": ratio(first["wall_seconds"], lazy["wall_seconds"], 1),
        "speedup_cli_as_is": ratio(first["wall_seconds"], eager["wall_seconds"], 1),
        # Inside load() only (after interpreter start, imports, client and model set-up).
        "speedup_in_load": ratio(first["load_seconds"], lazy["load_seconds"], 1),
        "reruns_embedded_nothing": zero,
    }
    out["target_met"] = bool(zero and (out["speedup_lazy_model"] or 0) >= 50)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="6 documents, one copy, one re-run")
    ap.add_argument("--docs", type=int, help="use only the first N files of the corpus")
    ap.add_argument("--corpus", type=Path, default=DATA)
    ap.add_argument("--copies", default=None,
                    help="comma-separated corpus sizes in copies of the corpus (default 1,10; quick 1)")
    ap.add_argument("--reruns", type=int, default=3, help="re-runs of each kind (the median is reported)")
    ap.add_argument("--fake", action="store_true",
                    help="a fast fake embedder instead of the model, and no plain `python -m loader` run (tests)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    docs = args.docs or (6 if args.quick else None)
    reruns = 1 if args.quick else args.reruns
    copies = [int(c) for c in (args.copies or ("1" if args.quick else "1,10")).split(",")]

    result: dict[str, Any] = {"quick": args.quick, "fake_embedder": args.fake, "target_speedup": 50, "corpora": {}}
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp, local_server() as server:
        base = subset(args.corpus, docs, Path(tmp) / "corpus") if docs else args.corpus
        env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_REGION="us-east-1",
                   AWS_EC2_METADATA_DISABLED="true", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   LOADER_CACHE_DIR=str(Path(tmp) / "cache"))
        env.pop("AWS_PROFILE", None)
        if args.fake:
            env["BENCH_EMBEDDER"] = "fake"
        for n in copies:
            root = base if n == 1 else copies_of(base, n, Path(tmp) / f"copies-{n}")
            label = str(args.corpus) + (f" (first {docs} files)" if docs else "") + (f" x {n}" if n > 1 else "")
            print(f"{label}: first load (cold process, model loaded, every chunk embedded), then re-runs",
                  flush=True)
            run = measure(root, server.url, f"rerun-{n}", env, reruns, args.fake)
            run["corpus"] = label
            result["corpora"][str(n)] = run
            print(f"  re-run speed-up: {run['speedup_lazy_model']}x with the lazy model, "
                  f"{run['speedup_cli_as_is']}x with loader/cli.py as is (target 50x)", flush=True)

    main_run = result["corpora"][str(copies[0])]
    result.update({k: main_run[k] for k in ("first_load", "rerun_lazy_model", "rerun_cli_as_is",
                                             "speedup_lazy_model", "speedup_cli_as_is", "reruns_embedded_nothing",
                                             "target_met")})
    result["summary"] = []
    for n, run in result["corpora"].items():
        lazy, first, eager = run["rerun_lazy_model"], run["first_load"], run["rerun_cli_as_is"]
        size = f"{first['chunks']['embedded']:,} chunks" + (f", {n} copies of the corpus" if n != "1" else "")
        result["summary"].append(summary_row(
            5, f"Re-run of an unchanged corpus vs first load, model loaded lazily ({size})",
            value=run["speedup_lazy_model"],
            measured=f"{lazy['wall_seconds']} s vs {first['wall_seconds']} s per process; {lazy['chunks']['embedded']}"
                     f" embedded; inside load(): {run['speedup_in_load']}x",
            reference="first load, cold process, same run", target=">= 50x, 0 embedded", met=run["target_met"],
            goal=50.0))
        if n == str(copies[0]):
            result["summary"].append(summary_row(
                5, f"Re-run, loader/cli.py as is: model loaded eagerly ({size})", value=run["speedup_cli_as_is"],
                measured=f"{eager['wall_seconds']} s vs {first['wall_seconds']} s",
                reference="first load, same run", target=">= 50x", met=(run["speedup_cli_as_is"] or 0) >= 50,
                goal=50.0))
    write_result("rerun", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
