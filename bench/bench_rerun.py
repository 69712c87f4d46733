"""Re-running an unchanged corpus vs the first load (issue 5, part 5): target >= 50x faster, 0 embedded.

    python -m bench.bench_rerun            # the sample corpus, and 10 copies of it (~3-5 min)
    python -m bench.bench_rerun --quick    # 6 documents

Each run is a fresh ``python -m loader load DIR --json`` process, timed from process start to exit, as
a user or CI job sees it:

1. the first load into an empty index, against a local endpoint (its own process): the model is
   loaded, every chunk embedded and written (the model's identity cache starts empty, so the
   ``loader.lazy`` embedder loads the model at once and records its identity);
2. re-runs of the same command: the sync decides from the index and the file hashes, there is nothing
   to embed, so the model is never loaded. Each re-run must embed, write and delete 0 chunks.

Ratio: first load wall time / median re-run wall time. A re-run's time is mostly the interpreter
starting and importing numpy, botocore and the loader (~0.3-0.4 s) while a first load grows with the
corpus, so the ratio is also given for 10 copies of the corpus and inside ``load()`` alone.

The same pair is measured through ``python -m loader --local`` (what ``make demo`` runs), when the
synthesized template (cdk.out/) is there: the first run starts the endpoint in its own folder and
provisions the index; a re-run finds the endpoint again and skips provisioning (``loader.local``).

``--fake`` (the suite's own tests) runs ``python -m bench.lazy_cli`` instead: the loader's command line
with a fast fake embedder, so no model is needed.
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

TARGET = 50.0
TEMPLATE = ROOT / "cdk.out" / "S3VectorsDocSearch.template.json"


def run_cli(module: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800
    )
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


def first_and_reruns(module: str, cli_args: list[str], env: dict[str, str], reruns: int) -> dict[str, Any]:
    """One first load, then ``reruns`` re-runs of the same command; the median re-run is reported."""
    first = run_cli(module, cli_args, env)
    print(f"  first load {first['wall_seconds']} s, {first['chunks']['embedded']} chunks embedded", flush=True)
    runs = []
    for _ in range(reruns):
        runs.append(run_cli(module, cli_args, env))
        print(f"  re-run {runs[-1]['wall_seconds']} s, {runs[-1]['chunks']['embedded']} embedded", flush=True)
    rerun = sorted(runs, key=lambda r: r["wall_seconds"])[len(runs) // 2]
    zero = all(
        r["chunks"]["embedded"] == 0 and r["chunks"]["written"] == 0 and r["chunks"]["deleted"] == 0 for r in runs
    )
    out: dict[str, Any] = {
        "command": f"python -m {module} {' '.join(cli_args)}",
        "first_load": first,
        "rerun": rerun,
        "rerun_wall_seconds": [r["wall_seconds"] for r in runs],
        "speedup": ratio(first["wall_seconds"], rerun["wall_seconds"], 1),
        # Inside load() only (after interpreter start, imports, client and model set-up).
        "speedup_in_load": ratio(first["load_seconds"], rerun["load_seconds"], 1),
        "reruns_embedded_nothing": zero,
    }
    out["target_met"] = bool(zero and (out["speedup"] or 0) >= TARGET)
    return out


def measure(root: Path, url: str, index: str, module: str, env: dict[str, str], reruns: int) -> dict[str, Any]:
    target = create_index(loader_client(url), index=index)
    cli_args = [
        "load",
        str(root),
        "--endpoint-url",
        url,
        "--bucket",
        target.bucket,
        "--index",
        target.index,
        "--region",
        "us-east-1",
        "--json",
        "--quiet",
    ]
    return first_and_reruns(module, cli_args, env, reruns)


def measure_local(root: Path, local_dir: Path, module: str, env: dict[str, str], reruns: int) -> dict[str, Any]:
    """The same through ``--local``: the endpoint started in ``local_dir`` and the template's index provisioned."""
    from s3vectors_local.process import stop_server

    env = dict(env, LOADER_LOCAL_DIR=str(local_dir), LOADER_TEMPLATE=str(TEMPLATE))
    try:
        return first_and_reruns(module, ["--local", "load", str(root), "--json", "--quiet"], env, reruns)
    finally:
        stop_server(local_dir)


