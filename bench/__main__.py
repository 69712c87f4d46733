"""The whole benchmark suite: ``python -m bench`` (``--quick`` for a short version, ~3 minutes).

Runs each benchmark as its own process (so one's threads, caches and memory do not skew the next),
then ``bench.report``: ``bench/results/summary.md`` (the README table) and ``summary.png``.

    python -m bench                        # everything (~20-30 min on 2 cores)
    python -m bench --quick                # short versions, into bench/results/quick/
    python -m bench --only write,peer      # some of them
    python -m bench --skip endpoint        # all but some
    python -m bench --results /tmp/out     # write the JSON and the summary elsewhere

Benchmarks (one command each; every figure a ratio against a reference measured in the same run):
  embedding  python bench/bench_embedding.py   1. backends vs torch fp32 (if present)
  pipeline   python -m bench.bench_pipeline    2. end-to-end load vs pure embedding, stage breakdown
  write      python -m bench.bench_write       3. write path under AWS throttling, latency hiding
  peer       python -m bench.bench_peer        4. vs langchain-aws AmazonS3Vectors.add_texts
  rerun      python -m bench.bench_rerun       5. unchanged re-run vs first load
  endpoint   python bench/bench_endpoint.py    6. local endpoint query latency
  memory     python -m bench.bench_memory      7. peak RSS while loading 100k chunks
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, ROOT

BENCH = ROOT / "bench"
# name -> (command, options in --quick mode: (flag, value or None), each passed only if the script takes it)
SUITE: dict[str, tuple[list[str], list[tuple[str, str | None]]]] = {
    "embedding": ([str(BENCH / "bench_embedding.py")], [("--quick", None), ("--limit", "64"), ("--repeats", "1")]),
    "pipeline": (["-m", "bench.bench_pipeline"], [("--quick", None)]),
    "write": (["-m", "bench.bench_write"], [("--quick", None)]),
    "peer": (["-m", "bench.bench_peer"], [("--quick", None)]),
    "rerun": (["-m", "bench.bench_rerun"], [("--quick", None)]),
    "endpoint": ([str(BENCH / "bench_endpoint.py")], [("--sizes", "10k"), ("--queries", "50")]),
    "memory": (["-m", "bench.bench_memory"], [("--quick", None)]),
}


_HELP: dict[str, str] = {}


def _accepts(script: list[str], flag: str) -> bool:
    """Whether a benchmark's --help mentions ``flag`` (a script we do not own may not take --quick)."""
    key = " ".join(script)
    if key not in _HELP:
        try:
            out = subprocess.run([sys.executable, *script, "--help"], capture_output=True, text=True, cwd=ROOT,
                                 timeout=120)
            _HELP[key] = out.stdout
        except (OSError, subprocess.TimeoutExpired):
            _HELP[key] = ""
    return f"{flag} " in _HELP[key] or f"{flag}\n" in _HELP[key] or f"{flag}]" in _HELP[key]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short versions of every benchmark")
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(SUITE)}")
    ap.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    ap.add_argument("--results", type=Path,
                    help="folder for the JSON results and the summary (default bench/results/, with --quick "
                    "bench/results/quick/ so that a short run never replaces the full results)")
    ap.add_argument("--keep-going", action="store_true", help="run the rest when one benchmark fails")
    args = ap.parse_args(argv)
    results: Path = args.results or (RESULTS / "quick" if args.quick else RESULTS)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(SUITE)
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    unknown = [n for n in [*names, *skip] if n not in SUITE]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failed: list[str] = []
    for name in names:
        if name in skip:
            continue
        script, quick_args = SUITE[name]
        if script[0].endswith(".py") and not Path(script[0]).is_file():
            print(f"== {name}: {Path(script[0]).relative_to(ROOT)} not present, skipped", flush=True)
            continue
        cmd = [sys.executable, *script]
        if args.quick:
            for flag, value in quick_args:
                if _accepts(script, flag):
                    cmd += [flag] if value is None else [flag, value]
        out = results / f"{name}.json"
        if _accepts(script, "--out"):
            cmd += ["--out", str(out)]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(cmd, cwd=ROOT).returncode
        print(f"== {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
            if not args.keep_going:
                break
    from bench import report

    report.main(["--results", str(results)])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
