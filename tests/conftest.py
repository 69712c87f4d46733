"""Shared test setup: no test may ever reach real AWS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# The `s3vectors_endpoint` fixture: a fresh local S3 Vectors endpoint over HTTP per test.
pytest_plugins = ["s3vectors_local.pytest_plugin"]

_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


@pytest.fixture(autouse=True)
def _dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3VECTORS",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in _DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_server() -> Iterator[str]:
    """moto's S3 as a real HTTP server on 127.0.0.1, for ``s3://`` document sources. Its in-process mock
    (``mock_aws``) would also intercept the S3 Vectors calls meant for the local endpoint."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def upload_folder(s3_url: str, root: object, bucket: str, prefix: str) -> None:
    """Every file under ``root`` into ``s3://bucket/prefix`` (creating the bucket) on the moto server."""
    from pathlib import Path

    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    folder = Path(str(root))
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.put_object(Bucket=bucket, Key=prefix + path.relative_to(folder).as_posix(), Body=path.read_bytes())
