"""Command line: ``python -m s3vectors_local {serve,provision,teardown,stop} ...`` (see --help)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

# A query is one matrix-vector product, bound by memory bandwidth: extra BLAS threads only add
# synchronisation (measured on 2 cores: 32 ms with OpenBLAS's threads vs 21.5 ms with one, 100k x 384).
# Concurrent requests run on the server's own threads instead. Must be set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

DEFAULT_ACCOUNT_ID = "123456789012"  # the same defaults as s3vectors_local.endpoint, without importing numpy
DEFAULT_REGION = "us-east-1"

_EXAMPLES = """\
examples:
  python -m s3vectors_local serve --port 9000 --data-dir .s3vectors
  python -m s3vectors_local serve --port 0 --data-dir /tmp/sv --throttle --fault-rate 0.1 --latency-ms 20
  python -m s3vectors_local provision --template cdk.out/S3VectorsDocSearch.template.json \\
      --endpoint-url http://127.0.0.1:9000 --outputs-file cdk-outputs.json
  python -m s3vectors_local teardown --template cdk.out/S3VectorsDocSearch.template.json \\
      --endpoint-url http://127.0.0.1:9000 --outputs-file cdk-outputs.json
  python -m s3vectors_local stop --data-dir .local-s3vectors

access control (off by default: any SigV4-shaped request is accepted):
  python -m s3vectors_local iam-policies --template cdk.out/S3VectorsDocSearch.template.json \\
      --role WriterRoleArn=AKIDWRITER --role ReaderRoleArn=AKIDREADER --out iam-policies.json
  python -m s3vectors_local serve --port 9000 --data-dir .s3vectors --verify-sigv4 \\
      --credentials credentials.json --iam-policies iam-policies.json
  (credentials.json: {"AKIDWRITER": "<secret>", "AKIDREADER": "<secret>"}, kept out of argv and logs)

