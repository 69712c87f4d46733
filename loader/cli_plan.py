"""``python -m loader plan``: size, cost and duration of a load, before running it (no AWS call)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from loader import contract
from loader.errors import UsageError

PLAN_EPILOG = """\
Estimates chunks and vectors, storage (GB, USD/month), the PUT cost of one full load, the query
cost per million queries, embedding hours on one CPU worker (measured on this project's machine, or
bench/results) and one GPU, write hours into one index (2,500 vectors/s), and with --target-hours
the indexes and Batch shards that meet it. Prices: loader/pricing.py (us-east-1, sources and date).
No AWS call is made. Design and limits: docs/scaling.md.

examples:
  python -m loader plan data/                                  count a folder exactly (chunker + tokenizer)
  python -m loader plan --docs 1000000 --avg-words 800 --target-hours 12
  python -m loader plan --docs 333333334 --avg-words 500 --target-hours 24 --json
"""


def add_plan_parser(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    plan = sub.add_parser(
        "plan",
        help="estimate vectors, cost, time, shards and indexes of a load",
        description="Estimate the size, cost and duration of a load before running it.",
        epilog=PLAN_EPILOG,
        formatter_class=fmt,
    )
    plan.add_argument("source", nargs="?", metavar="DIR", help="a folder to measure (or use --docs and --avg-words)")
    plan.add_argument("--docs", type=int, metavar="N", help="number of documents (a corpus not at hand)")
    plan.add_argument("--avg-words", type=float, metavar="W", help="average words per document")
    plan.add_argument(
        "--target-hours", type=float, metavar="H", help="finish within H hours: the shards (and indexes) that takes"
    )
    plan.add_argument(
        "--queries-per-month",
        type=int,
        default=1_000_000,
        metavar="Q",
        help="for the monthly query cost (default: 1,000,000)",
    )
    plan.add_argument(
        "--chunk-tokens",
        dest="plan_chunk_tokens",
        type=int,
        default=254,
        metavar="N",
        help="tokens per chunk (default: 254, the model's maximum)",
    )
    plan.add_argument(
        "--overlap-tokens",
        dest="plan_overlap_tokens",
        type=int,
        default=32,
        metavar="N",
        help="tokens shared by consecutive chunks (default: 32)",
    )
    plan.add_argument(
        "--dimension", type=int, default=contract.DEFAULT_DIMENSION, metavar="D", help="vector dimension (default: 384)"
    )
    plan.add_argument(
        "--cpu-rate", type=float, metavar="CHUNKS_PER_S", help="chunks/s of one CPU worker (default: measured)"
    )
    plan.add_argument(
        "--gpu-rate",
        type=float,
        metavar="CHUNKS_PER_S",
        help="chunks/s of one GPU worker (default: bench/results, else an estimate)",
    )
    plan.add_argument("--json", dest="json", action="store_const", const=True, help="print the plan as JSON")


def cmd_plan(args: argparse.Namespace, json_output: bool) -> int:
    from loader import plan as planning

    by_size = args.docs is not None or args.avg_words is not None
    if args.source is not None and by_size:
        raise UsageError("give DIR or --docs/--avg-words, not both")
    if args.source is None and (args.docs is None or args.avg_words is None):
        raise UsageError("give DIR, or both --docs N and --avg-words W")
    if args.source is not None and args.source.startswith("s3://"):
        raise UsageError("plan reads local folders; for a corpus elsewhere, give --docs N and --avg-words W")
    cpu, gpu = planning.measured_rates()
    kwargs: dict[str, Any] = {
        "chunk_tokens": args.plan_chunk_tokens,
        "overlap": args.plan_overlap_tokens,
        "dimension": args.dimension,
        "target_hours": args.target_hours,
        "queries_per_month": args.queries_per_month,
        "embed_rate_cpu": args.cpu_rate if args.cpu_rate is not None else cpu,
        "embed_rate_gpu": args.gpu_rate if args.gpu_rate is not None else gpu,
    }
    try:
        if args.source is None:
            result = planning.plan(args.docs, args.avg_words, **kwargs)
        else:
            scan = planning.scan_directory(
                Path(args.source), chunk_tokens=kwargs["chunk_tokens"], overlap=kwargs["overlap"]
            )
            result = planning.plan_scan(scan, **kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result.to_dict(), indent=2) if json_output else planning.format_plan(result))
    return 0
