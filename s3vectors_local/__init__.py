"""A local stand-in for the Amazon S3 Vectors service (issue #3).

Public API:
    LocalEndpoint(data_dir, throttle=False, fault_rate=0.0, latency_ms=0, faults=None, credentials=None,
                  principals=None)
        context manager; serves on a free loopback port from a thread: ``ep.endpoint_url``, ``ep.client()``;
        ``credentials={access_key: secret}`` verifies SigV4 (sigv4.py), ``principals={access_key: policies}``
        enforces IAM policies (iam.py; ``iam.template_principals`` for a synthesized template's roles)
    ensure_running(data_dir) -> endpoint_url   detached ``serve`` process, found again via endpoint.json
    stop_server(data_dir) -> bool
    provision(template, endpoint_url=..., outputs_file=...) -> {stack: {output: value}}
    teardown(template, endpoint_url=..., outputs_file=...)
    pytest plugin ``s3vectors_local.pytest_plugin``: fixture ``s3vectors_endpoint``
    CLI: ``python -m s3vectors_local {serve,provision,teardown,iam-policies,stop} --help``

Modules: server (HTTP), validation (against botocore's model), service/resources/vectors (operations),
store (SQLite), matrix (in-memory search), filters, limits (every AWS limit, with its source),
faults (throttling and fault injection), cfn/provisioning (templates), process, endpoint,
sigv4 and iam (opt-in access control).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalEndpoint", "ensure_running", "provision", "stop_server", "teardown"]


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import s3vectors_local` cheap (no numpy/werkzeug/boto3 until needed).
    if name == "LocalEndpoint":
        from s3vectors_local.endpoint import LocalEndpoint

        return LocalEndpoint
    if name in ("ensure_running", "stop_server"):
        from s3vectors_local import process

        return getattr(process, name)
    if name in ("provision", "teardown"):
        from s3vectors_local import provisioning

        return getattr(provisioning, name)
    raise AttributeError(name)
