"""``python -m loader``: a thin argparse layer over ``loader.sync``, ``loader.query`` and ``loader.index``.

Commands: ``load`` (the default: ``python -m loader data`` = ``python -m loader load data``),
``query``, ``status``, ``delete``. Each flag falls back to an environment variable (``loader.config``).
Exit status: 0 success, 1 failure, 2 usage error; expected errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from loader import config, contract
from loader.cli_plan import add_plan_parser
from loader.cli_plan import cmd_plan as plan_command
from loader.config import Options, help_suffix
from loader.errors import IndexMismatchError, LoaderError, UsageError
from loader.outputs import Target, resolve_target

COMMANDS = ("load", "query", "status", "delete", "plan")
MAX_WARNINGS_SHOWN = 20

EPILOG = """\
examples:
  python -m loader --local                      load data/ into the local endpoint (after `npx cdk synth`)
  python -m loader data                         load data/ into the deployed stack (cdk-outputs.json)
  python -m loader load docs/ --dry-run         show what would be embedded, written and deleted
  python -m loader query "Can I bring my cat in the cabin?" --top-k 5 --where category=pets
  python -m loader status
  python -m loader delete --source travel/pets.md
  python -m loader plan --docs 1000000 --avg-words 800 --target-hours 12

The target index comes from --outputs-file (default cdk-outputs.json, written by
`npx cdk deploy --outputs-file cdk-outputs.json`), CloudFormation (--stack-name), or --bucket/--index.
"""

LOAD_EPILOG = """\
Sync semantics: the index mirrors DIR. The state lives in the index (each vector's source and
content hash), so any machine can re-run the load. The content hash covers the document's bytes,
the model, and the chunk settings: change any of them and the document is re-embedded. Unchanged
documents are not re-embedded or re-written; edited ones are re-embedded and their surplus chunks
deleted; with --prune (the default)
documents no longer in DIR are deleted from the index. Use --no-prune to keep them, e.g. when
several folders share one index. Vectors written by other tools (without the loader's metadata) are
never deleted. An interrupted load is completed by running it again.

examples:
  python -m loader --local                 load data/ into the local endpoint
  python -m loader data --dry-run          print the plan: new, changed, unchanged, deleted
  python -m loader docs/ --no-prune --json
  python -m loader data --assume-role      write with the stack's WriterRoleArn
  python -m loader s3://corpus-bucket/docs/ --shard 3/8
                                           load the 4th of 8 shards of an S3 prefix (streamed)

Sharding: --shard I/N (I from 0, as AWS_BATCH_JOB_ARRAY_INDEX) reads, writes and prunes only the
documents whose path hashes to shard I, so N runs of 0/N..N-1/N, in any order and on any machines,
leave the index exactly as one run without --shard would, and any shard can be re-run safely.
"""

QUERY_EPILOG = """\
score: S3 Vectors returns a distance (smaller is closer); the score printed is 1 - distance for a
cosine index (the cosine similarity) and 1 / (1 + distance) for a euclidean one (higher is closer).

filters (S3 Vectors syntax): {"category": "pets"}, {"chunk": {"$lte": 2}}, {"$or": [{...}, {...}]};
operators $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or ($startsWith on ENHANCED indexes).
--where KEY=VALUE is a shorthand (also != > >= < <=); numbers and true/false are typed, quote a value
to keep it a string (--where 'code="42"'); several --where/--filter are combined with $and.

examples:
  python -m loader query "Can I bring my cat in the cabin?"
  python -m loader query "checked bag fees" --top-k 3 --filter '{"category": "baggage"}'
  python -m loader query "refund" --where category=refunds --where 'chunk<3' --json
  python -m loader --local query "What can I take on board?" --assume-role
"""


def _flag(parser: argparse.ArgumentParser | Any, *names: str, dest: str, help: str, **kwargs: Any) -> None:
    parser.add_argument(*names, dest=dest, help=help + help_suffix(dest), **kwargs)


def _target_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options every command takes; accepted before or after the command name."""
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("target")
    _flag(
        group,
        "--outputs-file",
        dest="outputs_file",
        metavar="FILE",
        default=default,
        help="outputs of `cdk deploy --outputs-file`",
    )
    _flag(
        group,
        "--stack-name",
        dest="stack_name",
        metavar="NAME",
        default=default,
        help="stack in the outputs file; without an outputs file, read its outputs from CloudFormation",
    )
    _flag(group, "--bucket", dest="bucket", default=default, help="vector bucket name (overrides the outputs)")
    _flag(group, "--index", dest="index", default=default, help="index name (overrides the outputs)")
    _flag(
        group,
        "--region",
        dest="region",
        default=default,
        help="AWS region (else the stack's Region output, then AWS_REGION)",
    )
    _flag(group, "--profile", dest="profile", default=default, help="AWS profile (boto3 also reads AWS_PROFILE)")
    _flag(
        group,
        "--endpoint-url",
        dest="endpoint_url",
        metavar="URL",
        default=default,
        help="send S3 Vectors requests to this endpoint",
    )
    _flag(
        group,
        "--local",
        dest="local",
        action="store_const",
        const=True,
        default=default,
        help="use the local endpoint: start it in .local-s3vectors/ (LOADER_LOCAL_DIR) and create the index "
        "from cdk.out/S3VectorsDocSearch.template.json (LOADER_TEMPLATE) if needed; run `npx cdk synth` "
        "first. Its outputs go to .local-s3vectors/cdk-outputs.json, never to your cdk-outputs.json",
    )
    _flag(
        group,
        "--assume-role",
        dest="assume_role",
        action="store_const",
        const=True,
        default=default,
        help="use the stack's WriterRoleArn (load, delete, status) or ReaderRoleArn (query) via STS",
    )
    out = parser.add_argument_group("output")
    _flag(
        out,
        "--json",
        dest="json",
        action="store_const",
        const=True,
        default=default,
        help="print the result as JSON on stdout",
    )
    _flag(out, "--quiet", "-q", dest="quiet", action="store_const", const=True, default=default, help="no progress bar")


def _model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("embedding")
    _flag(
        group,
        "--model",
        dest="model",
        help="sentence-transformers model name or path (default: the bundled all-MiniLM-L6-v2)",
    )
    _flag(group, "--device", dest="device", help="torch device: cpu, cuda, mps (default: automatic)")
    _flag(
        group,
        "--backend",
        dest="backend",
        help="embedding runtime: torch, torch-bf16, onnx, onnx-int8 (default: the measured fastest on "
        "the CPU that keeps cosine >= 0.98 to torch fp32, see bench/results/embedding.json; torch on a GPU)",
    )
    _flag(group, "--batch-size", dest="batch_size", type=int, metavar="N", help="chunks per embedding batch")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m loader",
        description="Load a folder of documents into an Amazon S3 Vectors index, and search it.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    _target_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="{load,query,status,delete,plan}")

    load = sub.add_parser(
        "load",
        help="embed DIR and sync it into the index (the default command)",
        description="Embed the documents under DIR and sync them into the index.",
        epilog=LOAD_EPILOG,
        formatter_class=fmt,
    )
    load.add_argument(
        "dir",
        nargs="?",
        default="data",
        metavar="DIR",
        help="document folder, or an S3 prefix s3://bucket/prefix/ (default: data)",
    )
    _target_options(load, suppress=True)
    _model_options(load)
    group = load.add_argument_group("loading")
    _flag(
        group,
        "--chunk-tokens",
        dest="chunk_tokens",
        type=int,
        metavar="N",
        help="tokens per chunk (default: the model's maximum input)",
    )
    _flag(
        group,
        "--overlap-tokens",
        dest="overlap_tokens",
        type=int,
        metavar="N",
        help="tokens shared by consecutive chunks",
    )
    _flag(group, "--max-in-flight", dest="max_in_flight", type=int, metavar="N", help="concurrent write requests")
    _flag(
        group,
        "--strict",
        dest="strict",
        action="store_const",
        const=True,
        help="fail on an unreadable document instead of skipping it",
    )
    _flag(
        group,
        "--prune",
        dest="prune",
        action=argparse.BooleanOptionalAction,
        help="delete from the index the documents no longer in DIR (on by default; --no-prune keeps them)",
    )
    _flag(
        group,
        "--dry-run",
        dest="dry_run",
        action="store_const",
        const=True,
        help="print the plan (new, changed, unchanged, deleted) without embedding or writing",
    )
    _flag(
        group,
        "--shard",
        dest="shard",
        metavar="I/N",
        help="load only shard I of N (0 <= I < N) of the documents, e.g. 0/4 (see Sharding below)",
    )
    _flag(
        group,
        "--s3-endpoint-url",
        dest="s3_endpoint_url",
        metavar="URL",
        help="read an s3:// source from this S3-compatible endpoint (e.g. MinIO); boto3's "
        "AWS_ENDPOINT_URL_S3 works too",
    )

    query = sub.add_parser(
        "query",
        help="search the index",
        description="Search the index with a question.",
        epilog=QUERY_EPILOG,
        formatter_class=fmt,
    )
    query.add_argument("question", help="the question or text to search for")
    _target_options(query, suppress=True)
    _model_options(query)
    _flag(query, "--top-k", "-k", dest="top_k", type=int, metavar="K", help="number of results")
    query.add_argument("--filter", dest="filter", metavar="JSON", help="metadata filter, S3 Vectors syntax")
    query.add_argument(
        "--where",
        dest="where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata condition shorthand (repeatable, combined with $and)",
    )

    status = sub.add_parser(
        "status",
        help="describe the index and count its vectors",
        description="Describe the target index, count its vectors, show which outputs were used.",
        epilog="example:\n  python -m loader --local status --json",
        formatter_class=fmt,
    )
    _target_options(status, suppress=True)

    delete = sub.add_parser(
        "delete",
        help="delete one document's vectors",
        description="Delete every vector of one source document.",
        epilog="example:\n  python -m loader delete --source travel/pets.md",
        formatter_class=fmt,
    )
    delete.add_argument(
        "--source",
        required=True,
        metavar="PATH",
        help="the document's path relative to the loaded folder, as stored in the `source` metadata",
    )
    _target_options(delete, suppress=True)

    add_plan_parser(sub, fmt)
    return parser


def _with_command(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Insert ``load`` when no command is named: ``python -m loader --local data`` loads."""
    takes_value = {
        option
        for action in parser._actions  # argparse has no public API for this
        if action.option_strings and action.nargs != 0
        for option in action.option_strings
    }
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-h", "--help"):
            return argv
        if token == "--":
            break
        if token.startswith("-"):
            i += 2 if token in takes_value else 1
            continue
        return argv if token in COMMANDS else ["load", *argv]
    return ["load", *argv]


def parse(argv: Sequence[str] | None = None) -> tuple[str, argparse.Namespace, Options]:
    parser = build_parser()
    args = parser.parse_args(_with_command(parser, list(sys.argv[1:] if argv is None else argv)))
    return args.command, args, Options(vars(args))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while modules are imported and AWS clients built.

    Those steps create several hundred thousand objects (modules, numpy, botocore and its service
    models) that live as long as the process, yet every burst of allocations triggers collections that
    walk them all again: ~50 ms of a ~0.5 s no-change re-run. After the pause they are frozen
    (``gc.freeze``: never scanned again, as for a pre-forked server) and the collector is back on for
    the work itself.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


# --- building blocks the tests replace -------------------------------------------------------
def make_embedder(model: str | None, *, device: str | None, batch_size: int, backend: str | None = None) -> Any:
    """The embedder, loaded only when something must be embedded (tests monkeypatch this)."""
    from loader.lazy import lazy_embedder

    return lazy_embedder(model, device=device, batch_size=batch_size, backend=backend)


@_gc_paused()
def resolve(options: Options, *, role: str) -> tuple[Target, Any]:
    """(target, s3vectors client) for the options; ``role`` is "writer" or "reader"."""
    from loader import client as clients

    endpoint_url = options.endpoint_url
    outputs_file = Path(options.outputs_file)
    outputs_explicit = options.origin("outputs_file") != "default"
    stack_name = options.stack_name if options.origin("stack_name") != "default" else None
    if options.local:
        from loader.local import prepare_local, project_path

        # Defaults are relative to the project (the folder with cdk.json), so --local works from any subfolder.
        local_dir = project_path(options.local_dir, explicit=options.origin("local_dir") != "default")
        template = project_path(options.template, explicit=options.origin("template") != "default")
        endpoint_url, outputs_file = prepare_local(local_dir, template=template, stack_name=options.stack_name)
        outputs_explicit = True
    weak_region = options.weak_env("region")
    cloudformation = None
    if not options.local:

        def cloudformation(region: str | None) -> Any:
            return clients.cloudformation_client(clients.make_session(region=region, profile=options.profile))

    target = resolve_target(
        outputs_file=outputs_file,
        outputs_file_explicit=outputs_explicit,
        stack_name=stack_name,
        bucket=options.bucket,
        index=options.index,
        region=options.region,
        fallback_region=weak_region.value if weak_region else None,
        endpoint_url=endpoint_url,
        cloudformation=cloudformation,
    )
    # A loopback endpoint (the local one) gets dummy credentials when none are configured: SigV4 needs some.
    session = clients.make_session(
        region=target.region,
        profile=options.profile,
        local=bool(options.local) or clients.is_loopback(endpoint_url),
    )
    if options.assume_role:
        if options.local:
            print("warning: --assume-role ignored with --local (the local endpoint has no IAM)", file=sys.stderr)
        else:
            arn = target.writer_role_arn if role == "writer" else target.reader_role_arn
            if not arn:
                output = contract.Outputs.WRITER_ROLE_ARN if role == "writer" else contract.Outputs.READER_ROLE_ARN
                raise LoaderError(f"--assume-role: {target.origin or 'the target'} has no {output} output")
            session = clients.assume_role(session, arn, purpose=role)
    max_in_flight = int(options.get("max_in_flight") or 8)
    client = clients.s3vectors_client(session, endpoint_url=endpoint_url, max_pool_connections=max_in_flight + 16)
    return target, client


def _embedder(options: Options) -> Any:
    return make_embedder(
        options.get("model"),
        device=options.get("device"),
        batch_size=int(options.batch_size),
        backend=options.get("backend"),
    )


def _positive(options: Options, *names: str) -> None:
    for name in names:
        value = options.get(name)
        if value is not None and value < (0 if name == "overlap_tokens" else 1):
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be {'>= 0' if name == 'overlap_tokens' else 'at least 1'}, got {value}")


def _check_chunk_tokens(chunk_tokens: int | None, embedder: Any) -> None:
    """A chunk must fit the model's window (else it would be truncated) and hold some text."""
    if chunk_tokens is None:
        return
    from loader.chunking import MIN_MAX_TOKENS  # only now: a re-run that chunks nothing never imports it

    if not MIN_MAX_TOKENS <= chunk_tokens <= embedder.max_tokens:
        raise UsageError(
            f"--chunk-tokens must be from {MIN_MAX_TOKENS} to {embedder.max_tokens} for this model "
            f"(its window is {embedder.max_tokens} tokens plus special tokens), got {chunk_tokens}"
        )


# --- commands ---------------------------------------------------------------------------------
def _source_client(options: Options, target: Target) -> Any:
    """The S3 client that reads an s3:// source: the caller's own credentials, never the stack's writer
    role (--assume-role), which may write vectors but not read the corpus."""
    from loader import client as clients

    session = clients.make_session(
        region=target.region, profile=options.profile, local=clients.is_loopback(options.s3_endpoint_url)
    )
    return clients.s3_client(session, endpoint_url=options.s3_endpoint_url)


def cmd_load(args: argparse.Namespace, options: Options) -> int:
    with _gc_paused():
        from loader.report import Progress
        from loader.s3_source import is_s3_uri, parse_s3_uri
        from loader.sharding import ALL, parse_shard
        from loader.sync import LoadSettings, load

    _positive(options, "chunk_tokens", "overlap_tokens", "batch_size", "max_in_flight")
    shard = parse_shard(options.shard) if options.shard else ALL
    from_s3 = is_s3_uri(args.dir)
    if from_s3:
        parse_s3_uri(args.dir)  # a malformed URI is a usage error before anything else happens
    target, client = resolve(options, role="writer")
    s3 = _source_client(options, target) if from_s3 else None
    embedder = _embedder(options)
    _check_chunk_tokens(options.chunk_tokens, embedder)
    settings = LoadSettings(
        chunk_tokens=options.chunk_tokens,
        overlap_tokens=options.overlap_tokens,
        batch_size=options.batch_size,
        max_in_flight=options.max_in_flight,
        prune=options.prune,
        prune_explicit=options.origin("prune") != "default" and bool(options.prune),
        strict=options.strict,
        dry_run=options.dry_run,
    )
    progress = Progress.for_terminal(quiet=bool(options.quiet))  # on stderr: --json output stays clean
    try:
        report = load(
            args.dir if from_s3 else Path(args.dir),
            client=client,
            target=target,
            embedder=embedder,
            settings=settings,
            progress=progress,
            shard=shard,
            s3=s3,
        )
    except IndexMismatchError as exc:
        if options.local:
            raise IndexMismatchError(
                f"{exc}. For the local endpoint: `python -m s3vectors_local stop --data-dir {options.local_dir}`, "
                f"remove {options.local_dir}/ and run again to re-provision from the current template"
            ) from None
        raise
    if options.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_warnings(report.warnings)
        print(report.human())
    return 0


def _print_warnings(warnings: list[str]) -> None:
    for line in warnings[:MAX_WARNINGS_SHOWN]:
        print(f"warning: {line}", file=sys.stderr)
    if len(warnings) > MAX_WARNINGS_SHOWN:
        print(f"warning: ... and {len(warnings) - MAX_WARNINGS_SHOWN} more (--json lists all)", file=sys.stderr)


def cmd_query(args: argparse.Namespace, options: Options) -> int:
    from loader.index import describe_index
    from loader.query import build_filter, format_hits, search

    _positive(options, "top_k", "batch_size")
    if not args.question.strip():
        raise UsageError("the question is empty")
    # Validate the filter syntax before any network call or model load.
    build_filter(args.filter, args.where)
    target, client = resolve(options, role="reader")
    info = describe_index(client, target)
    metadata_filter = build_filter(args.filter, args.where, non_filterable=info.non_filterable_keys)
    if metadata_filter and "$startsWith" in json.dumps(metadata_filter) and info.index_mode == "CLASSIC":
        raise UsageError("$startsWith needs an index in ENHANCED mode; this index is CLASSIC")
    embedder = _embedder(options)
    if embedder.dimension != info.dimension:
        raise IndexMismatchError(
            f"the model produces {embedder.dimension}-dimensional vectors but index {info.name!r} holds "
            f"{info.dimension}: query with the model the documents were loaded with (--model)"
        )
    hits = search(
        client,
        target,
        embedder,
        args.question,
        top_k=options.top_k,
        metadata_filter=metadata_filter,
        metric=info.distance_metric,
    )
    if options.json:
        out = {
            "question": args.question,
            "filter": metadata_filter,
            "distance_metric": info.distance_metric,
            "score": "1 - distance" if info.distance_metric == "cosine" else "1 / (1 + distance)",
            "results": [h.to_dict() for h in hits],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(format_hits(hits, metric=info.distance_metric))
    return 0


def cmd_status(args: argparse.Namespace, options: Options) -> int:
    from botocore.exceptions import ClientError

    from loader.index import count_vectors, describe_index
    from loader.report import target_dict

    target, client = resolve(options, role="writer")
    info = describe_index(client, target)
    try:
        count: int | None = count_vectors(client, target)
        count_error = None
    except ClientError as exc:  # e.g. the reader role has no ListVectors
        count, count_error = None, exc.response.get("Error", {}).get("Message", str(exc))
    status = {
        "target": target_dict(target),
        "stack": target.stack_name,
        "outputs": dict(target.outputs),
        "index": {
            "name": info.name,
            "bucket": info.bucket,
            "arn": info.arn,
            "dimension": info.dimension,
            "distance_metric": info.distance_metric,
            "data_type": info.data_type,
            "non_filterable_metadata_keys": sorted(info.non_filterable_keys),
            "index_mode": info.index_mode,
            "creation_time": str(info.raw.get("creationTime", "")) or None,
        },
        "vectors": count,
    }
    if count_error:
        status["vectors_error"] = count_error
    if options.json:
        print(json.dumps(status, indent=2, ensure_ascii=False, default=str))
        return 0
    text_ok = contract.TEXT_METADATA_KEY in info.non_filterable_keys
    print(f"Index:      {info.name} in vector bucket {info.bucket}" + (f" ({target.region})" if target.region else ""))
    if target.endpoint_url:
        print(f"Endpoint:   {target.endpoint_url}")
    print(f"From:       {target.origin}")
    print(
        f"Shape:      {info.dimension} dimensions, {info.distance_metric}, {info.data_type}"
        + (f", {info.index_mode} mode" if info.index_mode else "")
    )
    print(
        f"Non-filterable keys: {', '.join(sorted(info.non_filterable_keys)) or '(none)'}"
        + ("" if text_ok else f"  <- '{contract.TEXT_METADATA_KEY}' must be non-filterable for the loader")
    )
    print(f"Vectors:    {count if count is not None else 'unknown (' + str(count_error) + ')'}")
    return 0


def cmd_delete(args: argparse.Namespace, options: Options) -> int:
    from loader.sync import delete_source

    target, client = resolve(options, role="writer")
    deleted = delete_source(client, target, args.source)
    if options.json:
        print(json.dumps({"source": args.source, "deleted": deleted}))
    else:
        print(f"Deleted {deleted} vector(s) of {args.source} from {target.bucket}/{target.index}.")
    return 0


def cmd_plan(args: argparse.Namespace, options: Options) -> int:
    return plan_command(args, json_output=bool(options.json or args.json))


HANDLERS = {"load": cmd_load, "query": cmd_query, "status": cmd_status, "delete": cmd_delete, "plan": cmd_plan}


def _describe_client_error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Error"), error.get("Message", str(exc))
    operation = getattr(exc, "operation_name", "request")
    hint = ""
    if operation == "ListObjectsV2":  # the s3:// document source, read with the caller's own credentials
        hint = (
            " (reading an s3:// source needs s3:ListBucket on the bucket and s3:GetObject on the prefix, "
            "with your own credentials: --assume-role applies to the index only)"
            if code in ("AccessDenied", "AllAccessDisabled")
            else ""
        )
    elif code in ("AccessDeniedException", "AccessDenied"):
        hint = (
            " (the credentials in use lack this permission; with --assume-role the loader uses the stack's "
            "writer/reader roles, which grant exactly what each command needs)"
        )
    elif code in ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"):
        hint = " (check your AWS credentials)"
    return f"{operation} failed: {code}: {message}{hint}"


def main(argv: Sequence[str] | None = None) -> int:
    frozen = gc.get_freeze_count()
    try:
        return _main(argv)
    finally:
        # _gc_paused froze what start-up created. The process's own command line (argv None) exits now, and
        # its shutdown does not scan those objects once more (~50 ms); an in-process caller (tests) gets them
        # back into normal collection.
        if argv is not None and not frozen:
            gc.unfreeze()


def _main(argv: Sequence[str] | None) -> int:
    with _gc_paused():
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    try:
        try:
            command, args, options = parse(argv)
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message already printed)
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        return HANDLERS[command](args, options)
    except UsageError as exc:
        print(f"python -m loader: error: {exc}", file=sys.stderr)
        return 2
    except LoaderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except NoCredentialsError:
        print(
            "error: no AWS credentials found: configure a profile (--profile / AWS_PROFILE), set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --local for the index (an s3:// document "
            "source still needs credentials that can read it)",
            file=sys.stderr,
        )
        return 1
    except EndpointConnectionError as exc:
        print(
            f"error: cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}: is it running? "
            "(for the index, --local starts the local S3 Vectors endpoint; for an s3:// source, check "
            "--s3-endpoint-url)",
            file=sys.stderr,
        )
        return 1
    except ClientError as exc:
        print(f"error: {_describe_client_error(exc)}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `python -m loader query ... --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted: run the same command again to complete the load (nothing is lost)", file=sys.stderr)
        return 130
    except Exception as exc:
        if isinstance(exc, _read_side_errors()):  # unreadable document (--strict), model not available
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def _read_side_errors() -> tuple[type[Exception], ...]:
    from loader.documents import DocumentError
    from loader.embedding import ModelUnavailableError

    return (DocumentError, ModelUnavailableError)


__all__ = ["build_parser", "config", "main", "make_embedder"]
