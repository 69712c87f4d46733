"""Shared test setup: no test may ever reach real AWS."""

from __future__ import annotations

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
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3VECTORS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in _DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