def size_of(run: dict[str, Any], copies: int) -> str:
    return f"{run['first_load']['chunks']['embedded']:,} chunks" + (
        f", {copies} copies of the corpus" if copies > 1 else ""
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="6 documents, one copy, one re-run")
    ap.add_argument("--docs", type=int, help="use only the first N files of the corpus")
    ap.add_argument("--corpus", type=Path, default=DATA)
    ap.add_argument(
        "--copies", default=None, help="comma-separated corpus sizes in copies of the corpus (default 1,10; quick 1)"
    )
    ap.add_argument("--reruns", type=int, default=3, help="re-runs of each kind (the median is reported)")
    ap.add_argument("--no-local", action="store_true", help="skip the --local pair")
    ap.add_argument(
        "--fake", action="store_true", help="a fast fake embedder instead of the model, through bench.lazy_cli (tests)"
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    docs = args.docs or (6 if args.quick else None)
    reruns = 1 if args.quick else args.reruns
    copies = [int(c) for c in (args.copies or ("1" if args.quick else "1,10")).split(",")]
    module = "bench.lazy_cli" if args.fake else "loader"

    result: dict[str, Any] = {
        "quick": args.quick,
        "fake_embedder": args.fake,
        "target_speedup": TARGET,
        "command": f"python -m {module} load DIR --json --quiet",
        "corpora": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp, local_server() as server:
        base = subset(args.corpus, docs, Path(tmp) / "corpus") if docs else args.corpus
        env = dict(
            os.environ,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            LOADER_CACHE_DIR=str(Path(tmp) / "cache"),
        )
        env.pop("AWS_PROFILE", None)
        for name in ("LOADER_BUCKET", "LOADER_INDEX", "LOADER_LOCAL", "LOADER_ENDPOINT_URL", "LOADER_OUTPUTS_FILE"):
            env.pop(name, None)
        if args.fake:
            env["BENCH_EMBEDDER"] = "fake"
        labels = {}
        for n in copies:
            root = base if n == 1 else copies_of(base, n, Path(tmp) / f"copies-{n}")
            label = str(args.corpus) + (f" (first {docs} files)" if docs else "") + (f" x {n}" if n > 1 else "")
            labels[n] = (root, label)
            print(f"{label}: first load (cold process, model loaded, every chunk embedded), then re-runs", flush=True)
            run = measure(root, server.url, f"rerun-{n}", module, env, reruns)
            run["corpus"] = label
            result["corpora"][str(n)] = run
            print(f"  re-run speed-up: {run['speedup']}x (target {TARGET:g}x)", flush=True)
        if not args.no_local and TEMPLATE.is_file():
            root, label = labels[copies[0]]
            print(f"{label}: the same through --local (endpoint started, index provisioned, then re-runs)", flush=True)
            local = measure_local(root, Path(tmp) / "local-endpoint", module, env, reruns)
            local["corpus"] = label
            result["local"] = local
            print(f"  --local re-run speed-up: {local['speedup']}x", flush=True)
        else:
            result["local"] = None  # skipped, or no synthesized template (`npx cdk synth`)

    main_run = result["corpora"][str(copies[0])]
    result.update(
        {
            k: main_run[k]
            for k in ("first_load", "rerun", "speedup", "speedup_in_load", "reruns_embedded_nothing", "target_met")
        }
    )
    result["summary"] = []
    command = f"python -m {module}"
    for n, run in result["corpora"].items():
        first, rerun = run["first_load"], run["rerun"]
        result["summary"].append(
            summary_row(
                5,
                f"Re-run of an unchanged corpus vs first load, {command} ({size_of(run, int(n))})",
                value=run["speedup"],
                measured=f"{rerun['wall_seconds']} s vs {first['wall_seconds']} s per process; "
                f"{rerun['chunks']['embedded']} embedded; inside load(): {run['speedup_in_load']}x",
                reference="first load, cold process, same run",
                target=f">= {TARGET:g}x, 0 embedded",
                met=run["target_met"],
                goal=TARGET,
            )
        )
    local = result["local"]
    if local is not None:
        first, rerun = local["first_load"], local["rerun"]
        result["summary"].append(
            summary_row(
                5,
                f"Re-run with {command} --local (make demo) vs its first run ({size_of(local, copies[0])})",
                value=local["speedup"],
                measured=f"{rerun['wall_seconds']} s vs {first['wall_seconds']} s (endpoint started, index "
                f"provisioned); {rerun['chunks']['embedded']} embedded",
                reference="first --local run, same run",
                target=f">= {TARGET:g}x, 0 embedded",
                met=local["target_met"],
                goal=TARGET,
            )
        )
    write_result("rerun", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
