"""Bad configuration fails synth with a message that names the context key and what to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.settings import SettingsError, settings_from_context
from tests.stacks.synth import synth


@pytest.mark.parametrize(
    ("context", "key", "hint"),
    [
        ({"bucketName": "Docs_Bucket"}, "bucketName", "lowercase letters, digits and hyphens"),
        ({"bucketName": "ab"}, "bucketName", "3-63 characters"),
        ({"bucketName": "-docs"}, "bucketName", "beginning and ending with a letter or digit"),
        ({"indexName": "Index!"}, "indexName", "lowercase letters, digits, hyphens and dots"),
        ({"dimension": "0"}, "dimension", "from 1 to 4096"),
        ({"dimension": "5000"}, "dimension", "from 1 to 4096"),
        ({"dimension": "384.5"}, "dimension", "whole number"),
        ({"distanceMetric": "dotproduct"}, "distanceMetric", "cosine, euclidean"),
        (
            {"nonFilterableMetadataKeys": ",".join(f"k{i}" for i in range(10))},
            "nonFilterableMetadataKeys",
            "at most 10",
        ),
        ({"kmsKeyArn": "alias/my-key"}, "kmsKeyArn", "full KMS key ARN"),
        ({"kmsKeyArn": "arn:aws:kms:us-east-1:123:key/abc"}, "kmsKeyArn", "full KMS key ARN"),
        ({"encryption": "sse-c"}, "encryption", "sse-s3, kms"),
        ({"retainData": "maybe"}, "retainData", "true or false"),
        ({"trustedPrincipal": "everyone"}, "trustedPrincipal", "12-digit account id"),
    ],
)
def test_bad_context_is_rejected_with_a_fix(context: dict[str, str], key: str, hint: str) -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from_context(context)
    assert raised.value.key == key
    message = str(raised.value)
    assert f"'{key}'" in message and hint in message and f"-c {key}=" in message


def test_valid_context_values_pass() -> None:
    settings = settings_from_context(
        {
            "bucketName": "abc",
            "indexName": "a.b-c",
            "dimension": 4096,
            "distanceMetric": "euclidean",
            "nonFilterableMetadataKeys": ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"],
            "retainData": True,
            "trustedPrincipal": "111122223333",
        }
    )
    assert settings.dimension == 4096
    assert len(settings.non_filterable_metadata_keys) == 10
    assert settings.non_filterable_metadata_keys[0] == "text"


def test_synth_fails_on_bad_context(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="dimension"):
        synth(tmp_path, dimension="5000")