then point any boto3 client at it:
  boto3.client("s3vectors", endpoint_url="http://127.0.0.1:9000", region_name="us-east-1",
               aws_access_key_id="testing", aws_secret_access_key="testing")
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m s3vectors_local",
        description="A local stand-in for the Amazon S3 Vectors service.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the endpoint until SIGTERM/SIGINT", epilog=_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    s.add_argument("--data-dir", type=Path, required=True, help="where the SQLite database and endpoint.json live")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--throttle", action="store_true",
                   help="answer 429 above AWS's per-index write rates (1,000 requests/s, 2,500 vectors/s)")
    s.add_argument("--fault-rate", type=float, default=0.0, help="fraction of requests answered 429/503/500")
    s.add_argument("--fault-seed", type=int, default=None, help="seed for reproducible fault injection")
    s.add_argument("--fault-codes", default="429,503,500",
                   help="statuses the injected faults use, comma-separated (default 429,503,500)")
    s.add_argument("--fault-after-rate", type=float, default=0.0,
                   help="fraction of successful requests whose response is replaced by a 503 (lost response)")
    s.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    s.add_argument("--latency-spike-rate", type=float, default=0.0, help="fraction of requests delayed by a spike")
    s.add_argument("--latency-spike-ms", type=float, default=0.0, help="length of a latency spike")
    s.add_argument("--verify-sigv4", action="store_true",
                   help="refuse requests not signed (SigV4) with a key pair from --credentials, as AWS does")
    s.add_argument("--credentials", type=Path, default=None, metavar="FILE",
                   help='JSON {"ACCESS_KEY_ID": "SECRET", ...} (implies --verify-sigv4)')
    s.add_argument("--iam-policies", type=Path, default=None, metavar="FILE",
                   help='JSON {"ACCESS_KEY_ID": {"arn": ..., "policies": [...]}}: enforce each principal\'s IAM '
                   "policies (write it with the iam-policies command)")
    s.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID, help="12-digit account id used in ARNs")
    s.add_argument("--region", default=DEFAULT_REGION, help="Region used in ARNs")
    s.add_argument("--verbose", action="store_true", help="log every request")
    for name, text in (("provision", "create the template's vector buckets and indexes"),
                       ("teardown", "delete what provision created and the outputs file")):
        t = sub.add_parser(name, help=text, epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        t.add_argument("--template", type=Path, required=True, help="CloudFormation template synthesized by CDK")
        t.add_argument("--endpoint-url", required=True, help="URL of a running s3vectors_local endpoint")
        t.add_argument("--outputs-file", type=Path, required=True, help="cdk deploy --outputs-file style JSON")
        t.add_argument("--stack-name", default=None, help="stack name (default: from the template's file name)")
        t.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
        t.add_argument("--region", default=DEFAULT_REGION)
        t.add_argument("--access-key-id", default=None, metavar="ID",
                       help="sign as this key (for an endpoint run with --verify-sigv4); its secret is read from "
                       "--credentials")
        t.add_argument("--credentials", type=Path, default=None, metavar="FILE",
                       help='JSON {"ACCESS_KEY_ID": "SECRET", ...}, as for serve')
    ip = sub.add_parser("iam-policies", help="write the IAM policies of a template's roles for serve --iam-policies",
                        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ip.add_argument("--template", type=Path, required=True, help="CloudFormation template synthesized by CDK")
    ip.add_argument("--role", action="append", required=True, metavar="ROLE=ACCESS_KEY_ID",
                    help="a role (logical id or output name, e.g. WriterRoleArn) and the access key that acts as it")
    ip.add_argument("--out", type=Path, required=True, help="the file to write")
    ip.add_argument("--endpoint-url", default=None,
                    help="read bucket/index ARNs from this endpoint (default: computed as provision names them)")
    ip.add_argument("--access-key-id", default=None, metavar="ID", help="with --endpoint-url: sign as this key")
    ip.add_argument("--credentials", type=Path, default=None, metavar="FILE", help="with --access-key-id: its secret")
    ip.add_argument("--stack-name", default=None)
    ip.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    ip.add_argument("--region", default=DEFAULT_REGION)
    st = sub.add_parser("stop", help="stop a background endpoint started for DIR (e.g. by loader --local)")
    st.add_argument("--data-dir", type=Path, required=True, help="the data dir whose endpoint.json names the server")
    return p


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from s3vectors_local.endpoint import ENDPOINT_FILE, LocalEndpoint
    from s3vectors_local.faults import FaultInjector
    from s3vectors_local.iam import read_principals_file
    from s3vectors_local.process import write_endpoint

    if args.verify_sigv4 and args.credentials is None:
        print("error: --verify-sigv4 needs --credentials FILE", file=sys.stderr)
        return 2
    try:
        codes = tuple(int(c) for c in args.fault_codes.split(",") if c.strip())
        faults = FaultInjector(args.fault_rate, args.latency_ms, args.fault_seed, codes=codes,
                               after_rate=args.fault_after_rate, spike_rate=args.latency_spike_rate,
                               spike_ms=args.latency_spike_ms)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        credentials = json.loads(args.credentials.read_text()) if args.credentials else None
    except (OSError, ValueError) as e:  # never echo the file's content: it holds secrets
        print(f"error: cannot read --credentials {args.credentials}: {type(e).__name__}", file=sys.stderr)
        return 2
    try:
        principals = read_principals_file(args.iam_policies) if args.iam_policies else None
    except (OSError, ValueError) as e:
        print(f"error: cannot read --iam-policies {args.iam_policies}: {e}", file=sys.stderr)
        return 2
    if credentials is not None and not isinstance(credentials, dict):
        print(f"error: {args.credentials}: expected a JSON object of access key -> secret", file=sys.stderr)
        return 2
    ep = LocalEndpoint(
        args.data_dir, throttle=args.throttle, host=args.host, port=args.port, account_id=args.account_id,
        region=args.region, faults=faults if faults.active else None, credentials=credentials,
        principals=principals,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        ep.start()
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    endpoint_file = Path(args.data_dir) / ENDPOINT_FILE
    try:
        write_endpoint(args.data_dir, ep.endpoint_url, os.getpid())
        print(f"s3vectors_local listening on {ep.endpoint_url} (data dir {args.data_dir})", flush=True)
        stop.wait()
    finally:
        with contextlib.suppress(FileNotFoundError):
            endpoint_file.unlink()
        ep.stop()
    return 0


def _client_from_args(args: argparse.Namespace) -> object | None:
    """A client signing with ``--access-key-id`` and its secret from ``--credentials``, or None (dummy keys)."""
    if not (args.access_key_id or args.credentials):
        return None
    if not (args.access_key_id and args.credentials and args.endpoint_url):
        raise ValueError("--access-key-id and --credentials FILE go together (with --endpoint-url)")
    try:
        secret = json.loads(args.credentials.read_text())[args.access_key_id]
    except (OSError, ValueError, KeyError, TypeError) as e:  # never echo the file: it holds secrets
        raise ValueError(f"no secret for --access-key-id in {args.credentials} ({type(e).__name__})") from None
    if not isinstance(secret, str):
        raise ValueError(f"the secret for --access-key-id in {args.credentials} is not a string")
    from s3vectors_local.endpoint import make_client

    return make_client(args.endpoint_url, region=args.region, access_key=args.access_key_id, secret_key=secret)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "stop":
        from s3vectors_local.process import stop_server

        stopped = stop_server(args.data_dir)
        print(f"stopped the endpoint of {args.data_dir}" if stopped else f"no endpoint was running for {args.data_dir}")
        return 0
    if args.command == "iam-policies":
        from s3vectors_local.iam import principals_file_data, template_principals

        roles = {}
        for spec in args.role:
            role, eq, key = spec.partition("=")
            if not eq or not role or not key:
                print(f"error: --role {spec!r}: expected ROLE=ACCESS_KEY_ID", file=sys.stderr)
                return 2
            roles[role] = key
        try:
            client = _client_from_args(args)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        principals = template_principals(args.template, roles, stack_name=args.stack_name,
                                         account_id=args.account_id, region=args.region,
                                         endpoint_url=args.endpoint_url, client=client)
        args.out.write_text(json.dumps(principals_file_data(principals), indent=2) + "\n")
        print(f"wrote the policies of {len(roles)} role(s) to {args.out}")
        return 0
    from s3vectors_local import provisioning as prov

    try:
        client = _client_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    fn = prov.provision if args.command == "provision" else prov.teardown
    try:
        result = fn(
            args.template, endpoint_url=args.endpoint_url, outputs_file=args.outputs_file,
            stack_name=args.stack_name, account_id=args.account_id, region=args.region, client=client,
        )
    except Exception as e:
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(e, ClientError | BotoCoreError | prov.ProvisionError):
            raise
        print(f"error: {args.command} failed: {e}", file=sys.stderr)
        return 1
    if args.command == "provision":
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
