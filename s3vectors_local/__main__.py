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
    s.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
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
    st = sub.add_parser("stop", help="stop a background endpoint started for DIR (e.g. by loader --local)")
    st.add_argument("--data-dir", type=Path, required=True, help="the data dir whose endpoint.json names the server")
    return p


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from s3vectors_local.endpoint import ENDPOINT_FILE, LocalEndpoint
    from s3vectors_local.process import write_endpoint

    ep = LocalEndpoint(
        args.data_dir, throttle=args.throttle, fault_rate=args.fault_rate, latency_ms=args.latency_ms,
        host=args.host, port=args.port, account_id=args.account_id, region=args.region,
        fault_seed=args.fault_seed,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        ep.start()
    except RuntimeError as e:
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "stop":
        from s3vectors_local.process import stop_server

        stopped = stop_server(args.data_dir)
        print(f"stopped the endpoint of {args.data_dir}" if stopped else f"no endpoint was running for {args.data_dir}")
        return 0
    from s3vectors_local import provisioning as prov

    fn = prov.provision if args.command == "provision" else prov.teardown
    result = fn(
        args.template, endpoint_url=args.endpoint_url, outputs_file=args.outputs_file,
        stack_name=args.stack_name, account_id=args.account_id, region=args.region,
    )
    if args.command == "provision":
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
