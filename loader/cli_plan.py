"""``python -m loader plan``: size, cost and duration of a load, before running it.

No AWS call is made, except to list an ``s3://`` prefix and read a sample of its objects.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loader import contract
from loader.errors import LoaderError, UsageError

if TYPE_CHECKING:
    from loader.plan import CorpusScan, Plan

PLAN_EPILOG = """\
Estimates chunks and vectors, storage (GB, USD/month), the PUT cost of one full load, the query
cost per million queries, embedding hours on one CPU worker (measured on this project's machine, or
bench/results) and one GPU, write hours into one index (2,500 vectors/s), and with --target-hours
the indexes and Batch shards that meet it. Prices: loader/pricing.py (us-east-1, sources and date).
Design and limits: docs/scaling.md.

An s3:// prefix is listed in full (ListObjectsV2: object count and bytes) but only --sample objects
are read (GetObject), chosen at random with a fixed seed; documents are extrapolated by object count,
words, chunks and bytes by size. A prefix of --sample objects or fewer is counted exactly. No other
AWS call is made, and none at all for a folder or --docs.

examples:
  python -m loader plan data/                                  count a folder exactly (chunker + tokenizer)
  python -m loader plan s3://corpus-bucket/docs/ --sample 2000 --target-hours 24
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
    plan.add_argument(
        "source",
        nargs="?",
        metavar="DIR_OR_PREFIX",
        help="a folder, or an S3 prefix s3://bucket/prefix/, to measure (or use --docs and --avg-words)",
    )
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
    _add_s3_options(plan)


def _add_s3_options(plan: argparse.ArgumentParser) -> None:
    s3 = plan.add_argument_group("s3:// prefixes")
    s3.add_argument(
        "--sample",
        type=_sample_size,
        metavar="N",
        help="objects to read, chosen at random; the rest are listed and extrapolated from them "
        "(default: 1000; 0 or 'all': read every object)",
    )
    s3.add_argument(
        "--s3-endpoint-url",
        dest="s3_endpoint_url",
        metavar="URL",
        help="an S3-compatible endpoint (e.g. MinIO) [env: LOADER_S3_ENDPOINT_URL]",
    )
    # SUPPRESS: the same options given before the command name (python -m loader --region R plan) stay.
    s3.add_argument(
        "--region", dest="region", default=argparse.SUPPRESS, help="AWS region [env: LOADER_REGION, AWS_REGION]"
    )
    s3.add_argument(
        "--profile",
        dest="profile",
        default=argparse.SUPPRESS,
        help="AWS profile [env: LOADER_PROFILE; boto3 also reads AWS_PROFILE]",
    )


def _sample_size(text: str) -> int:
    if text.strip().lower() == "all":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of objects, or 0 or 'all' to read them all: {text!r}")
    return value


def cmd_plan(args: argparse.Namespace, json_output: bool) -> int:
    from loader import plan as planning

    _check_arguments(args)
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
        planning.plan(0, 0.0, **kwargs)  # bad options fail now, not after listing a million objects
        result = _plan(args, kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result.to_dict(), indent=2) if json_output else planning.format_plan(result))
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    from loader.s3_source import is_s3_uri

    by_size = args.docs is not None or args.avg_words is not None
    if args.source is not None and by_size:
        raise UsageError("give DIR_OR_PREFIX or --docs/--avg-words, not both")
    if args.source is None and (args.docs is None or args.avg_words is None):
        raise UsageError("give DIR_OR_PREFIX, or both --docs N and --avg-words W")
    if args.sample is not None and not (args.source and is_s3_uri(args.source)):
        raise UsageError("--sample applies to an s3:// prefix (a folder is always read in full)")


def _plan(args: argparse.Namespace, kwargs: dict[str, Any]) -> Plan:
    from loader import plan as planning
    from loader.s3_source import is_s3_uri

    if args.source is None:
        return planning.plan(args.docs, args.avg_words, **kwargs)
    sizes = {"chunk_tokens": kwargs["chunk_tokens"], "overlap": kwargs["overlap"]}
    if is_s3_uri(args.source):
        scan = _scan_prefix(args, sizes)
    else:
        try:
            scan = planning.scan_directory(Path(args.source), **sizes)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise UsageError(f"{exc.filename}: {exc.strerror}") from None
    return planning.plan_scan(scan, **kwargs)


def _scan_prefix(args: argparse.Namespace, sizes: dict[str, int]) -> CorpusScan:
    from botocore.exceptions import BotoCoreError, ClientError

    from loader import plan as planning
    from loader.s3_source import parse_s3_uri

    location = parse_s3_uri(args.source)
    sample = planning.DEFAULT_SAMPLE if args.sample is None else args.sample
    try:
        return planning.scan_s3(location, _s3_client(args), sample=sample, **sizes)
    except (BotoCoreError, ClientError) as exc:
        raise LoaderError(f"cannot list {location}: {_s3_problem(exc)}") from None


def _s3_client(args: argparse.Namespace) -> Any:
    """The caller's own credentials read the corpus (as for ``load s3://...``), from flags or the environment."""
    from loader.client import is_loopback, make_session, s3_client

    env = os.environ.get
    endpoint = args.s3_endpoint_url or env("LOADER_S3_ENDPOINT_URL") or None
    region = getattr(args, "region", None) or env("LOADER_REGION") or env("AWS_REGION") or None
    profile = getattr(args, "profile", None) or env("LOADER_PROFILE") or None
    session = make_session(region=region, profile=profile, local=is_loopback(endpoint))
    return s3_client(session, endpoint_url=endpoint)


_S3_HINTS = {
    "NoSuchBucket": "no such bucket: check the name (and --s3-endpoint-url for an S3-compatible store)",
    "AccessDenied": "access denied: the credentials in use need s3:ListBucket on the bucket and s3:GetObject on "
    "its objects; choose others with --profile or AWS_PROFILE",
    "AllAccessDisabled": "all access to this bucket is disabled",
    "InvalidAccessKeyId": "the access key is not valid: check your AWS credentials",
    "SignatureDoesNotMatch": "the request signature does not match: check your AWS credentials",
    "ExpiredToken": "the credentials have expired: refresh them (e.g. aws sso login)",
    "PermanentRedirect": "the bucket is in another region: pass --region",
    "AuthorizationHeaderMalformed": "the bucket is in another region: pass --region",
}


def _s3_problem(exc: Exception) -> str:
    """One line: what went wrong and what to do."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return (
            "no AWS credentials found: configure a profile (--profile / AWS_PROFILE) or set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Error"))
        problem = _S3_HINTS.get(code) or f"{code}: {error.get('Message') or exc}"
    else:
        problem = str(exc)
    return " ".join(problem.split())
